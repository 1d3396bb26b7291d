"""Binance REST market data over httpx: the exchange's clock and `GET /api/v3/klines`, one page or
paged over a window. Every failure (unreachable, an HTTP error, rate limited, an answer that is not
klines) is a `KlinesError`; the caller decides what it means (the bridge retries some, a command
prints it). No retries here: whoever needs them owns the policy (the bridge, Retry-After aware)."""

from __future__ import annotations

from typing import Any

import httpx

from market.candle import Candle

MAX_ROWS = 1000  # Binance's own cap per klines request


class KlinesError(RuntimeError):
    """Binance REST could not give what was asked. `status` is the HTTP status when there was an
    answer; `retry_after` the seconds a rate-limit answer (418/429) asked to wait, if it said."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def rest_client(base_url: str, timeout: float = 10.0) -> httpx.AsyncClient:
    # httpx's own retries off: a retry is the caller's decision (see the module's docstring).
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=httpx.AsyncHTTPTransport(retries=0))


async def get_json(http: httpx.AsyncClient, path: str, params: dict[str, Any] | None = None) -> Any:
    """One GET, its JSON answer; a `KlinesError` for anything else."""
    try:
        resp = await http.get(path, params=params)
    except httpx.HTTPError as exc:
        raise KlinesError(f"Binance REST {http.base_url} unreachable: {type(exc).__name__}: {exc}") from None
    if resp.status_code in (418, 429):
        raise KlinesError(
            f"Binance REST rate limited {path} (HTTP {resp.status_code}); try later",
            status=resp.status_code,
            retry_after=_retry_after(resp),
        )
    if resp.status_code != 200:
        raise KlinesError(
            f"Binance REST {path} answered {resp.status_code}: {resp.text[:200]}", status=resp.status_code
        )
    try:
        return resp.json()
    except ValueError:
        raise KlinesError(f"Binance REST {path} answered something that is not JSON", status=200) from None


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return max(0.0, float(resp.headers.get("Retry-After", "")))
    except ValueError:
        return None


async def server_time(http: httpx.AsyncClient) -> int:
    """The exchange's clock (ms): a candle is closed once its close time is before it."""
    answer = await get_json(http, "/api/v3/time")
    now = answer.get("serverTime") if isinstance(answer, dict) else None
    if not isinstance(now, int) or isinstance(now, bool):
        raise KlinesError(f"Binance REST /api/v3/time: no serverTime in {str(answer)[:100]}")
    return now


async def klines_page(
    http: httpx.AsyncClient,
    symbol: str,
    interval: str,
    *,
    limit: int = MAX_ROWS,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> list[Any]:
    """One `GET /api/v3/klines` answer: rows oldest first (the still-open candle last when in range),
    from `start_ms`, else the newest `limit`. Rows as sent: a caller that tolerates a bad row
    checks each one (`Candle.from_row`)."""
    params: dict[str, Any] = {"symbol": symbol, "interval": interval, "limit": limit}
    if start_ms is not None:
        params["startTime"] = start_ms
    if end_ms is not None:
        params["endTime"] = end_ms
    rows = await get_json(http, "/api/v3/klines", params)
    if not isinstance(rows, list):
        raise KlinesError(f"Binance REST klines {symbol} {interval}: the answer is not a list")
    return rows


def _candles(rows: list[Any], symbol: str, interval: str) -> list[Candle]:
    try:
        return [Candle.from_row(row) for row in rows]
    except (ValueError, TypeError) as exc:
        raise KlinesError(f"Binance REST klines {symbol} {interval}: a row that is not a candle: {exc}") from None


async def fetch_candles(
    http: httpx.AsyncClient, symbol: str, interval: str, start_ms: int, end_ms: int, *, page_rows: int = MAX_ROWS
) -> list[Candle]:
    """The candles opening in [start_ms, end_ms], oldest first, the still-open one included when in
    range; `page_rows` a request, each page starting after the last one's close (no interval length
    needed, so `1M` pages too)."""
    out: list[Candle] = []
    cursor = start_ms
    while cursor <= end_ms:
        rows = await klines_page(http, symbol, interval, limit=page_rows, start_ms=cursor, end_ms=end_ms)
        page = _candles(rows, symbol, interval)
        out.extend(page)
        if len(page) < page_rows:
            break
        cursor = page[-1].T + 1
    return out


async def latest_closed(http: httpx.AsyncClient, symbol: str, interval: str) -> Candle:
    """The newest candle whose close time has passed on the exchange's own clock."""
    now = await server_time(http)
    closed = [c for c in _candles(await klines_page(http, symbol, interval, limit=3), symbol, interval) if c.T < now]
    if not closed:
        raise KlinesError(f"Binance REST has no closed {symbol} {interval} candle yet")
    return closed[-1]
