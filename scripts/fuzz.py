"""`make fuzz`: a long campaign over every fuzz target (tests/fuzz/targets.py), in two phases of
half the time each, every target in processes of its own:

1. coverage-guided (atheris/libFuzzer) with the regular build: the corpus grows toward inputs
   that reach new code of the Python references and wrappers (this machine's gcc cannot
   instrument the C for libFuzzer, and gcc's ASan runtime breaks libFuzzer's coverage);
2. the ASan + UBSan build of the accelerators, running the committed corpus, the grown one and
   mutations of them (the project's mutation driver).

Every input on which the C path and the reference disagree is saved into the target's committed
corpus (tests/fuzz/corpus/<target>/crash-*), where the short campaign of every test run replays
it; a sanitizer report ends the process and is in build/fuzz/<target>.log.

    python scripts/fuzz.py SECONDS_PER_TARGET [TARGET...]
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = ROOT / "build" / "fuzz"
SANITIZED = ROOT / "build" / "sanitize"


def runtime(name: str) -> str:
    found = subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True, text=True)
    return found.stdout.strip()


def _child(target: str, seconds: int, mode: str, env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, __file__, "--one", mode, target, str(seconds)],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True, text=True, timeout=seconds * 3 + 300,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def campaign(target: str, seconds: int) -> dict[str, object]:
    began = time.monotonic()
    half = max(1, seconds // 2)
    guided_exit, guided = _child(target, half, "guided", {})
    sanitized_env = {
        "TRACEMESH_ACCEL_DIR": str(SANITIZED),
        "LD_PRELOAD": runtime("libasan.so"),
        # Python's allocator keeps memory on purpose: leak reports would be noise
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    }
    sanitized_exit, sanitized = _child(target, half, "sanitized", sanitized_env)
    (WORK / f"{target}.log").write_text(guided + "\n---- sanitized ----\n" + sanitized)
    runs = re.findall(r"Done (\d+) runs", guided)
    cov = re.findall(r"cov: (\d+) ft: (\d+)", guided)
    corpus_size = re.findall(r"corp: (\d+)/", guided)
    replayed = re.findall(r"executions (\d+)", sanitized)
    return {
        "target": target,
        "seconds": round(time.monotonic() - began),
        "guided_executions": int(runs[-1]) if runs else None,
        "coverage_edges": int(cov[-1][0]) if cov else None,
        "coverage_features": int(cov[-1][1]) if cov else None,
        "corpus_inputs": int(corpus_size[-1]) if corpus_size else None,
        "sanitized_executions": int(replayed[-1]) if replayed else None,
        "sanitizer_report": "ERROR: AddressSanitizer" in sanitized or "runtime error:" in sanitized,
        "finding": guided_exit != 0 or sanitized_exit != 0,
    }


def one(mode: str, target: str, seconds: int) -> None:
    """In a child process: fuzz one target for `seconds`."""
    work = WORK / target
    work.mkdir(parents=True, exist_ok=True)
    if mode == "sanitized":
        from tests.fuzz.driver import CORPUS, corpus, run, save
        from tests.fuzz.targets import TARGETS

        grown = [path.read_bytes() for path in sorted(work.iterdir())]
        stats = run(TARGETS[target], corpus(target) + grown, seconds=seconds, seed=time.time_ns())
        print(f"executions {stats.executions} under ASan + UBSan")
        for data, failure in stats.found:
            print(failure)
            save(CORPUS / target, data)
        sys.exit(1 if stats.failures else 0)
    import atheris  # before anything of the project is imported: it instruments what follows

    with atheris.instrument_imports(include=["tracemesh"]):  # the references, not pytest
        from tests.fuzz.driver import CORPUS
        from tests.fuzz.targets import TARGETS

    crash = CORPUS / target / "crash-"
    argv = [sys.argv[0], str(work), str(CORPUS / target), f"-max_total_time={seconds}",
            f"-artifact_prefix={crash}", "-print_final_stats=1", "-rss_limit_mb=4096"]  # fmt: skip
    atheris.Setup(argv, TARGETS[target])
    atheris.Fuzz()


def main() -> None:
    if sys.argv[1:2] == ["--one"]:
        one(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    from tests.fuzz.targets import TARGETS

    names = sys.argv[2:] or sorted(TARGETS)
    WORK.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_sanitized.py")], check=True)
    results = [campaign(name, seconds) for name in names]
    (WORK / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    for result in results:
        print(json.dumps(result))
    if any(result["finding"] for result in results):
        sys.exit(f"findings: see {WORK}/*.log and tests/fuzz/corpus/*/crash-*")


if __name__ == "__main__":
    main()
