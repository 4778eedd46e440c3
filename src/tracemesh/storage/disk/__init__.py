"""Disk storage: spans kept in a directory, durable on acknowledgement, readable by other
processes; an append-only log plus immutable compressed blocks (see README.md)."""
