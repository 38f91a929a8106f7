"""GitHub webhook handling: signatures and payload parsing (no I/O)."""
