"""Reconnect pacing: capped, jittered exponential backoff per connection, and an attempt budget
shared by all connections (Binance: 300 connection attempts per 5 minutes per IP)."""

from __future__ import annotations

import asyncio
import collections
import random
import time


class Backoff:
    """Equal jitter: half the capped exponential delay plus a random half, so many bridges (or
    shards) that lost the exchange together do not come back in one burst."""

    def __init__(self, initial: float, maximum: float, factor: float = 2.0, rng: random.Random | None = None) -> None:
        self.initial, self.maximum, self.factor = initial, maximum, factor
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0


class AttemptBudget:
    """At most `limit` connection attempts in any `window` seconds, process-wide."""

    def __init__(self, limit: int, window: float = 300.0) -> None:
        self.limit, self.window = limit, window
        self._times: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._times and now - self._times[0] >= self.window:
                    self._times.popleft()
                if len(self._times) < self.limit:
                    self._times.append(now)
                    return
                await asyncio.sleep(self.window - (now - self._times[0]))
