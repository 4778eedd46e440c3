"""Span storage: the contract in `api`, one folder per backend."""
