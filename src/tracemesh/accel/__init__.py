"""Optional C accelerators for the hottest decoders. Each is an extension module built by
`setup.py` when a C compiler is present; every caller keeps a pure-Python path that gives the same
result, and falls back to it when the module is missing or declines an input.

`TRACEMESH_NO_ACCEL=1` in the environment (read once, at import) turns every accelerator off, to
compare against or to rule them out. `TRACEMESH_ACCEL_DIR` loads them from another folder: the
sanitizer build of `make fuzz` (scripts/build_sanitized.py)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import sysconfig
from types import ModuleType

DISABLED = os.environ.get("TRACEMESH_NO_ACCEL", "") not in ("", "0")
OTHER_DIR = os.environ.get("TRACEMESH_ACCEL_DIR", "")


def load(name: str) -> ModuleType | None:
    """The extension module `tracemesh.accel.<name>`, or None when it is not built (or fails to
    load) or accelerators are disabled: the caller then uses its pure-Python path."""
    if DISABLED:
        return None
    full = f"{__name__}.{name}"
    if OTHER_DIR and full not in sys.modules:
        path = os.path.join(OTHER_DIR, name + str(sysconfig.get_config_var("EXT_SUFFIX")))
        spec = importlib.util.spec_from_file_location(full, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"no accelerator {name} in {OTHER_DIR}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[full] = module  # later imports of the name get this build
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(full)
    except ImportError:
        return None
