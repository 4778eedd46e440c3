"""Settings of the Kafka producer (`--kafka.producer.*`) and what every Kafka client shares."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tracemesh.codecs.kafka_spans import PROTOBUF, check_encoding

COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")


@dataclass(frozen=True, slots=True)
class KafkaProducerConfig:
    brokers: str = "127.0.0.1:9092"
    topic: str = "jaeger-spans"
    encoding: str = PROTOBUF
    compression: str = "lz4"
    # How long one message may wait for the broker's acknowledgement, retries included, before
    # the write fails (librdkafka's message.timeout.ms). Brief broker restarts fit inside it.
    timeout: float = 30.0
    # Messages handed to the client and not yet acknowledged, at most; past it a write waits.
    max_in_flight_messages: int = 100_000

    def __post_init__(self) -> None:
        check_encoding(self.encoding)
        if self.compression not in COMPRESSIONS:
            raise ValueError(
                f"unknown Kafka compression {self.compression!r}; use one of "
                + ", ".join(COMPRESSIONS)
            )
        if not self.brokers or not self.topic:
            raise ValueError("kafka.producer.brokers and kafka.producer.topic must be set")
        if self.timeout <= 0 or self.max_in_flight_messages < 1:
            raise ValueError("kafka.producer.timeout and the in-flight bound must be positive")

    def client_config(self) -> dict[str, Any]:
        return {
            **common_config(self.brokers),
            "acks": "all",
            "enable.idempotence": True,  # retries never duplicate or reorder a partition
            "compression.type": self.compression,
            "linger.ms": 5,
            "message.timeout.ms": int(self.timeout * 1000),
            "queue.buffering.max.messages": self.max_in_flight_messages,
            # The key (trace id) picks the partition, hashed as Kafka's Java client does.
            "partitioner": "murmur2_random",
        }


def common_config(brokers: str) -> dict[str, Any]:
    """librdkafka's log lines go to Python logging (served from poll/consume)."""
    return {
        "bootstrap.servers": brokers,
        "client.id": "tracemesh",
        "logger": logging.getLogger("tracemesh.kafka.client"),
        "log_level": 4,  # warnings and worse: a refused connection while a broker restarts
        # Reconnect within a second or two of a broker coming back (librdkafka backs off to 10 s).
        "reconnect.backoff.max.ms": 1000,
    }
