"""The `tracemesh` command."""
