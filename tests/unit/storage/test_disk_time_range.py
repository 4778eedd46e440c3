"""A span with times no int64 column can hold never keeps a disk block from being written."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from tests.contract.traces import make_span, process, trace_id
from tracemesh.codecs.otlp_proto import batch_from_spans
from tracemesh.model.timerange import MAX_NS
from tracemesh.storage.disk.config import DiskConfig
from tracemesh.storage.disk.factory import DiskStorage


def test_a_span_past_2262_is_left_out_of_the_block_and_the_rest_written(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int, int]:
        # The disk store's writer is below the ingest boundary: hand it the span directly,
        # as a log segment written before the boundary existed would.
        storage = DiskStorage(DiskConfig(str(tmp_path), seal_spans=3))
        await storage.start()
        svc = process("overflow")
        good = [make_span(1, n, svc, start_ms=n) for n in (1, 2)]
        bad = dataclasses.replace(good[0], span_id=b"\x00" * 7 + b"\x09", end_ns=MAX_NS + 10)
        worse = dataclasses.replace(
            make_span(2, 1, svc), start_ns=2**64 - 2, end_ns=2**64 - 1
        )  # a whole trace past the range
        await storage.writer().write(batch_from_spans([*good, bad, worse]))
        await asyncio.wait_for(storage.settle(), 60)  # before the fix: the seal retried forever
        blocks = len(list((tmp_path / "blocks").iterdir()))
        await storage.close()
        reopened = DiskStorage(DiskConfig(str(tmp_path)))
        await reopened.start()
        try:
            kept = len(await reopened.reader().get_trace(trace_id(1)))
            gone = len(await reopened.reader().get_trace(trace_id(2)))
        finally:
            await reopened.close()
        return blocks, kept, gone

    blocks, kept, gone = asyncio.run(scenario())
    assert blocks == 1  # the segment became a block instead of failing with OverflowError
    assert (kept, gone) == (2, 0)
