"""Binance REST klines (`GET /api/v3/klines`) for the operator commands: the latest closed candle
(a new signal's price) and the candles over a monitoring window (the chart). httpx, one call each."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel

from workflows.common.candles import INTERVAL_MS

DEFAULT_REST_URL = "https://api.binance.com"
MAX_ROWS = 1000  # Binance's own cap per request


class KlinesError(RuntimeError):
    pass


class Candle(BaseModel):
    open_time: int  # ms
    close_time: int  # ms
    open: float
    high: float
    low: float
    close: float
    volume: float

    @classmethod
    def from_row(cls, row: list) -> Candle:
        return cls(
            open_time=int(row[0]),
            open=float(row[1]),
            high=float(row[2]),
            low=float(row[3]),
            close=float(row[4]),
            volume=float(row[5]),
            close_time=int(row[6]),
        )


async def _get(http: httpx.AsyncClient, path: str, params: dict | None = None) -> Any:
    try:
        resp = await http.get(path, params=params)
    except httpx.HTTPError as exc:
        raise KlinesError(f"Binance REST {http.base_url} unreachable: {exc}") from None
    if resp.status_code != 200:
        raise KlinesError(f"Binance REST {path} answered {resp.status_code}: {resp.text[:200]}")
    return resp.json()


async def latest_closed(rest_url: str, symbol: str, interval: str) -> Candle:
    """The newest candle whose close time has passed on the exchange's own clock."""
    async with httpx.AsyncClient(base_url=rest_url, timeout=10) as http:
        server_time = (await _get(http, "/api/v3/time"))["serverTime"]
        rows = await _get(http, "/api/v3/klines", {"symbol": symbol, "interval": interval, "limit": 3})
    closed = [Candle.from_row(r) for r in rows if int(r[6]) < server_time]
    if not closed:
        raise KlinesError(f"Binance REST has no closed {symbol} {interval} candle yet")
    return closed[-1]


async def candles_between(rest_url: str, symbol: str, interval: str, start_ms: int, end_ms: int) -> list[Candle]:
    """Closed and open candles opening in [start_ms, end_ms], oldest first (paged by 1000)."""
    step = INTERVAL_MS.get(interval) or 60_000
    out: list[Candle] = []
    async with httpx.AsyncClient(base_url=rest_url, timeout=10) as http:
        cursor = start_ms
        while cursor <= end_ms:
            rows = await _get(
                http,
                "/api/v3/klines",
                {"symbol": symbol, "interval": interval, "startTime": cursor, "endTime": end_ms, "limit": MAX_ROWS},
            )
            page = [Candle.from_row(r) for r in rows]
            if not page:
                break
            out.extend(page)
            if len(page) < MAX_ROWS:
                break
            cursor = page[-1].open_time + step
    return out
