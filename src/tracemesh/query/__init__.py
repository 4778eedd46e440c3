"""The read path: query service (adjusters, capabilities) and the Jaeger HTTP APIs."""
