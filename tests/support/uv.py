"""Find uv the way `make` installs it, so a test that needs uv runs wherever `make` ran."""

from __future__ import annotations

import os
import shlex
import shutil
import site
import subprocess


def uv_command() -> list[str] | None:
    """The command that runs uv, or None: `$TRACEMESH_UV` (the Makefile exports what it used),
    uv on PATH, then the user scheme's bin directory (`pip install --user uv`, what `make` does
    when uv is missing: that directory is often not on PATH)."""
    candidates: list[list[str]] = []
    configured = os.environ.get("TRACEMESH_UV", "").strip()
    if configured:
        candidates.append(shlex.split(configured))
    on_path = shutil.which("uv")
    if on_path:
        candidates.append([on_path])
    candidates.append([os.path.join(site.getuserbase(), "bin", "uv")])
    for command in candidates:
        if shutil.which(command[0]) is None:
            continue
        try:
            done = subprocess.run([*command, "--version"], capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return command
    return None
