"""Pacing of control messages on one connection (Binance closes a connection with 1008 past 5
incoming messages per second, pings and pongs included)."""

from __future__ import annotations

import asyncio
import time


class ControlPacer:
    def __init__(self, min_interval: float) -> None:
        self.min_interval = min_interval
        self._last = float("-inf")
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        """Return when the next control message may be sent; callers then send at once."""
        async with self._lock:
            delay = self._last + self.min_interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._last = time.monotonic()
