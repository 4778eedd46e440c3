"""The disk backend in the two shapes the contract suite runs: spans still in the log (`disk`),
and every write sealed into its own block before it returns (`disk-blocks`), so that searches,
traces and dependencies spread over many blocks are checked too."""

from __future__ import annotations

from pathlib import Path

from tracemesh.model.batch import SpanBatch
from tracemesh.storage.disk.config import DiskConfig
from tracemesh.storage.disk.factory import DiskStorage, DiskWriter


def in_log(path: Path) -> DiskStorage:
    return DiskStorage(DiskConfig(str(path / "disk")))


class _BlockEveryWrite(DiskWriter):
    def __init__(self, storage: DiskStorage) -> None:
        super().__init__(storage)
        self._sealing = storage

    async def write(self, batch: SpanBatch) -> None:
        await super().write(batch)
        await self._sealing.settle()


class BlockPerWrite(DiskStorage):
    def writer(self) -> DiskWriter:
        return _BlockEveryWrite(self)


def in_blocks(path: Path) -> DiskStorage:
    return BlockPerWrite(DiskConfig(str(path / "disk"), seal_spans=1))
