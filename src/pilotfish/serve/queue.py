"""AnswerQueue: at most `concurrency` answers run at once; up to `size` more wait; the next one is refused.

A local llama.cpp model generates one answer at a time (one context per model), so a server that let every
request through would pile them up until clients time out. The queue answers early instead: `QueueFull`
carries a Retry-After estimate from the recent answer times, and the server turns it into a 429.

>>> import asyncio
>>> async def demo():
...     q = AnswerQueue(concurrency=1, size=0)
...     async with q.slot():
...         try:
...             async with q.slot():
...                 pass
...         except QueueFull as full:
...             return full.retry_after >= 1
>>> asyncio.run(demo())
True
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class QueueFull(Exception):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AnswerQueue:
    def __init__(self, *, concurrency: int, size: int, max_wait: float = 120.0) -> None:
        self.concurrency, self.size, self.max_wait = concurrency, size, max_wait
        self._slots = asyncio.Semaphore(concurrency)
        self.running = 0
        self.waiting = 0
        self._recent: deque[float] = deque(maxlen=20)  # seconds of the last answers, for Retry-After
        self.waits: deque[float] = deque(maxlen=2000)  # seconds spent waiting, for the metrics and benchmarks

    def retry_after(self) -> int:
        typical = sorted(self._recent)[len(self._recent) // 2] if self._recent else 5.0
        return max(1, round(typical * (self.waiting + 1) / self.concurrency))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        """Hold a slot while answering; yields the seconds spent waiting for it."""
        # counted before the first await, so requests that arrive together cannot all pass the check
        if self.running + self.waiting >= self.concurrency + self.size:
            raise QueueFull(f"the server is busy: {self.running} answers running and {self.waiting} waiting; "
                            "retry later", self.retry_after())
        self.waiting += 1
        start = time.perf_counter()
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout=self.max_wait)
        except TimeoutError:
            raise QueueFull(f"no answer slot came free within {self.max_wait:.0f} s; retry later",
                            self.retry_after()) from None
        finally:
            self.waiting -= 1
        waited = time.perf_counter() - start
        self.waits.append(waited)
        self.running += 1
        began = time.perf_counter()
        try:
            yield waited
        finally:
            self.running -= 1
            self._recent.append(time.perf_counter() - began)
            self._slots.release()
