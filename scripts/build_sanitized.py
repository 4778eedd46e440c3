"""Builds the C accelerators with AddressSanitizer + UndefinedBehaviorSanitizer into a folder of
their own (`build/sanitize/`), for `make fuzz`: `tracemesh.accel.load` takes them from there
when TRACEMESH_ACCEL_DIR names it. The process must then preload the ASan runtime."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGS = [
    "-O1", "-g", "-std=c11", "-fPIC", "-shared", "-fno-omit-frame-pointer",
    "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
    "-Wall", "-Wextra", "-Werror=implicit-function-declaration",
]  # fmt: skip


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    include = sysconfig.get_paths()["include"]
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for source in sorted((ROOT / "src/tracemesh/accel").glob("*.c")):
        target = out / f"{source.stem}{suffix}"
        command = ["gcc", *FLAGS, f"-I{include}", str(source), "-o", str(target)]
        subprocess.run(command, check=True)
        print(f"built {target.relative_to(ROOT)} (ASan + UBSan)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "sanitize")
