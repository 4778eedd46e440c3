"""A logger wrapper that says the same kind of thing at most once per interval, with a count."""

from __future__ import annotations

import logging
import time


class RateLimitedLog:
    """At most one warning per key every `interval` seconds, saying how many were held back.

    Refusals are driven by clients: without a bound, one client sending garbage in a loop would
    fill the disk with our log."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object) -> bool:
        """Log unless `key` was logged less than `interval` ago; True when it was logged."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            message += " (and %d more like it in the last %.0fs)"
            args = (*args, held, now - last if last is not None else 0.0)
        self._logger.warning(message, *args)
        return True
