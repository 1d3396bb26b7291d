"""The fake Binance keeps Binance's rules (binance-notes.md checklist), so bridge tests against
it mean something: envelopes, control messages and their errors, the message-rate and stream
caps, the connection age, pings, REST klines with the open last row, 429 + Retry-After."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from fakes.binance import FakeBinance
from fakes.binance.exchange import kline_frame


async def _recv_json(ws, timeout: float = 15.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def _request(ws, method: str, params=None, req_id: int = 1) -> dict:
    msg = {"method": method, "id": req_id}
    if params is not None:
        msg["params"] = params
    await ws.send(json.dumps(msg))
    while True:
        reply = await _recv_json(ws)
        if "id" in reply:
            return reply


async def _closed_with(ws, timeout: float = 15.0) -> int | None:
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    return ws.close_code


async def test_combined_and_raw_envelopes_and_series_semantics():
    async with FakeBinance(speed=120, auto_series=True) as fake:
        async with (
            websockets.connect(f"{fake.ws_url}/stream?streams=btcusdt@kline_1m") as combined,
            websockets.connect(f"{fake.ws_url}/ws/btcusdt@kline_1m") as raw,
        ):
            frames = [await _recv_json(combined) for _ in range(8)]
            raw_frame = await _recv_json(raw)
    assert all(set(f) == {"stream", "data"} and f["stream"] == "btcusdt@kline_1m" for f in frames)
    assert raw_frame["e"] == "kline" and raw_frame["s"] == "BTCUSDT" and "stream" not in raw_frame
    ks = [(f["data"]["E"], f["data"]["k"]) for f in frames]
    closes = [(e, k) for e, k in ks if k["x"] is True]
    assert closes, "no close in 8 frames"
    for e, k in closes:
        assert e > k["T"] and k["T"] == k["t"] + 60_000 - 1  # the close comes a little after T
        assert isinstance(k["o"], str) and isinstance(k["n"], int)
    # Every candle that closes was first seen open, with the same open time.
    assert {k["t"] for _, k in closes} <= {k["t"] for _, k in ks if k["x"] is False} | {ks[0][1]["t"]}


async def test_late_update_and_zero_trade_candles_appear_in_series():
    async with FakeBinance(speed=600, auto_series=True) as fake:
        async with websockets.connect(f"{fake.ws_url}/ws/ethusdt@kline_1m") as ws:
            frames = [await _recv_json(ws) for _ in range(40)]
    closed_t: set[int] = set()
    late = 0
    for f in frames:
        k = f["k"]
        if k["x"]:
            closed_t.add(k["t"])
        elif k["t"] in closed_t:
            late += 1
            assert f["E"] > k["T"]  # event time past T and still not a close
    assert late >= 1
    zero = [f["k"] for f in frames if f["k"]["x"] and f["k"]["n"] == 0]
    assert zero and all(k["f"] == -1 and k["L"] == -1 and k["o"] == k["c"] == k["h"] == k["l"] for k in zero)


async def test_control_messages_and_error_frames():
    async with FakeBinance() as fake:
        async with websockets.connect(f"{fake.ws_url}/stream") as ws:
            assert await _request(ws, "SUBSCRIBE", ["btcusdt@kline_1m", "ethusdt@kline_15m"], 1) == {
                "result": None,
                "id": 1,
            }
            await asyncio.sleep(0.3)
            assert await _request(ws, "LIST_SUBSCRIPTIONS", None, 2) == {
                "result": ["btcusdt@kline_1m", "ethusdt@kline_15m"],
                "id": 2,
            }
            await asyncio.sleep(0.3)
            assert await _request(ws, "UNSUBSCRIBE", ["ethusdt@kline_15m"], 3) == {"result": None, "id": 3}
            await asyncio.sleep(0.3)
            bad_stream = await _request(ws, "SUBSCRIBE", ["BTC USDT!"], 4)
            assert bad_stream["error"]["code"] == 2 and bad_stream["id"] == 4
            await asyncio.sleep(0.3)
            unknown = await _request(ws, "PUBLISH", [], 5)
            assert unknown["error"]["code"] == 2
            await asyncio.sleep(0.3)
            bad_type = await _request(ws, "SUBSCRIBE", "btcusdt@kline_1m", 6)
            assert bad_type["error"]["code"] == 1
            await asyncio.sleep(0.3)
            await ws.send("{not json")
            assert (await _recv_json(ws))["error"]["code"] == 3
            await asyncio.sleep(0.3)
            assert await _request(ws, "LIST_SUBSCRIPTIONS", None, 7) == {"result": ["btcusdt@kline_1m"], "id": 7}
    assert fake.stats.rate_limit_closes == 0 and fake.stats.error_replies == 4


async def test_more_than_five_messages_a_second_closes_1008():
    async with FakeBinance() as fake:
        async with websockets.connect(f"{fake.ws_url}/stream") as paced:
            for i in range(8):  # 2.5 a second: allowed, with room for a busy machine bunching reads
                await paced.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
                await asyncio.sleep(0.4)
            assert fake.stats.rate_limit_closes == 0
        async with websockets.connect(f"{fake.ws_url}/stream") as burst:
            for i in range(6):
                await burst.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
            assert await _closed_with(burst) == 1008
    assert fake.stats.rate_limit_closes == 1


async def test_stream_cap_per_connection():
    streams = [f"s{i:04d}usdt@kline_1m" for i in range(1025)]
    async with FakeBinance() as fake:
        async with websockets.connect(f"{fake.ws_url}/stream") as ws:
            assert (await _request(ws, "SUBSCRIBE", streams[:1024], 1))["result"] is None
            await asyncio.sleep(0.3)
            over = await _request(ws, "SUBSCRIBE", streams[1024:], 2)
            assert over["error"]["code"] == 2
    assert fake.stats.max_streams_on_a_connection == 1024 and fake.stats.stream_cap_rejections == 1
    # Too many in the URL: refused at once (a small cap: 1,025 names do not fit in a URL line).
    async with FakeBinance(stream_cap=3) as fake:
        async with websockets.connect(f"{fake.ws_url}/stream?streams=" + "/".join(streams[:4])) as ws:
            assert await _closed_with(ws) == 1008


async def test_connection_age_closes_1001_after_server_shutdown():
    async with FakeBinance(max_connection_age=0.5, announce_shutdown=True, shutdown_grace=0.1) as fake:
        async with websockets.connect(f"{fake.ws_url}/stream?streams=btcusdt@kline_1m") as ws:
            event = await _recv_json(ws)
            assert event["stream"] == "!serverShutdown" and event["data"]["e"] == "serverShutdown"
            assert await _closed_with(ws) == 1001
    assert fake.stats.age_closes == 1


async def test_pings_and_the_pong_timeout():
    # A pong may take a busy machine a second or more: the timeout leaves room for that, and the
    # wait below is longer than interval + timeout, so a connection that did not answer is gone.
    interval, timeout = 0.5, 2.0
    async with FakeBinance(ping_interval=interval, ping_timeout=timeout) as fake:
        async with websockets.connect(f"{fake.ws_url}/stream", ping_interval=None) as alive:
            await asyncio.sleep(interval + timeout + 1.0)  # websockets answers the pings while it reads
            assert await _request(alive, "LIST_SUBSCRIPTIONS", None, 1) == {"result": [], "id": 1}
        async with websockets.connect(f"{fake.ws_url}/stream", ping_interval=None) as silent:
            silent.transport.pause_reading()  # pings unread: no pongs
            deadline = time.monotonic() + 30  # ping timeout, then the closing handshake's own timeout
            while fake.connections and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert not fake.connections, "a connection without pongs was kept"
            silent.transport.resume_reading()
            assert await _closed_with(silent) in (1011, 1006)


async def test_rest_klines_open_last_row_and_retry_after():
    async with FakeBinance(speed=60, auto_series=True) as fake, httpx.AsyncClient(base_url=fake.rest_url) as http:
        fake.start_series("BTCUSDT", "1m")
        await asyncio.sleep(0.2)
        now = (await http.get("/api/v3/time")).json()["serverTime"]
        resp = await http.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", "limit": 3})
        assert resp.status_code == 200 and resp.headers["X-MBX-USED-WEIGHT-1M"]
        rows = resp.json()
        assert len(rows) == 3 and all(len(r) == 12 for r in rows)
        assert rows[-1][6] >= now > rows[-2][6]  # the last row is the still-open candle
        assert [r[0] for r in rows] == sorted(r[0] for r in rows)
        assert (await http.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "7m"})).json()[
            "code"
        ] == -1120
        assert (await http.get("/api/v3/klines", params={"symbol": "BAD$", "interval": "1m"})).json()["code"] == -1121

        fake.rest_rate_limit(times=1, retry_after=1)
        limited = await http.get("/api/v3/time")
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
        ignored = await http.get("/api/v3/time")  # during Retry-After: the ban answer
        assert ignored.status_code == 418 and int(ignored.headers["Retry-After"]) >= 1
        assert fake.stats.rest_ban_violations == 1
        await asyncio.sleep(1.05)
        assert (await http.get("/api/v3/time")).status_code == 200


async def test_injected_faults_and_abrupt_disconnect():
    async with FakeBinance(speed=300, auto_series=True) as fake:
        async with websockets.connect(f"{fake.ws_url}/ws/solusdt@kline_1m") as ws:
            first = await _recv_json(ws)
            fake.duplicate_next_close("SOLUSDT", "1m")
            # A close already on the wire when the fault was asked for is not the duplicated one:
            # under load it may arrive first, so the repeat is looked for among the next few closes.
            closes: list[int] = []
            while len(closes) < 4 and not (len(closes) >= 2 and closes[-1] == closes[-2]):
                k = (await _recv_json(ws))["k"]
                if k["x"]:
                    closes.append(k["t"])
            assert closes[-1] == closes[-2], closes  # the same close twice
            assert len(set(closes)) == len(closes) - 1  # once, not more
            fake.drop_next_close("SOLUSDT", "1m")
            dropped_before = fake.stats.closes_dropped
            while fake.stats.closes_dropped == dropped_before:
                await _recv_json(ws)
            dropped_t = fake.market.closed[("SOLUSDT", "1m")][-1].t
            nxt = None
            while nxt is None:
                k = (await _recv_json(ws))["k"]
                assert not (k["x"] and k["t"] == dropped_t)
                if k["x"]:
                    nxt = k["t"]
            assert nxt > dropped_t
            await fake.publish(kline_frame({**first["k"], "x": True}, fake.clock.now_ms()))
            assert await fake.disconnect_all() == 1
            assert await _closed_with(ws) == 1006  # no close frame: the TCP connection vanished


async def test_replays_the_shipped_real_frames_verbatim():
    from fakes.binance.recorded import load_frames

    frames = load_frames()
    closed = [json.loads(f.raw)["data"]["k"] for f in frames if json.loads(f.raw)["data"]["k"]["x"] is True]
    target = f"{closed[0]['s'].lower()}@kline_{closed[0]['i']}"
    expected = [f.raw for f in frames if f.stream == target]
    async with FakeBinance() as fake, httpx.AsyncClient(base_url=fake.rest_url) as http:
        async with websockets.connect(f"{fake.ws_url}/stream?streams={target}") as ws:
            sent = await fake.replay_recorded(pace=0)
            got = [await asyncio.wait_for(ws.recv(), 5) for _ in expected]
        assert sent == len(expected) and got == expected
        # Its closes are now history REST serves.
        k = closed[0]
        rows = (await http.get("/api/v3/klines", params={"symbol": k["s"], "interval": k["i"]})).json()
        assert [k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"]] == rows[-1][:7]
