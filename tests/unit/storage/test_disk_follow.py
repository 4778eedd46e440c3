"""A reading process follows a writer: acknowledged spans are visible to its next read, new
blocks are swapped in for their heads by the background follower, and no span shows twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.contract.traces import make_span, process, trace_id
from tracemesh.codecs.otlp_proto import batch_from_spans
from tracemesh.storage.disk.config import DiskConfig
from tracemesh.storage.disk.factory import FOLLOW_SECONDS, DiskStorage
from tracemesh.storage.disk.store import tail


def test_a_reader_sees_writes_at_once_and_swaps_blocks_in_behind_the_scenes(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        writer = DiskStorage(DiskConfig(str(tmp_path), seal_spans=4))
        await writer.start()
        svc = process("follow")
        await writer.writer().write(batch_from_spans([make_span(1, 1, svc)]))
        reader = DiskStorage(DiskConfig(str(tmp_path), writable=False))
        await reader.start()
        try:
            spans = reader.reader()
            assert len(await spans.get_trace(trace_id(1))) == 1  # from the log
            await writer.writer().write(batch_from_spans([make_span(1, 2, svc)]))
            assert len(await spans.get_trace(trace_id(1))) == 2  # acknowledged: seen at once
            # fill the segment: the writer rotates and seals it into block 1
            await writer.writer().write(
                batch_from_spans([make_span(2, n, svc) for n in range(1, 3)])
            )
            await writer.settle()
            assert list(writer.state.blocks) == [1]
            for _ in range(100):  # the follower task opens the block and drops the head
                if 1 in reader.state.blocks:
                    break
                await asyncio.sleep(FOLLOW_SECONDS)
            assert 1 in reader.state.blocks and 1 not in reader.state.heads
            assert len(await spans.get_trace(trace_id(1))) == 2  # once each, not twice
            assert len(await spans.get_trace(trace_id(2))) == 2
            # a block already swapped in is not waited for again
            assert tail(reader.directory, reader.state) == []
        finally:
            await reader.close()
            await writer.close()

    asyncio.run(scenario())


def test_a_complete_head_answers_until_its_block_is_ready(tmp_path: Path) -> None:
    """A segment read whole after the next one appeared needs no block yet: the read does not
    open it (the follower will)."""

    async def scenario() -> None:
        writer = DiskStorage(DiskConfig(str(tmp_path), seal_spans=2))
        await writer.start()
        reader = DiskStorage(DiskConfig(str(tmp_path), writable=False))
        await reader.start()
        try:
            for task in reader._tasks:  # no follower: only what reads do is seen
                task.cancel()
            svc = process("follow")
            # pause sealing: the closed segment stays while its block is not written
            seal = writer._tasks[1]
            seal.cancel()
            await asyncio.gather(seal, return_exceptions=True)
            await writer.writer().write(batch_from_spans([make_span(1, n, svc) for n in (1, 2)]))
            for _ in range(500):  # the flusher rotates after acknowledging
                if len(writer.state.heads) == 2:
                    break
                await asyncio.sleep(0.01)
            assert sorted(writer.state.heads) == [1, 2]  # segment 1 closed, 2 open
            waiting = tail(reader.directory, reader.state)
            assert waiting == [] and reader.state.heads[1].complete
            # now the block is written and the segment deleted
            writer._tasks[1] = asyncio.create_task(writer._seal_loop())
            writer._to_seal.put_nowait(1)
            await writer.settle()
            assert tail(reader.directory, reader.state) == [1]  # left to the follower
            assert 1 not in reader.state.blocks
            assert len(await reader.reader().get_trace(trace_id(1))) == 2  # the head answers
        finally:
            await reader.close()
            await writer.close()

    asyncio.run(scenario())
