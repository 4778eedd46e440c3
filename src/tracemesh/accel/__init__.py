"""Optional C accelerators for the hottest decoders. Each is an extension module built by
`setup.py` when a C compiler is present; every caller keeps a pure-Python path that gives the same
result, and falls back to it when the module is missing or declines an input."""
