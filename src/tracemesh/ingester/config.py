"""Settings of the ingester's consumer (`--kafka.consumer.*`, `--ingester.*`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracemesh.codecs.kafka_spans import PROTOBUF, check_encoding
from tracemesh.storage.kafka.config import common_config


@dataclass(frozen=True, slots=True)
class IngesterConfig:
    brokers: str = "127.0.0.1:9092"
    topic: str = "jaeger-spans"
    group_id: str = "jaeger-ingester"
    encoding: str = PROTOBUF
    batch_messages: int = 2_000  # messages decoded and written to storage in one step, at most
    # How long a dead ingester holds its partitions before the group hands them to the others.
    session_timeout: float = 10.0

    def __post_init__(self) -> None:
        check_encoding(self.encoding)
        if not self.brokers or not self.topic or not self.group_id:
            raise ValueError("kafka.consumer brokers, topic and group-id must be set")
        if self.batch_messages < 1:
            raise ValueError("ingester.batch-messages must be positive")

    def client_config(self) -> dict[str, Any]:
        return {
            **common_config(self.brokers),
            "group.id": self.group_id,
            # Offsets are committed by hand, only after storage took the spans: at least once.
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",  # a new group starts at the oldest span kept
            "session.timeout.ms": int(self.session_timeout * 1000),
            "statistics.interval.ms": 1000,  # consumer lag per partition, for /metrics
        }
