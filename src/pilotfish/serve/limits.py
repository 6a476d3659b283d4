"""RateLimiter: a token bucket per caller (an API key, or the client address when auth is off).

Buckets live in each worker process: with N workers a caller may reach N times the rate. The limit
protects a worker from one noisy caller; put a proxy in front for exact global quotas.

>>> clock = iter([0.0, 0.0, 0.0, 30.0]).__next__
>>> limiter = RateLimiter(per_minute=2, burst=2, clock=clock)
>>> [limiter.take("k") for _ in range(3)]
[0.0, 0.0, 30.0]
>>> limiter.take("k")  # half a minute later one token has come back
0.0
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, *, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0  # tokens per second
        self.burst = max(1, burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, time of last refill)
        self._lock = threading.Lock()

    def take(self, caller: str) -> float:
        """0.0 when the request may go ahead (a token is taken); otherwise the seconds until one is free."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(caller, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[caller] = (tokens - 1.0, now)
                return 0.0
            self._buckets[caller] = (tokens, now)
            return (1.0 - tokens) / self.rate
