"""predwatch analyzers: everything that reads predictions, measures them and alerts."""
