"""Jobs: read a window through the Store, call the statistics, return findings."""
