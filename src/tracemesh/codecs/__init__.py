"""Wire formats <-> model. Pure functions, no I/O."""


class DecodeError(ValueError):
    """The input is not a valid message of the expected format (HTTP 400, gRPC INVALID_ARGUMENT)."""
