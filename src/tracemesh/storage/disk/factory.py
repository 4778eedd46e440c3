"""`DiskStorage`: the disk backend as a `Storage` — open, write with group commit, seal, expire.

Writes: a batch is framed into the open log segment and acknowledged after `fdatasync`. Batches
that arrive while a sync runs are written and synced together with the next one (group commit),
so many concurrent writers share one sync. After the sync the batch joins the segment's head and
is readable. A segment past `seal_spans` spans or `seal_seconds` of age is closed and a new one
opened; a background task writes the closed segment's head as a block, then deletes the segment.

Only one process writes a directory (a flock); any number of `query` processes read it
(`writable=False`), following the writer through the files themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import time
from pathlib import Path

from tracemesh.model.batch import SpanBatch
from tracemesh.storage.api import Capabilities, StorageError, StorageFullError
from tracemesh.storage.disk.block import Block, write_block
from tracemesh.storage.disk.config import DiskConfig
from tracemesh.storage.disk.log import SEGMENT_HEADER, encode_batch, frame
from tracemesh.storage.disk.reader import DiskDependencyReader, DiskReader
from tracemesh.storage.disk.store import (
    Directory,
    Head,
    State,
    follow,
    open_block,
    read_segment,
    sync_dir,
    tail,
)

log = logging.getLogger("tracemesh.storage.disk")

CAPABILITIES = Capabilities(
    search_without_service=True,
    span_kind_in_operations=True,
    tag_regex=False,
    computes_dependencies=True,
    persistent=True,
    shared_between_processes=True,
)
HOUSEKEEPING_SECONDS = 5.0
FOLLOW_SECONDS = 0.1  # how stale a reading process's view may be
BATCHES_PER_PAUSE = 4


def _open_loaded(directory: Directory, seq: int) -> Block:
    block = open_block(directory, seq)
    block.warm()
    return block


class DiskStorage:
    """Spans in a directory: durable when `write` returns, kept across restarts, shared with
    reading processes, expired by age and size a whole block at a time."""

    name = "disk"
    capabilities = CAPABILITIES
    # A collector answers its clients only once their spans are written (the pipeline's confirm
    # mode): an acknowledged span is on disk, not in a queue that a crash would lose.
    confirms_writes = True

    def __init__(self, config: DiskConfig) -> None:
        self.config = config
        self.directory = Directory(Path(config.path))
        self.state = State()
        self._fd = -1
        self._seq = 0  # the open segment
        self._offset = 0  # its length: where the next record goes
        self._pending: list[tuple[bytes, SpanBatch, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._io = asyncio.Lock()  # one sync or rotation at a time
        self._to_seal: asyncio.Queue[int] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._failed: str = ""
        self._waiting: list[int] = []  # blocks a reading process has yet to open
        self._closed = False
        self._writer = DiskWriter(self)
        self._reader = DiskReader(self)
        self._dependency_reader = DiskDependencyReader(self)

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if not self.config.writable:
            await asyncio.to_thread(self._follow)
            self._tasks = [
                asyncio.create_task(self._preload(), name="disk-preload"),
                asyncio.create_task(self._follow_loop(), name="disk-follow"),
            ]
            return
        await asyncio.to_thread(self._open_for_writing)
        for seq in sorted(self.state.heads):
            if seq != self._seq:
                self._to_seal.put_nowait(seq)  # recovered segments become blocks
        self._tasks = [
            asyncio.create_task(self._preload(), name="disk-preload"),
            asyncio.create_task(self._seal_loop(), name="disk-seal"),
            asyncio.create_task(self._housekeeping(), name="disk-housekeeping"),
        ]

    async def _preload(self) -> None:
        """Decompress the blocks' search columns in the background, newest first, so the first
        searches after a start do not pay for it."""
        for seq in sorted(self.state.blocks, reverse=True):
            block = self.state.blocks.get(seq)
            if block is not None:
                await asyncio.to_thread(block.warm)
        for seq in sorted(self.state.blocks, reverse=True):
            block = self.state.blocks.get(seq)
            if block is not None:
                await asyncio.to_thread(block.links)

    async def check(self) -> bool:
        if not self.config.writable:
            return self.directory.path.exists()
        return self._fd >= 0 and not self._failed

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.directory.unlock()
        self.state = State()

    def writer(self) -> DiskWriter:
        return self._writer

    def reader(self) -> DiskReader:
        return self._reader

    def dependency_reader(self) -> DiskDependencyReader:
        return self._dependency_reader

    def view(self) -> State:
        """The current blocks and heads. A reading process first reads the log's new records
        (so it sees every acknowledged span); new blocks are opened by its follower task, and
        swapped in when ready, never by a query."""
        if not self.config.writable and not self._closed:
            self._waiting = tail(self.directory, self.state)
        return self.state

    async def settle(self) -> None:
        """Wait until every closed log segment is a block (for tests and benchmarks)."""
        while any(seq != self._seq for seq in self.state.heads) and not self._closed:
            await asyncio.sleep(0.001)

    def stats(self) -> tuple[int, int]:
        """(traces, spans) held; a trace split over blocks counts once per block."""
        state = self.state
        traces = sum(b.traces for b in state.blocks.values())
        traces += sum(len(h.store.traces) for h in state.heads.values())
        spans = sum(b.spans for b in state.blocks.values())
        return traces, spans + sum(h.spans for h in state.heads.values())

    def _follow(self) -> None:
        follow(self.directory, self.state)

    async def _follow_loop(self) -> None:
        while True:
            await asyncio.sleep(FOLLOW_SECONDS)
            try:
                self.view()
                for seq in self._waiting:
                    if seq not in self.state.blocks:
                        block = await asyncio.to_thread(_open_loaded, self.directory, seq)
                        if seq not in self.state.blocks:
                            self.state.blocks[seq] = block  # one step: head out, block in
                            self.state.heads.pop(seq, None)
            except (StorageError, OSError) as exc:  # keep serving what was read; say why
                log.error("following %s: %s", self.directory.path, exc)
                await asyncio.sleep(HOUSEKEEPING_SECONDS)

    def _open_for_writing(self) -> None:
        directory = self.directory
        directory.prepare(create=True)
        directory.lock()
        try:
            segments, blocks, leftovers = directory.listing()
            for path in leftovers:  # a block being written when the process died
                path.unlink()
            for seq in blocks:
                self.state.blocks[seq] = open_block(directory, seq)
            for seq in segments:
                if seq in self.state.blocks:  # sealed, but not yet deleted before a crash
                    directory.segment(seq).unlink()
                    continue
                head = Head()
                read_segment(directory, seq, head)
                if head.spans:
                    self.state.heads[seq] = head
                else:  # opened but never written to
                    directory.segment(seq).unlink()
            self._seq = max([*segments, *blocks], default=0) + 1
            self._create_segment()
        except BaseException:
            directory.unlock()
            raise

    def _create_segment(self) -> None:
        path = self.directory.segment(self._seq)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            _write_all(fd, SEGMENT_HEADER)
            os.fdatasync(fd)
            sync_dir(path.parent)
        except BaseException:
            os.close(fd)
            raise
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._offset = fd, len(SEGMENT_HEADER)
        self.state.heads[self._seq] = Head()

    # ---- writing --------------------------------------------------------------------------

    async def append(self, batch: SpanBatch) -> None:
        if self._closed or self._fd < 0:
            raise StorageError("disk storage is closed")
        if self._failed:
            raise StorageError(self._failed)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((encode_batch(batch), batch, done))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        try:
            while self._pending:
                group, self._pending = self._pending, []
                async with self._io:
                    await self._commit(group)
                    if self._should_seal():
                        await self._rotate()
        finally:
            self._flusher = None

    async def _commit(self, group: list[tuple[bytes, SpanBatch, asyncio.Future[None]]]) -> None:
        data = b"".join([frame(payload) for payload, _, _ in group])
        try:
            await asyncio.to_thread(self._append_sync, data)
        except OSError as exc:
            error: StorageError = (
                StorageFullError(f"disk full writing {self.directory.path}: {exc}")
                if exc.errno in (errno.ENOSPC, errno.EDQUOT)
                else StorageError(f"writing {self.directory.path} failed: {exc}")
            )
            for _, _, done in group:
                if not done.done():
                    done.set_exception(error)
            return
        head = self.state.heads[self._seq]
        for _, batch, done in group:
            head.store.add(batch)  # readable once durable, never before
            if not done.done():
                done.set_result(None)

    def _append_sync(self, data: bytes) -> None:
        try:
            _write_all(self._fd, data)
            os.fdatasync(self._fd)
        except OSError:
            # Cut off whatever part was written, so the segment stays a clean run of records.
            try:
                os.ftruncate(self._fd, self._offset)
            except OSError as exc:
                self._failed = f"{self.directory.path}: cannot repair a failed write ({exc})"
            raise
        self._offset += len(data)

    def _should_seal(self) -> bool:
        head = self.state.heads[self._seq]
        if not head.spans:
            return False
        if head.spans >= self.config.seal_spans:
            return True
        return time.monotonic() - head.opened >= self.config.seal_seconds

    async def _rotate(self) -> None:
        """Close the open segment (to be sealed) and open the next. Holds `_io`."""
        sealed = self._seq
        self._seq += 1
        try:
            await asyncio.to_thread(self._create_segment)
        except OSError as exc:
            self._seq = sealed  # keep appending to the old one
            log.error("cannot open a new log segment in %s: %s", self.directory.path, exc)
            return
        self._to_seal.put_nowait(sealed)

    async def _seal_loop(self) -> None:
        while True:
            seq = await self._to_seal.get()
            head = self.state.heads.get(seq)
            if head is None:
                continue
            if not head.spans:  # nothing to keep: no block, just drop the segment
                del self.state.heads[seq]
                with contextlib.suppress(FileNotFoundError):
                    await asyncio.to_thread(self.directory.segment(seq).unlink)
                continue
            path = self.directory.block(seq)
            try:
                dropped = await asyncio.to_thread(write_block, head.store, path)
                if dropped:
                    log.error("block %s: %d span(s) with times past 2262 left out", path, dropped)
                block = await asyncio.to_thread(open_block, self.directory, seq)
                await asyncio.to_thread(block.search_columns)
            except Exception as exc:  # the segment stays, so nothing is lost: try again later
                log.error("writing block %s failed, its log segment stays: %r", path, exc)
                await asyncio.sleep(HOUSEKEEPING_SECONDS)
                self._to_seal.put_nowait(seq)
                continue
            self.state.blocks[seq] = block  # one step: readers see the head or the block
            del self.state.heads[seq]
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(self.directory.segment(seq).unlink)
            self.expire()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            if self._should_seal() and not self._io.locked():
                async with self._io:
                    if self._should_seal():
                        await self._rotate()
            self.expire()

    def expire(self, now_ns: int | None = None) -> list[int]:
        """Delete whole blocks past the retention age, then the oldest ones while the store is
        over its size limit. Returns the deleted block numbers."""
        config, state = self.config, self.state
        now_ns = time.time_ns() if now_ns is None else now_ns
        doomed = []
        if config.retention_ns:
            doomed = [
                seq
                for seq, block in state.blocks.items()
                if block.max_start < now_ns - config.retention_ns
            ]
        if config.max_bytes:
            total = sum(b.size for b in state.blocks.values()) + self._log_bytes()
            total -= sum(state.blocks[seq].size for seq in doomed)
            for seq in sorted(state.blocks):
                if total <= config.max_bytes:
                    break
                if seq not in doomed:
                    doomed.append(seq)
                    total -= state.blocks[seq].size
        for seq in doomed:
            block = state.blocks.pop(seq, None)
            if block is not None:
                with contextlib.suppress(FileNotFoundError):
                    block.path.unlink()
        return doomed

    def _log_bytes(self) -> int:
        total = 0
        for seq in list(self.state.heads):
            with contextlib.suppress(FileNotFoundError):
                total += self.directory.segment(seq).stat().st_size
        return total


class DiskWriter:
    def __init__(self, storage: DiskStorage) -> None:
        self._storage = storage

    async def write(self, batch: SpanBatch) -> None:
        if batch.span_count:
            await self._storage.append(batch)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
