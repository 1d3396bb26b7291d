"""Reconnect pacing: an attempt budget shared by all connections (Binance: 300 connection
attempts per 5 minutes per IP). The per-connection backoff is `runtime.lifecycle.Backoff`."""

from __future__ import annotations

import asyncio
import collections
import time


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
