"""Candles for the `model` backend's prompts: the last N closed candles of (symbol, interval)
ending at an analysed close, from Binance REST klines (`BINANCE_REST_URL`).

Fetched once per (symbol, interval, close, N) per worker however many monitors and positions share
it: a small in-process cache with single flight (concurrent askers await the one request). A failed
fetch is not cached. Look-ahead is refused by `model_backend.market.closed_by` whatever the source
returned (the last REST row is the candle still open)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

from market.intervals import INTERVAL_MS
from market.rest import KlinesError, fetch_candles, rest_client
from model_backend.indicators import Bar
from model_backend.market import bar_row, closed_by

Key = tuple[str, str, int, int]


class CandleSource(Protocol):
    async def closed_candles(self, symbol: str, interval: str, cutoff_ms: int, n: int) -> list[Bar]:
        """The last `n` candles closed at or before `cutoff_ms`, oldest first."""
        ...


Fetch = Callable[[str, str, int, int], Awaitable[list[tuple[Bar, int]]]]


class SingleFlightCache:
    """At most `capacity` results, least recently used dropped first; one fetch per key in flight."""

    def __init__(self, fetch: Fetch, capacity: int = 512):
        self._fetch = fetch
        self._capacity = capacity
        self._done: OrderedDict[Key, list[Bar]] = OrderedDict()
        self._flying: dict[Key, asyncio.Future[list[Bar]]] = {}
        self.fetches = 0  # requests actually made (the tests count them)

    async def closed_candles(self, symbol: str, interval: str, cutoff_ms: int, n: int) -> list[Bar]:
        key = (symbol, interval, cutoff_ms, n)
        if key in self._done:
            self._done.move_to_end(key)
            return self._done[key]
        flying = self._flying.get(key)
        if flying is not None:
            return await asyncio.shield(flying)
        future: asyncio.Future[list[Bar]] = asyncio.get_running_loop().create_future()
        self._flying[key] = future
        try:
            self.fetches += 1
            bars = closed_by(await self._fetch(symbol, interval, cutoff_ms, n), cutoff_ms, n)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a fetch nobody else awaited must not warn
            raise
        finally:
            self._flying.pop(key, None)
        future.set_result(bars)
        self._done[key] = bars
        while len(self._done) > self._capacity:
            self._done.popitem(last=False)
        return bars


def binance_fetch(rest_url: str) -> Fetch:
    async def fetch(symbol: str, interval: str, cutoff_ms: int, n: int) -> list[tuple[Bar, int]]:
        step = INTERVAL_MS.get(interval) or 60_000
        # One candle more than asked: the newest row may be the one still open.
        start = cutoff_ms - (n + 1) * step
        async with rest_client(rest_url) as http:
            rows = await fetch_candles(http, symbol, interval, start, cutoff_ms)
        return [bar_row(c) for c in rows]

    return fetch


__all__ = ["Bar", "CandleSource", "KlinesError", "SingleFlightCache", "binance_fetch"]
