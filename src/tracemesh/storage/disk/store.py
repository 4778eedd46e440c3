"""The directory of a disk store: what is in it, opening it, and following a writer.

    DIR/TRACEMESH_DISK        marker with the format version; a directory without it is refused
    DIR/LOCK                  flock held by the one writing process
    DIR/wal/<seq>.wal         log segments; the highest is being appended to
    DIR/blocks/<seq>.block    immutable blocks; block <seq> holds what segment <seq> held

A segment's spans live in a head (a `MemoryStore`) until its block is written; then the head is
dropped and the segment deleted. A reading process (`query`) keeps its own heads by reading the
segments' new records, and picks up and drops blocks as the writer makes and deletes them.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from tracemesh.storage.api import StorageError
from tracemesh.storage.disk.block import Block, CorruptBlock
from tracemesh.storage.disk.log import batches, scan
from tracemesh.storage.memory.store import MemoryStore

MARKER = "TRACEMESH_DISK"
MARKER_TEXT = "tracemesh disk storage, format 1\n"
WAL_SUFFIX, BLOCK_SUFFIX, TMP_SUFFIX = ".wal", ".block", ".tmp"


@dataclass(slots=True)
class Head:
    """The spans of one log segment, searchable in memory until its block exists."""

    store: MemoryStore = field(default_factory=lambda: MemoryStore(0))
    opened: float = field(default_factory=time.monotonic)
    offset: int = 0  # bytes of the segment read so far (a following reader's position)
    at_start: bool = True
    complete: bool = False  # a reader has read all of a closed segment

    @property
    def spans(self) -> int:
        return self.store.span_count


@dataclass(slots=True)
class State:
    """What readers see: blocks by sequence number, heads by segment number."""

    blocks: dict[int, Block] = field(default_factory=dict)
    heads: dict[int, Head] = field(default_factory=dict)

    def blocks_oldest_first(self) -> list[Block]:
        return [self.blocks[seq] for seq in sorted(self.blocks)]

    def heads_oldest_first(self) -> list[Head]:
        return [self.heads[seq] for seq in sorted(self.heads)]


class Directory:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.wal = path / "wal"
        self.blocks = path / "blocks"
        self._lock_fd = -1

    def segment(self, seq: int) -> Path:
        return self.wal / f"{seq:012d}{WAL_SUFFIX}"

    def block(self, seq: int) -> Path:
        return self.blocks / f"{seq:012d}{BLOCK_SUFFIX}"

    def prepare(self, create: bool) -> bool:
        """Check (and for a writer, create) the layout; False when there is nothing yet."""
        marker = self.path / MARKER
        if not self.path.exists():
            if not create:
                return False
            self.path.mkdir(parents=True)
        if not self.path.is_dir():
            raise StorageError(f"disk.path {self.path} is not a directory")
        if marker.exists():
            text = marker.read_text(errors="replace")
            if text != MARKER_TEXT:
                raise StorageError(
                    f"{self.path} holds a different tracemesh disk format ({text.strip()!r}); "
                    "refusing to open it"
                )
        elif any(self.path.iterdir()):
            raise StorageError(
                f"{self.path} is not empty and is not a tracemesh disk store (no {MARKER} file); "
                "refusing to use it: point --disk.path at an empty or new directory"
            )
        elif create:
            _write_durably(marker, MARKER_TEXT.encode())
        else:
            return False
        if create:
            self.wal.mkdir(exist_ok=True)
            self.blocks.mkdir(exist_ok=True)
        return True

    def lock(self) -> None:
        fd = os.open(self.path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise StorageError(
                    f"another process writes {self.path}; one writer at a time (a `query` "
                    "process reads it without writing)"
                ) from None
            raise
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    def listing(self) -> tuple[list[int], list[int], list[Path]]:
        """(segment numbers, block numbers, leftover temporary files). Segments are listed first
        so that a segment deleted meanwhile has its block in the second listing."""
        segments = _numbers(self.wal, WAL_SUFFIX)
        blocks = _numbers(self.blocks, BLOCK_SUFFIX)
        leftovers = list(self.blocks.glob(f"*{TMP_SUFFIX}")) if self.blocks.exists() else []
        return segments, blocks, leftovers


def _numbers(directory: Path, suffix: str) -> list[int]:
    if not directory.exists():
        return []
    numbers = []
    for entry in directory.iterdir():
        if entry.name.endswith(TMP_SUFFIX):
            continue
        stem = entry.name.removesuffix(suffix)
        if not entry.name.endswith(suffix) or not stem.isdigit():
            raise StorageError(f"{entry} is not a file tracemesh made; refusing to guess its use")
        numbers.append(int(stem))
    return sorted(numbers)


def _write_durably(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    sync_dir(path.parent)


def sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_block(directory: Directory, seq: int) -> Block:
    try:
        return Block(directory.block(seq), seq)
    except CorruptBlock as exc:
        raise StorageError(f"{exc}; refusing to start rather than drop its spans") from None


def read_segment(directory: Directory, seq: int, head: Head) -> bool | None:
    """Add the segment's records past `head.offset` to the head: None when the file is gone,
    else whether everything in the file was read (no incomplete record left at its end).
    Raises CorruptLog (a StorageError) on damage."""
    path = directory.segment(seq)
    try:
        with open(path, "rb") as file:
            file.seek(head.offset)
            data = file.read()
    except FileNotFoundError:
        return None
    found = scan(data, head.at_start, str(path))
    for batch in batches(found.payloads, str(path)):
        head.store.add(batch)
    if found.end:
        head.at_start = False
        head.offset += found.end
    return found.end == len(data)


def follow(directory: Directory, state: State) -> None:
    """Bring a reading process's view fully up to date with the directory (on start)."""
    if not directory.prepare(create=False):
        return
    _, blocks, _ = directory.listing()
    for seq in blocks:
        if seq not in state.blocks:
            state.blocks[seq] = open_block(directory, seq)
    tail(directory, state)


def tail(directory: Directory, state: State) -> list[int]:
    """A reading process's cheap look before each read: new log records are read into heads
    and deleted blocks forgotten; returns the new blocks, which the caller opens in the
    background while their heads answer. Only a block whose segment went away before this
    process read all of it is opened here, as otherwise acknowledged spans would be missing."""
    if not directory.prepare(create=False):
        return []
    segments, blocks, _ = directory.listing()
    on_disk = set(blocks)
    for seq in set(state.blocks) - on_disk:
        del state.blocks[seq]  # deleted by retention
    for seq in list(state.heads):
        if seq in state.blocks or (seq not in segments and seq not in on_disk):
            del state.heads[seq]
    newest = max(segments, default=-1)
    for seq in segments:
        if seq in state.blocks:
            continue
        head = state.heads.setdefault(seq, Head())
        if head.complete:
            continue
        read_all = read_segment(directory, seq, head)
        # the writer opens the next segment only after its last write to this one
        head.complete = bool(read_all) and seq < newest
    waiting = []
    for seq in blocks:
        if seq in state.blocks:
            continue
        known = state.heads.get(seq)
        if seq in segments or (known is not None and known.complete):
            waiting.append(seq)
        else:
            state.blocks[seq] = open_block(directory, seq)
            state.heads.pop(seq, None)
    return waiting
