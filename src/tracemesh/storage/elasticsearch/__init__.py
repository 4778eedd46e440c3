"""Elasticsearch / OpenSearch storage in Jaeger's index layout (see README.md)."""
