"""A shard: up to `streams_per_connection` streams and the connection that carries them. Keeps
exactly one live connection: reconnects after a loss (jittered backoff, then REST backfill of
what the gap may have hidden), and replaces the connection before Binance's 24-hour cut or on
`serverShutdown` make-before-break (the new one is subscribed before the old one closes; the
overlap's duplicate closes are dropped by the router's de-duplication)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from runtime.config import BridgeSettings
from runtime.lifecycle import Backoff

from .backoff import AttemptBudget
from .connection import OnKline, StreamConnection
from .events import emit
from .stats import BridgeStats

OnConnected = Callable[[set[str], str], Awaitable[None] | None]  # (streams, reason)


class Shard:
    def __init__(
        self,
        index: int,
        cfg: BridgeSettings,
        stats: BridgeStats,
        on_kline: OnKline,
        on_connected: OnConnected,
        budget: AttemptBudget,
        backfill_first_connect: bool,
    ) -> None:
        self.index, self.cfg, self.stats = index, cfg, stats
        self.on_kline, self.on_connected, self.budget = on_kline, on_connected, budget
        self.backfill_first_connect = backfill_first_connect
        self.desired: set[str] = set()
        # Newly watched streams whose newest close is fetched from REST once Binance has
        # confirmed their subscription (earlier, a close could slip between the two).
        self.fresh: set[str] = set()
        self.conn: StreamConnection | None = None
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._backoff = Backoff(cfg.reconnect_initial, cfg.reconnect_max)
        self._generation = 0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"bridge-shard-{self.index}")

    def set_desired(self, streams: set[str]) -> None:
        self.desired = set(streams)
        self._changed.set()

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=5)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()

    # ---- lifecycle -------------------------------------------------------------------------
    async def _run(self) -> None:
        reason = "start"
        try:
            while not self._stopping.is_set():
                conn = await self._connect()
                if conn is None:
                    return
                if reason != "start" or self.backfill_first_connect:
                    await self._notify_connected(conn, reason)
                else:
                    await self._notify_fresh(conn)
                reason = await self._serve(conn)
                if reason == "stop":
                    return
                delay = self._backoff.next_delay()
                emit(
                    "bridge.reconnecting",
                    logging.WARNING,
                    shard=self.index,
                    code=conn.close_code,
                    reason=conn.close_reason or "-",
                    delay_s=round(delay, 2),
                )
                if await self._sleep_or_stop(delay):
                    return
        finally:
            if self.conn is not None:
                await self.conn.close()
                self.conn = None

    async def _serve(self, conn: StreamConnection) -> str:
        """Keep `conn` in sync with `desired` until it is lost ("lost") or we stop ("stop");
        rotations happen inside without a gap."""
        while True:
            rotate_in = max(0.0, self.cfg.max_connection_age - conn.age)
            waits = {
                asyncio.ensure_future(conn.closed.wait()): "lost",
                asyncio.ensure_future(conn.shutdown_announced.wait()): "shutdown",
                asyncio.ensure_future(self._changed.wait()): "changed",
                asyncio.ensure_future(self._stopping.wait()): "stop",
            }
            done, pending = await asyncio.wait(waits, timeout=rotate_in, return_when=asyncio.FIRST_COMPLETED)
            for fut in pending:
                fut.cancel()
            events = {waits[f] for f in done} or {"age"}
            if "stop" in events:
                return "stop"
            if "lost" in events:
                self.stats.reconnects += 1
                if conn.age > self.cfg.reconnect_max:
                    self._backoff.reset()  # it had been healthy: start the backoff afresh
                return "lost"
            if "changed" in events:
                self._changed.clear()
                try:
                    await conn.sync(self.desired)
                except (TimeoutError, ConnectionError) as exc:
                    emit("bridge.sync_failed", logging.WARNING, shard=self.index, error=repr(exc))
                    await conn.close()
                    continue
                await self._notify_fresh(conn)
            if events & {"age", "shutdown"}:
                rotated = await self._rotate(conn, "shutdown" if "shutdown" in events else "age")
                if rotated is None:
                    return "stop"
                conn = rotated
                await self._notify_fresh(conn)

    async def _rotate(self, old: StreamConnection, why: str) -> StreamConnection | None:
        emit("bridge.rotating", shard=self.index, why=why, age_s=round(old.age, 1))
        new = await self._connect()
        if new is None:
            return None
        self.stats.rotations += 1
        if old.closed.is_set():
            # The old one died before the new one was subscribed: there was a gap after all.
            await self._notify_connected(new, "rotation-gap")
        await old.close()
        return new

    async def _connect(self) -> StreamConnection | None:
        """Open and subscribe a new connection; retries with backoff until it works or we stop."""
        while not self._stopping.is_set():
            await self.budget.acquire()
            self._generation += 1
            conn = StreamConnection(self.cfg, self.stats, self.on_kline, f"{self.index}.{self._generation}")
            try:
                await conn.open()
                await conn.sync(self.desired)
                self.conn = conn
                emit("bridge.connected", shard=self.index, conn=conn.name, streams=len(conn.active))
                return conn
            except Exception as exc:  # OSError, handshake errors, timeouts, a drop mid-subscribe
                self.stats.connect_failures += 1
                await conn.close()
                delay = self._backoff.next_delay()
                emit(
                    "bridge.connect_failed",
                    logging.WARNING,
                    shard=self.index,
                    error=repr(exc)[:200],
                    delay_s=round(delay, 2),
                )
                if await self._sleep_or_stop(delay):
                    return None
        return None

    async def _notify_fresh(self, conn: StreamConnection) -> None:
        self.fresh &= self.desired
        ready = self.fresh & conn.active
        if ready:
            self.fresh -= ready
            await self._call_on_connected(ready, "new-streams")

    async def _notify_connected(self, conn: StreamConnection, reason: str) -> None:
        self.fresh.clear()  # every active stream is backfilled now
        await self._call_on_connected(set(conn.active), reason)

    async def _call_on_connected(self, streams: set[str], reason: str) -> None:
        try:
            result = self.on_connected(streams, reason)
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            logging.getLogger("signal_bridge").exception("on_connected failed")

    async def _sleep_or_stop(self, delay: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            return True
        except TimeoutError:
            return False
