"""Pure statistics on arrays, counts and frames: no I/O, no configuration."""
