"""The nouns of tracemesh: ids, spans, traces, queries and dependency links. No I/O here."""
