"""Builds the optional C accelerators, one extension module per `src/tracemesh/accel/*.c`;
everything else is in pyproject.toml. `optional=True`: without a C compiler the package still
installs, and every caller uses its pure-Python path."""

from pathlib import Path

from setuptools import Extension, setup

FLAGS = ["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]
SOURCES = sorted(Path("src/tracemesh/accel").glob("*.c"))

setup(
    ext_modules=[
        Extension(f"tracemesh.accel.{path.stem}", [str(path)], extra_compile_args=FLAGS,
                  optional=True)
        for path in SOURCES
    ]
)
