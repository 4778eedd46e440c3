"""Benchmark: which engine can take spans durably at >=100k spans/s on one core?

Run: `.venv/bin/python bench/storage_engines.py [--spans 200000] [--batch 1000]`. Each engine
stores the same OTLP spans (the data set of search_memory.py) one batch per durable commit — the
unit a client's acknowledgement waits for — and keeps the raw span bytes plus the index columns
search needs. Prints spans/s by CPU time and by wall time, and disk bytes per span after closing.

* `log`: append-only file, one framed record per batch, `fdatasync` before acknowledging.
* `duckdb`: Arrow table insert + COMMIT per batch (DuckDB syncs its WAL on commit).
* `sqlite`: WAL mode, `synchronous=FULL`, executemany + COMMIT per batch, trace-id index.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))
from search_memory import _request
from tracemesh.codecs.otlp_proto import batch_from_request, parse_request
from tracemesh.model.batch import SpanRow

Rows = list[tuple[SpanRow, str]]  # (row, service)


def _batches(spans: int, batch: int) -> list[Rows]:
    rng = random.Random(7)
    now = time.time_ns()
    traces = spans // 10
    rows: Rows = []
    for first in range(0, traces, 50):
        decoded = batch_from_request(parse_request(_request(rng, first, now, traces))).batch
        for group in decoded.groups:
            rows.extend((row, group.resource.service_name) for row in group.rows)
    return [rows[i : i + batch] for i in range(0, len(rows), batch)]


def _log(directory: Path, batches: list[Rows]) -> None:
    fd = os.open(directory / "wal", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    pack = struct.Struct("<16s8sB").pack
    for rows in batches:
        parts = []
        for row, _ in rows:
            parts.append(pack(row.trace_id, row.span_id, row.kind))
            parts.append(struct.pack("<I", len(row.raw)))
            parts.append(row.raw)
        payload = b"".join(parts)
        os.write(fd, struct.pack("<II", len(payload), zlib.crc32(payload)) + payload)
        os.fdatasync(fd)
    os.close(fd)


def _duckdb(directory: Path, batches: list[Rows]) -> None:
    db = duckdb.connect(str(directory / "spans.duckdb"))
    db.execute(
        "CREATE TABLE spans (trace_id BLOB, span_id BLOB, service VARCHAR, name VARCHAR,"
        " kind TINYINT, start_ns BIGINT, end_ns BIGINT, status TINYINT, raw BLOB)"
    )
    for rows in batches:
        arrow_batch = pa.table(
            {
                "trace_id": [r.trace_id for r, _ in rows],
                "span_id": [r.span_id for r, _ in rows],
                "service": [s for _, s in rows],
                "name": [r.name for r, _ in rows],
                "kind": pa.array([r.kind for r, _ in rows], pa.int8()),
                "start_ns": [r.start_ns for r, _ in rows],
                "end_ns": [r.end_ns for r, _ in rows],
                "status": pa.array([r.status_code for r, _ in rows], pa.int8()),
                "raw": [r.raw for r, _ in rows],
            }
        )
        db.execute("BEGIN")
        db.register("arrow_batch", arrow_batch)
        db.execute("INSERT INTO spans SELECT * FROM arrow_batch")
        db.unregister("arrow_batch")
        db.execute("COMMIT")
    db.execute("CHECKPOINT")
    db.close()


def _sqlite(directory: Path, batches: list[Rows]) -> None:
    db = sqlite3.connect(directory / "spans.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE spans (trace_id BLOB, span_id BLOB, parent BLOB, name TEXT, service TEXT,"
        " kind INT, start_ns INT, end_ns INT, status INT, raw BLOB)"
    )
    db.execute("CREATE INDEX by_trace ON spans (trace_id)")
    for rows in batches:
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO spans VALUES (?,?,?,?,?,?,?,?,?,?)",
            [(*r[:4], s, *r[4:]) for r, s in rows],
        )
        db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


ENGINES: dict[str, Callable[[Path, list[Rows]], None]] = {
    "log": _log,
    "duckdb": _duckdb,
    "sqlite": _sqlite,
}


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engine", action="append", choices=sorted(ENGINES))
    args = parser.parse_args()
    batches = _batches(args.spans, args.batch)
    spans = sum(map(len, batches))
    print(f"{spans:,} spans in batches of {args.batch}, one durable commit per batch")
    for name in args.engine or list(ENGINES):
        cpu, wall, size = [], [], 0
        for _ in range(args.runs):
            directory = Path(tempfile.mkdtemp(prefix=f"bench-{name}-", dir="bench/out"))
            begin_cpu, begin_wall = time.process_time(), time.perf_counter()
            ENGINES[name](directory, batches)
            cpu.append(time.process_time() - begin_cpu)
            wall.append(time.perf_counter() - begin_wall)
            size = _size(directory)
            shutil.rmtree(directory)
        print(
            f"{name:<7} {spans / statistics.median(cpu):>10,.0f} spans/s CPU"
            f" {spans / statistics.median(wall):>10,.0f} spans/s wall"
            f" {size / spans:>6.0f} B/span on disk"
        )


if __name__ == "__main__":
    main()
