"""FakeBinance: a local Binance spot market-data server (WebSocket streams and the two REST
endpoints the bridge uses) on one port, enforcing the rules the real exchange enforces.

WebSocket: `/ws`, `/ws/<stream>[/<stream>...]` (raw payloads), `/stream[?streams=a/b]`
(combined envelopes); SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS with ids and Binance's error
frames; server pings (websockets drops a connection whose pong does not come within
`ping_timeout`); more than `max_messages_per_second` incoming frames (control messages, pings
and pongs) in a second closes with 1008; at most `stream_cap` streams per connection; a
connection older than `max_connection_age` is closed with 1001 (optionally after a
`serverShutdown` event).

REST (served from the same port through websockets' `process_request` hook, which sees every
HTTP request before the upgrade): `/api/v3/time`, `/api/v3/klines` (open candle as last row),
and an injectable 429/418 with `Retry-After`."""

from __future__ import annotations

import asyncio
import collections
import http
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

from fakes.local_server import LocalServer
from market.intervals import FIXED_INTERVALS, is_valid_interval

from .exchange import Clock, LiveCandle, Market, stream_name
from .faults import Faults
from .levels import PriceLevel, price_level
from .recorded import load_frames, recorded_levels, snapshot_of
from .series import SeriesOptions, run_series, start_cursor

log = logging.getLogger("fakes.binance")

_STREAM_RE = re.compile(r"^[a-z0-9]+@[a-zA-Z0-9_]+$")
_KLINE_RE = re.compile(r"^([a-z0-9]+)@kline_([0-9]+[smhdwM])$")
_COUNTED_OPCODES = (Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.PONG)


@dataclass
class FakeStats:
    connections_opened: int = 0
    control_messages: int = 0
    subscribe_requests: int = 0
    unsubscribe_requests: int = 0
    error_replies: int = 0
    rate_limit_closes: int = 0  # 1008 "Too many requests"
    stream_cap_rejections: int = 0
    age_closes: int = 0  # 1001 "going away"
    shutdown_events: int = 0
    abrupt_disconnects: int = 0
    frames_sent: int = 0
    closes_sent: int = 0
    closes_dropped: int = 0
    closes_duplicated: int = 0
    closes_delayed: int = 0
    late_updates_sent: int = 0
    raw_injected: int = 0
    rest_requests: int = 0
    rest_rate_limited: int = 0
    rest_ban_violations: int = 0  # requests made while a Retry-After was still running
    max_streams_on_a_connection: int = 0


class _Conn(ServerConnection):
    """Counts every incoming frame Binance counts (pings and pongs included) and enforces the
    per-connection message rate."""

    fake: FakeBinance  # set on the class built per FakeBinance

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.streams: set[str] = set()
        self.combined = True
        self.opened_at = time.monotonic()
        self.incoming: collections.deque[float] = collections.deque()
        self.rate_violated = False

    def process_event(self, event: Any) -> None:
        if self.request is not None and isinstance(event, Frame) and event.opcode in _COUNTED_OPCODES:
            now = time.monotonic()
            self.incoming.append(now)
            while self.incoming and now - self.incoming[0] > 1.0:
                self.incoming.popleft()
            if len(self.incoming) > self.fake.max_messages_per_second and not self.rate_violated:
                self.rate_violated = True
                self.fake.stats.rate_limit_closes += 1
                log.warning("fake: %d messages in 1 s on one connection: closing 1008", len(self.incoming))
                self.fake.spawn(self.close(1008, "Too many requests"))
        super().process_event(event)


class FakeBinance(LocalServer):
    """Async context manager: `async with FakeBinance(speed=60) as fake: fake.ws_url ...`"""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        speed: float = 1.0,
        stream_cap: int = 1024,
        max_messages_per_second: int = 5,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 60.0,
        max_connection_age: float | None = None,
        announce_shutdown: bool = False,
        shutdown_grace: float = 0.5,
        auto_series: bool = False,
        series: SeriesOptions | None = None,
        clock: Clock | None = None,
        start_prices: dict[str, str] | None = None,
        start: datetime | None = None,
    ) -> None:
        series = series or SeriesOptions()
        self.host = host
        self.port: int = port  # the one it listens on once started
        if clock is None and start is not None:
            # A fast replay that begins at `start` and never runs ahead of the wall clock: the real
            # exchange never labels a candle with a time still to come (monitors refuse those).
            clock = Clock(speed, start_ms=int(start.timestamp() * 1000), follow_wall_clock=True)
        self.clock = clock or Clock(speed)
        # SYMBOL -> where its series starts (e.g. its last close before a restart); else its level.
        self.start_prices = dict(start_prices or {})
        self.market = Market(self.clock)
        self.faults = Faults()
        self.stats = FakeStats()
        self.stream_cap = stream_cap
        self.max_messages_per_second = max_messages_per_second
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        self.max_connection_age = max_connection_age
        self.announce_shutdown = announce_shutdown
        self.shutdown_grace = shutdown_grace
        self.auto_series = auto_series
        self.series_options = series
        self.connections: set[_Conn] = set()
        self.series_tasks: dict[tuple[str, str], asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()
        self._server: Any = None
        self._rest_failures: collections.deque[tuple[int, float]] = collections.deque()
        self._rest_banned_until = 0.0
        # Called with every kline payload sent (the local spot exchange's matcher takes its prices here).
        self.kline_listeners: list[Callable[[dict], None]] = []

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self) -> FakeBinance:
        conn_class = type("_BoundConn", (_Conn,), {"fake": self})
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            create_connection=conn_class,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            close_timeout=2,
            logger=logging.getLogger("fakes.binance.ws"),
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for task in [*self.series_tasks.values(), *self._tasks]:
            task.cancel()
        await asyncio.gather(*self.series_tasks.values(), *self._tasks, return_exceptions=True)
        self.series_tasks.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return self.base_url  # REST and the streams share the port

    def spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- market data -----------------------------------------------------------------------
    def level(self, symbol: str) -> PriceLevel:
        return price_level(symbol, recorded_levels())

    def start_price(self, symbol: str) -> str:
        symbol = symbol.upper()
        return self.start_prices.get(symbol) or str(self.level(symbol).price)

    def last_closes(self) -> dict[str, str]:
        """SYMBOL -> its newest close (of any interval), to start from there after a restart."""
        newest: dict[str, tuple[int, str]] = {}
        for (symbol, _interval), candles in self.market.closed.items():
            if candles and candles[-1].T > newest.get(symbol, (-1, ""))[0]:
                newest[symbol] = (candles[-1].T, candles[-1].snap.c)
        return {symbol: close for symbol, (_, close) in newest.items()}

    def start_series(self, symbol: str, interval: str, options: SeriesOptions | None = None) -> asyncio.Task:
        """Start emitting a live series for (SYMBOL, interval) if not already running."""
        key = (symbol.upper(), interval)
        if key not in self.series_tasks:
            opts = options or self.series_options
            cursor = start_cursor(self, key[0], interval, opts)
            self.series_tasks[key] = asyncio.ensure_future(run_series(self, key[0], interval, opts, cursor))
        return self.series_tasks[key]

    def subscribers(self, stream: str) -> list[_Conn]:
        return [c for c in self.connections if stream in c.streams]

    async def publish(self, frame: dict) -> None:
        """Send a combined-envelope frame to every subscriber of its stream (raw connections get
        the payload alone)."""
        stream = frame["stream"]
        k = frame.get("data", {}).get("k") if isinstance(frame.get("data"), dict) else None
        if k is not None:
            for listener in self.kline_listeners:
                listener(k)
        combined_text = raw_text = None
        for conn in self.subscribers(stream):
            if conn.combined:
                combined_text = combined_text or json.dumps(frame, separators=(",", ":"))
                text = combined_text
            else:
                raw_text = raw_text or json.dumps(frame["data"], separators=(",", ":"))
                text = raw_text
            await self._send(conn, text)

    async def send_raw(self, text: str, stream: str | None = None) -> None:
        """Inject arbitrary text (malformed frames) to all connections, or a stream's subscribers."""
        conns = self.subscribers(stream) if stream else list(self.connections)
        for conn in conns:
            self.stats.raw_injected += 1
            await self._send(conn, text)

    async def _send(self, conn: _Conn, text: str) -> None:
        try:
            await conn.send(text)
            self.stats.frames_sent += 1
        except ConnectionClosed:
            pass

    async def replay_recorded(self, pace: float = 0.01, frames: Iterable | None = None) -> int:
        """Send the shipped real frames verbatim to subscribers of their stream, `pace` seconds
        apart, and record their closes so REST can serve them. Returns frames sent."""
        sent = 0
        for frame in frames or load_frames():
            try:
                msg = json.loads(frame.raw)
                k = msg["data"]["k"]
                stream = msg["stream"]
            except (ValueError, KeyError, TypeError):
                continue
            if k.get("x") is True:
                self.market.close(LiveCandle(k["s"], k["i"], k["t"], k["T"], snapshot_of(k), int(k.get("f", -1))))
            for conn in self.subscribers(stream):
                await self._send(conn, frame.raw if conn.combined else json.dumps(msg["data"]))
                sent += 1
            await asyncio.sleep(pace)
        return sent

    # ---- faults ----------------------------------------------------------------------------
    def drop_next_close(self, symbol: str, interval: str, times: int = 1) -> None:
        self.faults.drop_close[(symbol.upper(), interval)] += times

    def duplicate_next_close(self, symbol: str, interval: str, times: int = 1) -> None:
        self.faults.duplicate_close[(symbol.upper(), interval)] += times

    def delay_next_close(self, symbol: str, interval: str, seconds: float) -> None:
        self.faults.late_close.setdefault((symbol.upper(), interval), []).append(seconds)

    def exchange_gap(self, symbol: str, interval: str, candles: int = 1) -> None:
        self.faults.gap[(symbol.upper(), interval)] += candles

    def rest_rate_limit(self, times: int = 1, retry_after: float = 1.0, status: int = 429) -> None:
        """The next `times` REST requests get `status` with `Retry-After`."""
        for _ in range(times):
            self._rest_failures.append((status, retry_after))

    async def disconnect_all(self) -> int:
        """Abrupt disconnect: the TCP connection vanishes, no close frame."""
        conns = list(self.connections)
        for conn in conns:
            self.stats.abrupt_disconnects += 1
            conn.transport.abort()
        return len(conns)

    async def rotate_all(self, announce: bool | None = None) -> int:
        """Close every connection as the 24-hour limit does: 1001, optionally after serverShutdown."""
        conns = list(self.connections)
        await asyncio.gather(*(self._age_out(c, announce) for c in conns))
        return len(conns)

    async def _age_out(self, conn: _Conn, announce: bool | None = None) -> None:
        if self.announce_shutdown if announce is None else announce:
            self.stats.shutdown_events += 1
            event = {"e": "serverShutdown", "E": self.clock.now_ms()}
            await self._send(conn, json.dumps({"stream": "!serverShutdown", "data": event} if conn.combined else event))
            await asyncio.sleep(self.shutdown_grace)
        self.stats.age_closes += 1
        await conn.close(1001, "going away")

    # ---- WebSocket -------------------------------------------------------------------------
    async def _handle(self, conn: ServerConnection) -> None:
        # create_connection=_BoundConn makes every connection a _Conn, and a handler runs only
        # after the opening handshake, so the request is there
        assert isinstance(conn, _Conn) and conn.request is not None
        path = urlsplit(conn.request.path)
        if path.path == "/stream":
            conn.combined = True
            initial = [s for s in parse_qs(path.query).get("streams", [""])[0].split("/") if s]
        else:
            conn.combined = False
            initial = [s for s in path.path[len("/ws") :].split("/") if s]
        if any(not _STREAM_RE.match(s) for s in initial) or len(initial) > self.stream_cap:
            await conn.close(1008, "Invalid request")
            return
        self.stats.connections_opened += 1
        self._add_streams(conn, initial)
        self.connections.add(conn)
        age_task = None
        max_age = self.max_connection_age
        if max_age:

            async def age() -> None:
                await asyncio.sleep(max_age)
                await self._age_out(conn)

            age_task = self.spawn(age())
        try:
            async for message in conn:
                if not conn.rate_violated:
                    await self._control(conn, message)
        except ConnectionClosed:
            pass
        finally:
            self.connections.discard(conn)
            if age_task:
                age_task.cancel()

    def _add_streams(self, conn: _Conn, streams: Iterable[str]) -> None:
        for stream in streams:
            conn.streams.add(stream)
            m = _KLINE_RE.match(stream)
            if self.auto_series and m and m.group(2) in FIXED_INTERVALS:
                self.start_series(m.group(1).upper(), m.group(2))
        self.stats.max_streams_on_a_connection = max(self.stats.max_streams_on_a_connection, len(conn.streams))

    async def _control(self, conn: _Conn, message: str | bytes) -> None:
        self.stats.control_messages += 1

        async def error(code: int, msg: str, req_id: object = None) -> None:
            self.stats.error_replies += 1
            await self._send(conn, json.dumps({"error": {"code": code, "msg": msg}, "id": req_id}))

        try:
            req = json.loads(message)
        except ValueError as exc:
            await error(3, f"Invalid JSON: {exc}")
            return
        if not isinstance(req, dict):
            await error(2, "Invalid request: expected an object")
            return
        req_id = req.get("id")
        if not isinstance(req_id, int) or isinstance(req_id, bool) or req_id < 0:
            await error(2, "Invalid request: request ID must be an unsigned integer", req_id)
            return
        method, params = req.get("method"), req.get("params", [])
        if method == "LIST_SUBSCRIPTIONS":
            await self._send(conn, json.dumps({"result": sorted(conn.streams), "id": req_id}))
            return
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            await error(
                2,
                f"Invalid request: unknown variant {method}, expected one of SUBSCRIBE, "
                "UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY",
                req_id,
            )
            return
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            await error(1, "Invalid value type: expected a list of strings", req_id)
            return
        if any(not _STREAM_RE.match(p) for p in params):
            await error(2, "Invalid request: invalid stream", req_id)
            return
        if method == "SUBSCRIBE":
            self.stats.subscribe_requests += 1
            if len(conn.streams | set(params)) > self.stream_cap:
                # Behaviour of the real exchange here is not documented; refusing is the safe model.
                self.stats.stream_cap_rejections += 1
                await error(2, f"Invalid request: too many streams (max {self.stream_cap})", req_id)
                return
            self._add_streams(conn, params)
        else:
            self.stats.unsubscribe_requests += 1
            conn.streams.difference_update(params)
        await self._send(conn, json.dumps({"result": None, "id": req_id}))

    # ---- REST ------------------------------------------------------------------------------
    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path)
        if path.path in ("/stream", "/ws") or path.path.startswith("/ws/"):
            return None  # a WebSocket handshake
        if not path.path.startswith("/api/"):
            return _json_response(404, {"code": -1, "msg": "Not found"})
        self.stats.rest_requests += 1
        now = time.monotonic()
        if now < self._rest_banned_until:
            self.stats.rest_ban_violations += 1
            retry = max(1, int(self._rest_banned_until - now + 0.999))
            return _json_response(
                418, {"code": -1003, "msg": "Way too many requests; IP banned."}, [("Retry-After", str(retry))]
            )
        if self._rest_failures:
            status, retry_after = self._rest_failures.popleft()
            self.stats.rest_rate_limited += 1
            self._rest_banned_until = now + retry_after
            return _json_response(
                status,
                {"code": -1003, "msg": "Too many requests."},
                [("Retry-After", str(retry_after if retry_after % 1 else int(retry_after)))],
            )
        query = {k: v[-1] for k, v in parse_qs(path.query).items()}
        if path.path == "/api/v3/time":
            return _json_response(200, {"serverTime": self.clock.now_ms()})
        if path.path == "/api/v3/ping":
            return _json_response(200, {})
        if path.path == "/api/v3/klines":
            return self._klines(query)
        return _json_response(404, {"code": -1, "msg": "Not found"})

    def _klines(self, query: dict[str, str]) -> Response:
        symbol, interval = query.get("symbol", ""), query.get("interval", "")
        if not symbol:
            return _json_response(400, {"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent."})
        if not is_valid_interval(interval):
            return _json_response(400, {"code": -1120, "msg": "Invalid interval."})
        if self.auto_series and interval in FIXED_INTERVALS and symbol.isalnum() and symbol.isupper():
            self.start_series(symbol, interval)
        if not self.market.knows(symbol) and (symbol, interval) not in self.series_tasks:
            return _json_response(400, {"code": -1121, "msg": "Invalid symbol."})
        try:
            limit = int(query.get("limit", 500))
            start = int(query["startTime"]) if "startTime" in query else None
            end = int(query["endTime"]) if "endTime" in query else None
        except ValueError:
            return _json_response(400, {"code": -1100, "msg": "Illegal characters found in a parameter."})
        if not 1 <= limit <= 1000:
            return _json_response(400, {"code": -1130, "msg": "Invalid data sent for a parameter."})
        rows = self.market.klines(symbol, interval, start, end, limit)
        return _json_response(200, rows, [("X-MBX-USED-WEIGHT-1M", "2")])


def _json_response(status: int, body: object, headers: Iterable[tuple[str, str]] = ()) -> Response:
    data = json.dumps(body, separators=(",", ":")).encode()
    h = Headers(
        [
            ("Content-Type", "application/json;charset=UTF-8"),
            ("Content-Length", str(len(data))),
            ("Connection", "close"),
            *headers,
        ]
    )
    return Response(status, http.HTTPStatus(status).phrase, h, data)


__all__ = ["FakeBinance", "FakeStats", "SeriesOptions", "stream_name"]
