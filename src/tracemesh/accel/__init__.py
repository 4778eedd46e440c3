"""Optional C accelerators for the hottest decoders. Each is an extension module built by
`setup.py` when a C compiler is present; every caller keeps a pure-Python path that gives the same
result, and falls back to it when the module is missing or declines an input.

`TRACEMESH_NO_ACCEL=1` in the environment (read once, at import) turns every accelerator off, to
compare against or to rule them out."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

DISABLED = os.environ.get("TRACEMESH_NO_ACCEL", "") not in ("", "0")


def load(name: str) -> ModuleType | None:
    """The extension module `tracemesh.accel.<name>`, or None when it is not built (or fails to
    load) or accelerators are disabled: the caller then uses its pure-Python path."""
    if DISABLED:
        return None
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ImportError:
        return None
