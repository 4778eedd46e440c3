"""Remote sampling: strategies clients fetch to decide which traces to record."""
