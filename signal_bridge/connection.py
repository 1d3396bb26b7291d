"""One WebSocket connection to Binance's combined-stream endpoint: sends paced, batched
SUBSCRIBE/UNSUBSCRIBE and matches their answers by id; reads frames and hands klines on. Bad
frames are counted and logged, never fatal. Pongs to Binance's pings are sent by `websockets`
itself while the reader runs."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterable

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from runtime.config import BridgeSettings

from .events import emit
from .frames import ControlReply, KlineEvent, Malformed, ServerShutdown, parse_frame
from .pacing import ControlPacer
from .stats import BridgeStats

# (event, local monotonic receipt time). The router's handler also takes a source and says
# whether the close was new; a connection passes only the two and ignores the answer.
OnKline = Callable[[KlineEvent, float], object]

_ids = itertools.count(1)


class ControlError(Exception):
    pass


class StreamConnection:
    def __init__(self, cfg: BridgeSettings, stats: BridgeStats, on_kline: OnKline, name: str) -> None:
        self.cfg, self.stats, self.on_kline, self.name = cfg, stats, on_kline, name
        self.active: set[str] = set()  # streams Binance confirmed on this connection
        self.rejected: set[str] = set()  # streams Binance refused (not retried until re-added)
        self.shutdown_announced = asyncio.Event()
        self.closed = asyncio.Event()
        self.opened_at = 0.0
        self.close_code: int | None = None
        self.close_reason = ""
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._pacer = ControlPacer(cfg.control_interval)
        self._malformed_logged = 0

    async def open(self) -> None:
        self._ws = await websockets.connect(
            self.cfg.stream_url,
            open_timeout=self.cfg.open_timeout,
            ping_interval=self.cfg.ping_interval or None,
            ping_timeout=self.cfg.ping_timeout or None,
            close_timeout=2,
            max_size=2**22,
            max_queue=1024,
        )
        self.opened_at = time.monotonic()
        self.stats.connects += 1
        self.stats.connections_open += 1
        self._reader = asyncio.create_task(self._read(), name=f"bridge-reader-{self.name}")

    @property
    def age(self) -> float:
        return time.monotonic() - self.opened_at

    async def close(self) -> None:
        if self._ws is not None:
            try:
                await self._ws.close(1000, "bye")
            except Exception:  # already gone: nothing to do
                pass
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), timeout=3)
            except (TimeoutError, asyncio.CancelledError):
                self._reader.cancel()

    # ---- control ---------------------------------------------------------------------------
    async def sync(self, desired: set[str]) -> None:
        """Make this connection's subscriptions equal `desired` (minus refused streams)."""
        self.rejected &= desired
        to_unsub = sorted(self.active - desired)
        to_sub = sorted(desired - self.active - self.rejected)
        for batch in _batches(to_unsub, self.cfg.subscribe_batch):
            try:
                await self._request("UNSUBSCRIBE", batch)
            except ControlError as exc:
                # Binance refusing to unsubscribe a stream leaves it at worst sending frames
                # nobody routes: not worth losing the connection over.
                self.stats.subscribe_errors += 1
                emit("bridge.unsubscribe_refused", logging.WARNING, conn=self.name, streams=len(batch), error=exc)
            self.active.difference_update(batch)
        for batch in _batches(to_sub, self.cfg.subscribe_batch):
            try:
                await self._request("SUBSCRIBE", batch)
                self.active.update(batch)
            except ControlError as exc:
                self.stats.subscribe_errors += 1
                self.rejected.update(batch)
                emit("bridge.subscribe_refused", logging.WARNING, conn=self.name, streams=len(batch), error=exc)

    async def _request(self, method: str, params: list[str]) -> None:
        if self._ws is None or self.closed.is_set():
            raise ConnectionError("connection closed")
        req_id = next(_ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        try:
            await self._pacer.wait()
            await self._ws.send(_dumps(method, params, req_id))
            self.stats.control_messages += 1
            reply: ControlReply = await asyncio.wait_for(fut, timeout=self.cfg.reply_timeout)
        finally:
            self._pending.pop(req_id, None)
        if reply.error:
            raise ControlError(f"{reply.error.get('code')} {reply.error.get('msg')}")

    # ---- reading ---------------------------------------------------------------------------
    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for message in self._ws:
                self.stats.frames += 1
                received = time.monotonic()
                try:
                    frame = parse_frame(message)
                except Malformed as exc:
                    self._malformed(exc)
                    continue
                if isinstance(frame, KlineEvent):
                    try:
                        self.on_kline(frame, received)
                    except Exception:  # a bug downstream must not stop the stream
                        logging.getLogger("signal_bridge").exception("kline handler failed")
                elif isinstance(frame, ControlReply):
                    self._reply(frame)
                elif isinstance(frame, ServerShutdown):
                    self.stats.server_shutdowns += 1
                    emit("bridge.server_shutdown", logging.WARNING, conn=self.name)
                    self.shutdown_announced.set()
        except ConnectionClosed:
            pass
        except Exception:
            logging.getLogger("signal_bridge").exception("reader of %s failed", self.name)
        finally:
            ws = self._ws
            # 1006 with an empty reason: the TCP connection vanished without a close frame.
            self.close_code = ws.close_code if ws is not None else None
            self.close_reason = (ws.close_reason if ws is not None else None) or "no close frame"
            self.stats.connections_open -= 1
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed"))
            self.closed.set()

    def _reply(self, reply: ControlReply) -> None:
        fut = self._pending.get(reply.id) if reply.id is not None else None
        if fut is not None and not fut.done():
            fut.set_result(reply)
        elif reply.error:
            # An error Binance could not tie to a request (e.g. our message was not JSON).
            self.stats.malformed("error_frame")
            emit("bridge.error_frame", logging.WARNING, conn=self.name, error=reply.error)

    def _malformed(self, exc: Malformed) -> None:
        self.stats.malformed(exc.reason)
        # Log the first few in full, then every 100th: a flood must not flood the logs too.
        self._malformed_logged += 1
        if self._malformed_logged <= 5 or self._malformed_logged % 100 == 0:
            emit(
                "bridge.malformed_frame", logging.WARNING, conn=self.name, reason=exc, count=self.stats.malformed_frames
            )


def _batches(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _dumps(method: str, params: list[str], req_id: int) -> str:
    return json.dumps({"method": method, "params": params, "id": req_id}, separators=(",", ":"))
