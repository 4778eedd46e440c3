"""Disk storage in real processes: SIGKILL mid-ingest loses no acknowledged span, and a second
process reads what the writer acknowledged while it keeps writing."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.server import ROOT
from tests.integration.storage.disk_writer import SPANS_PER_TRACE
from tracemesh.storage.disk.config import DiskConfig
from tracemesh.storage.disk.factory import DiskStorage


def _writer(path: Path, seal_spans: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.storage.disk_writer", str(path), str(seal_spans)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n", proc.stderr.read() if proc.stderr else ""
    return proc


def _close(proc: subprocess.Popen[str]) -> None:
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _acked(lines: list[str]) -> list[int]:
    numbers = []
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and parts[0] == "ack":  # a line cut by the kill is not an ack
            numbers.append(int(parts[1]))
    return numbers


def test_sigkill_mid_ingest_keeps_every_acknowledged_span(tmp_path: Path) -> None:
    path = tmp_path / "store"
    proc = _writer(path, seal_spans=4_000)  # seals into blocks while being killed
    assert proc.stdout is not None
    lines: list[str] = []
    # Kill after 2 s of writing, or later on a busy machine: once enough writes were acknowledged
    # and a block was sealed for the kill to land among both (at most 60 s).
    start = time.monotonic()
    while time.monotonic() - start < 60:
        lines.append(proc.stdout.readline())
        if time.monotonic() - start >= 2.0 and len(lines) > 300 and any(path.glob("blocks/*")):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    lines += proc.stdout.readlines()  # acks printed before the kill, still in the pipe
    _close(proc)
    acked = _acked(lines)
    assert len(acked) > 200, f"too few writes to prove anything: {len(acked)}"
    assert any((path / "blocks").iterdir()), "no block was sealed before the kill"

    async def check() -> None:
        storage = DiskStorage(DiskConfig(str(path), retention_ns=0))
        await storage.start()
        try:
            reader = storage.reader()
            missing = []
            for number in acked:
                spans = await reader.get_trace(number.to_bytes(16, "big"))
                if len(spans) != SPANS_PER_TRACE:
                    missing.append((number, len(spans)))
            assert not missing, f"{len(missing)} of {len(acked)} acknowledged traces lost"
            _, stored = storage.stats()
            assert stored >= len(acked) * SPANS_PER_TRACE
        finally:
            await storage.close()

    asyncio.run(check())


def test_a_reading_process_sees_what_the_writer_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "store"
    proc = _writer(path, seal_spans=3_000)
    assert proc.stdout is not None

    async def follow() -> tuple[int, int]:
        storage = DiskStorage(DiskConfig(str(path), writable=False))
        await storage.start()
        checked = 0
        try:
            reader = storage.reader()
            begin = time.monotonic()
            # 1.5 s of checks, longer if no block was sealed yet (a loaded machine)
            while time.monotonic() - begin < (1.5 if storage.state.blocks else 20):
                acked = _acked([proc.stdout.readline()])  # type: ignore[union-attr]
                if acked and acked[0] % 7 == 0:
                    spans = await reader.get_trace(acked[0].to_bytes(16, "big"))
                    assert len(spans) == SPANS_PER_TRACE, f"trace {acked[0]}: {len(spans)}"
                    checked += 1
            return checked, len(storage.state.blocks)
        finally:
            await storage.close()

    try:
        checked, blocks = asyncio.run(follow())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        _close(proc)
    assert checked > 10
    assert blocks > 0, "the reader never saw a sealed block"
