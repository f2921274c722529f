"""A circuit breaker for the LLM: while it is down, requests skip it at once instead of each waiting out its timeout.

Closed, every request may ask the LLM. The first outage (refiner.OUTAGES: a timeout, no connection, an error
status) opens it for `seconds`: requests then skip the LLM. When the cool-down has passed, one request is let
through as a probe while the others keep skipping; a probe the LLM answers closes it, a failed one opens it
again for another `seconds`. Thread-safe; the clock is injectable for tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Cooldown:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        self.seconds = seconds  # 0: never opens
        self.clock = clock
        self._open_until: float | None = None  # None: closed
        self._probing = False
        self.reason = ""  # the failure that opened it, for the skip warning
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """True: ask the LLM (closed, or this request is the probe). False: skip it, it is cooling down."""
        with self._lock:
            if self._open_until is None:
                return True
            if self._probing or self.clock() < self._open_until:
                return False
            self._probing = True
            return True

    def succeeded(self) -> bool:
        """The LLM answered: closed again. True when this closed it."""
        with self._lock:
            was_open = self._open_until is not None
            self._open_until, self._probing = None, False
            return was_open

    def failed(self, reason: str) -> None:
        """The LLM is down: open (again) for `seconds` from now."""
        if self.seconds == 0:
            return
        with self._lock:
            self._open_until, self._probing, self.reason = self.clock() + self.seconds, False, reason
