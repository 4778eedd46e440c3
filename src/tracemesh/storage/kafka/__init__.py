"""Kafka storage: a write-only store that puts spans on a topic for `tracemesh ingester`."""
