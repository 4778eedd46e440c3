"""The one valid time range for span timestamps, decided at the ingest boundary for every store.

Storage keeps times as signed 64-bit nanoseconds (Arrow int64 columns, Elasticsearch longs in
microseconds), so a time at or past 2^63 ns (the year 2262) cannot be stored. Receivers accept
what their wire format allows (up to 2^64 ns); `collector.admission` then refuses a span whose
start is outside this range and clamps an end past it, with a warning, before any store sees it.
"""

from __future__ import annotations

MIN_NS = 1  # a start of 0 means "not set" in OTLP
MAX_NS = 2**63 - 1  # 2262-04-11T23:47:16.854775807Z


def in_range(time_ns: int) -> bool:
    return MIN_NS <= time_ns <= MAX_NS
