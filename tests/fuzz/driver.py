"""A small mutation fuzzer in Python: deterministic, no dependency, good enough for the short
campaign of every test run (atheris, coverage-guided, runs the long one: `make fuzz`)."""

from __future__ import annotations

import hashlib
import random
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from tests.fuzz.targets import Target

CORPUS = Path(__file__).parent / "corpus"
INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff\x0f", b"\xc3\x28", b'"', b"{"]


@dataclass
class Stats:
    executions: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    found: list[tuple[bytes, str]] = field(default_factory=list)  # (input, report)


def save(folder: Path, data: bytes) -> Path:
    """A finding kept as a regression input of the committed corpus."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"crash-{hashlib.sha1(data).hexdigest()}"
    path.write_bytes(data)
    return path


def corpus(name: str) -> list[bytes]:
    """The committed inputs of a target: seeds from the project's encoders and every input that
    once failed (kept as regressions)."""
    folder = CORPUS / name
    return [path.read_bytes() for path in sorted(folder.iterdir())] if folder.is_dir() else []


def mutate(data: bytes, pool: list[bytes], rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(8)
        at = rng.randrange(len(out) + 1)
        if choice == 0 and out:  # flip a bit
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        elif choice == 1 and out:  # set a byte
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif choice == 2:  # insert something interesting
            out[at:at] = rng.choice(INTERESTING)
        elif choice == 3 and out:  # delete a run
            del out[at : at + rng.randint(1, 8)]
        elif choice == 4:  # truncate
            del out[at:]
        elif choice == 5 and out:  # duplicate a chunk
            begin = rng.randrange(len(out))
            out[at:at] = out[begin : begin + rng.randint(1, 16)]
        elif choice == 6 and pool:  # splice another input in
            other = rng.choice(pool)
            begin = rng.randrange(len(other) + 1)
            out[at:] = other[begin:]
        elif choice == 7 and out:  # a length or count byte off by a little
            i = rng.randrange(len(out))
            out[i] = (out[i] + rng.choice((-2, -1, 1, 2, 64, 128))) % 256
    return bytes(out)


def run(
    target: Target,
    seeds: list[bytes],
    *,
    executions: int | None = None,
    seconds: float | None = None,
    seed: int = 0,
) -> Stats:
    """Run `target` on the seeds, then on mutations of them, until `executions` inputs ran or
    `seconds` passed, whichever comes first; stops early after 3 findings."""
    rng = random.Random(seed)
    stats = Stats()
    pool = list(seeds) or [b""]
    began = time.monotonic()
    inputs = iter(pool)
    while executions is None or stats.executions < executions:
        if seconds is not None and time.monotonic() - began >= seconds:
            break
        data = next(inputs, None)
        if data is None:
            data = mutate(rng.choice(pool), pool, rng)
        stats.executions += 1
        try:
            target(data)
        except Exception:  # an assertion (C != reference) or an unexpected error: a finding
            digest = hashlib.sha1(data).hexdigest()[:12]
            report = f"input {digest} {data.hex()}\n{traceback.format_exc()}"
            stats.failures.append(report)
            stats.found.append((data, report))
            if len(stats.failures) >= 3:
                break
        if len(pool) < 5000 and rng.random() < 0.01:
            pool.append(data)  # keep a few mutants: deeper inputs without coverage feedback
    stats.seconds = time.monotonic() - began
    return stats
