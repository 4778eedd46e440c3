"""Disk storage files: damaged, foreign or torn data is reported or tolerated as it should be,
one writer at a time, retention by age and by size, and hostile bytes in the log reader."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.contract.traces import make_span, process, trace_id
from tracemesh.codecs.otlp_proto import batch_from_spans
from tracemesh.storage.api import StorageError
from tracemesh.storage.disk.block import Block, CorruptBlock
from tracemesh.storage.disk.config import DiskConfig, parse_duration
from tracemesh.storage.disk.factory import DiskStorage
from tracemesh.storage.disk.log import SEGMENT_HEADER, CorruptLog, batches, frame, scan

T = TypeVar("T")
HOUR = 3_600_000_000_000


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def _fill(path: Path, traces: range, seal: bool = True, **config: Any) -> DiskStorage:
    """A started store holding one trace per write; each write sealed into a block if `seal`."""
    storage = DiskStorage(DiskConfig(str(path), seal_spans=1 if seal else 10**6, **config))
    await storage.start()
    svc = process("files")
    for n in traces:
        await storage.writer().write(batch_from_spans([make_span(n, 1, svc, start_ms=n)]))
        await storage.settle()
    return storage


async def _trace_count(path: Path, traces: range) -> int:
    storage = DiskStorage(DiskConfig(str(path)))
    await storage.start()
    try:
        found = [await storage.reader().get_trace(trace_id(n)) for n in traces]
        return sum(1 for spans in found if spans)
    finally:
        await storage.close()


def test_reopens_what_is_in_blocks_and_in_the_log(tmp_path: Path) -> None:
    async def scenario() -> None:
        storage = await _fill(tmp_path, range(1, 4))  # three blocks
        await storage.close()
        storage = await _fill(tmp_path, range(4, 6), seal=False)  # two traces in the log only
        await storage.close()

    run(scenario())
    assert len(list((tmp_path / "blocks").iterdir())) == 3
    assert run(_trace_count(tmp_path, range(1, 6))) == 5


def test_a_foreign_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("someone else's data")
    with pytest.raises(StorageError, match="not a tracemesh disk store"):
        run(_fill(tmp_path, range(0)))
    assert (tmp_path / "notes.txt").read_text() == "someone else's data"


def test_another_format_version_is_refused(tmp_path: Path) -> None:
    run(run_and_close(_fill(tmp_path, range(1, 2))))
    (tmp_path / "TRACEMESH_DISK").write_text("tracemesh disk storage, format 9\n")
    with pytest.raises(StorageError, match="different tracemesh disk format"):
        run(_fill(tmp_path, range(0)))


async def run_and_close(started: Coroutine[Any, Any, DiskStorage]) -> None:
    storage = await started
    await storage.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_damaged_block_stops_the_start(tmp_path: Path, damage: str) -> None:
    run(run_and_close(_fill(tmp_path, range(1, 3))))
    block = sorted((tmp_path / "blocks").iterdir())[0]
    data = block.read_bytes()
    if damage == "garbage":
        block.write_bytes(data[:100] + os.urandom(len(data) - 200) + data[-100:])
    elif damage == "truncated":
        block.write_bytes(data[: len(data) // 2])
    else:
        block.write_bytes(b"")
    with pytest.raises(StorageError, match=re.escape(block.name)):
        run(_fill(tmp_path, range(0)))


def test_a_foreign_file_among_the_blocks_stops_the_start(tmp_path: Path) -> None:
    run(run_and_close(_fill(tmp_path, range(1, 2))))
    (tmp_path / "blocks" / "000000000099.block").write_bytes(b"PAR1 not ours PAR1")
    with pytest.raises(StorageError, match=r"000000000099\.block"):
        run(_fill(tmp_path, range(0)))
    (tmp_path / "blocks" / "000000000099.block").unlink()
    (tmp_path / "blocks" / "readme").write_text("x")
    with pytest.raises(StorageError, match="readme"):
        run(_fill(tmp_path, range(0)))


def test_a_damaged_record_inside_the_log_stops_the_start(tmp_path: Path) -> None:
    run(run_and_close(_fill(tmp_path, range(1, 4), seal=False)))
    segment = next((tmp_path / "wal").iterdir())
    data = bytearray(segment.read_bytes())
    data[len(SEGMENT_HEADER) + 20] ^= 0xFF  # inside the first of three records
    segment.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="checksum mismatch"):
        run(_fill(tmp_path, range(0)))


def test_a_torn_last_record_is_dropped_and_the_rest_kept(tmp_path: Path) -> None:
    run(run_and_close(_fill(tmp_path, range(1, 4), seal=False)))
    segment = next((tmp_path / "wal").iterdir())
    data = segment.read_bytes()
    segment.write_bytes(data[:-7])  # the crash hit while the third record was being written

    assert run(_trace_count(tmp_path, range(1, 4))) == 2


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    async def scenario() -> None:
        first = await _fill(tmp_path, range(1, 2))
        try:
            with pytest.raises(StorageError, match="another process writes"):
                await _fill(tmp_path, range(0))
            reader = DiskStorage(DiskConfig(str(tmp_path), writable=False))
            await reader.start()
            assert len(await reader.reader().get_trace(trace_id(1))) == 1
            await reader.close()
        finally:
            await first.close()

    run(scenario())


def test_retention_by_age_deletes_whole_old_blocks(tmp_path: Path) -> None:
    async def scenario() -> None:
        storage = await _fill(tmp_path, range(1, 4), retention_ns=2 * HOUR)  # spans are 1 h old
        try:
            assert sorted(storage.state.blocks) == [1, 2, 3]
            assert storage.expire(now_ns=storage.state.blocks[1].max_start + HOUR) == []
            gone = storage.expire(now_ns=storage.state.blocks[3].max_start + 3 * HOUR)
            assert sorted(gone) == [1, 2, 3]
            assert not list((tmp_path / "blocks").iterdir())
            assert await storage.reader().get_trace(trace_id(1)) == []
        finally:
            await storage.close()

    run(scenario())


def test_retention_by_size_deletes_the_oldest_blocks(tmp_path: Path) -> None:
    async def scenario() -> None:
        storage = await _fill(tmp_path, range(1, 6), retention_ns=0)
        sizes = {seq: block.size for seq, block in storage.state.blocks.items()}
        await storage.close()
        keep = sum(sorted(sizes.values())[-2:]) + 100  # two blocks and an empty log segment
        storage = DiskStorage(DiskConfig(str(tmp_path), retention_ns=0, max_bytes=keep))
        await storage.start()
        try:
            assert len(storage.expire()) == 3
            assert sorted(storage.state.blocks) == sorted(sizes)[-2:]
            assert await storage.reader().get_trace(trace_id(1)) == []
            assert len(await storage.reader().get_trace(trace_id(5))) == 1
        finally:
            await storage.close()

    run(scenario())


def test_durations() -> None:
    assert parse_duration("72h") == 72 * HOUR
    assert parse_duration("1h30m") == HOUR * 3 // 2
    assert parse_duration("7d") == 168 * HOUR
    assert parse_duration("0") == 0
    for bad in ("", "72", "h", "1x", "-1h", "1h 2m"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


@given(st.binary(max_size=300), st.booleans())
def test_the_log_reader_takes_any_bytes(data: bytes, with_header: bool) -> None:
    """Whatever the file holds: whole records, a torn tail, or a clear CorruptLog."""
    if with_header:
        data = SEGMENT_HEADER + data
    try:
        found = scan(data, True, "segment")
        list(batches(found.payloads, "segment"))
    except CorruptLog:
        pass


@given(st.binary(max_size=200))
def test_a_checksummed_record_that_is_not_a_batch_is_reported(payload: bytes) -> None:
    found = scan(SEGMENT_HEADER + frame(payload), True, "segment")
    assert found.payloads == [payload] and not found.torn
    try:
        list(batches(found.payloads, "segment"))
    except CorruptLog as exc:
        assert "does not decode" in str(exc)


@given(st.binary(min_size=0, max_size=2000))
def test_the_block_reader_takes_any_bytes(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("block") / "000000000001.block"
    path.write_bytes(data)
    with pytest.raises(CorruptBlock):
        Block(path, 1)
