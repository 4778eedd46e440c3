"""The ingester role: spans from a Kafka topic into any storage backend, at least once."""
