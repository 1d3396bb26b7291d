"""market/rest.py against the local Binance (fakes/binance, Binance's REST rules): the exchange's
clock, the latest closed candle, a window fetched page by page, and every failure as one
`KlinesError` that says what happened."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from fakes import free_port
from fakes.binance import FakeBinance
from market.candle import Candle
from market.rest import KlinesError, fetch_candles, klines_page, latest_closed, rest_client, server_time


async def test_the_latest_close_and_a_window_page_by_page():
    async with FakeBinance(speed=60, auto_series=True) as fake, rest_client(fake.rest_url) as http:
        fake.start_series("ETHUSDT", "1m")
        await asyncio.sleep(0.2)
        now = await server_time(http)
        last = await latest_closed(http, "ETHUSDT", "1m")
        assert 0 < now - last.T <= 60_000  # closed on the exchange's clock, and the newest such
        known = [Candle.from_row(row) for row in await klines_page(http, "ETHUSDT", "1m")]
        closed = [c for c in known if c.t <= last.t]
        assert len(closed) >= 5 and closed[-1] == last

        requests: list[httpx.Request] = []

        async def seen(request: httpx.Request) -> None:
            requests.append(request)

        http.event_hooks["request"] = [seen]
        got = await fetch_candles(http, "ETHUSDT", "1m", closed[0].t, last.t, page_rows=2)
        assert got == closed
        assert len(requests) == (len(closed) + 1) // 2  # two a page, each after the last one's close
        assert [int(r.url.params["startTime"]) for r in requests] == [c.t for c in closed[::2]]


async def test_every_failure_is_a_klines_error_with_its_status():
    async with FakeBinance(speed=60, auto_series=True) as fake, rest_client(fake.rest_url) as http:
        fake.start_series("ETHUSDT", "1m")
        with pytest.raises(KlinesError, match="answered 400") as bad_interval:
            await fetch_candles(http, "ETHUSDT", "7m", 0, 1)
        assert bad_interval.value.status == 400
        with pytest.raises(KlinesError, match="answered 400"):
            await latest_closed(http, "BAD$", "1m")
        fake.rest_rate_limit(times=1, retry_after=1)
        with pytest.raises(KlinesError, match="rate limited") as limited:
            await latest_closed(http, "ETHUSDT", "1m")
        assert (limited.value.status, limited.value.retry_after) == (429, 1.0)
    async with rest_client(f"http://127.0.0.1:{free_port()}") as nobody:
        with pytest.raises(KlinesError, match="unreachable: ConnectError") as unreachable:
            await server_time(nobody)
        assert unreachable.value.status is None
