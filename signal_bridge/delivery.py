"""Signalling closes to monitors with bounded concurrency. A delivery that fails for any reason
but NOT_FOUND (the monitor has just ended: normal) is kept and retried, with backoff, until it
is delivered or superseded by a newer close of the same stream for the same monitor, so losing
Temporal for a while loses no close and does not replay stale ones."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from runtime.config import BridgeSettings
from runtime.lifecycle import Backoff
from workflows.common.names import CANDLE_CLOSED_SIGNAL

from .events import emit
from .frames import StreamKey
from .stats import BridgeStats


@dataclass(frozen=True)
class Close:
    key: StreamKey
    t: int
    k: dict
    received_at: float  # local monotonic time the close reached the bridge
    source: str  # "ws" or "rest"


Slot = tuple[str, StreamKey]  # (workflow id, stream)


class Delivery:
    def __init__(self, client: Client, cfg: BridgeSettings, stats: BridgeStats) -> None:
        self.client, self.cfg, self.stats = client, cfg, stats
        self._queue: asyncio.Queue[tuple[str, Close]] = asyncio.Queue()
        self._retry: dict[Slot, Close] = {}
        self._delivered_t: dict[Slot, int] = {}
        self._retry_wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._sem = asyncio.Semaphore(cfg.signal_concurrency)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"bridge-signal-{i}") for i in range(self.cfg.signal_concurrency)
        ]
        self._tasks.append(asyncio.create_task(self._retry_loop(), name="bridge-signal-retry"))

    async def stop(self, drain_timeout: float = 2.0) -> None:
        try:
            await asyncio.wait_for(self._queue.join(), timeout=drain_timeout)
        except TimeoutError:
            pass
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def backlog(self) -> int:
        return self._queue.qsize() + len(self._retry)

    def forget_ended(self, running: set[str]) -> None:
        """Drop the bookkeeping of monitors no longer running (memory stays bounded by the
        running monitors). Pending retries are kept: they end by NOT_FOUND on their own."""
        for slot in [slot for slot in self._delivered_t if slot[0] not in running]:
            del self._delivered_t[slot]

    def submit(self, close: Close, workflow_ids: Iterable[str]) -> None:
        for wf in workflow_ids:
            self._queue.put_nowait((wf, close))

    async def _worker(self) -> None:
        while True:
            wf, close = await self._queue.get()
            try:
                await self._attempt(wf, close)
            finally:
                self._queue.task_done()
                self.stats.delivery_backlog = self.backlog

    async def _attempt(self, wf: str, close: Close, retry: bool = False) -> bool:
        slot = (wf, close.key)
        if self._delivered_t.get(slot, -1) >= close.t and retry:
            self._drop_retry(slot, close, superseded=True)
            return True
        async with self._sem:
            try:
                await self.client.get_workflow_handle(wf).signal(
                    CANDLE_CLOSED_SIGNAL, close.k, rpc_timeout=timedelta(seconds=self.cfg.signal_timeout)
                )
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    self.stats.signals_not_found += 1
                    self._retry.pop(slot, None)
                    self._delivered_t.pop(slot, None)
                    return True
                self._failed(slot, close, exc)
                return False
            except Exception as exc:  # timeouts, connection loss
                self._failed(slot, close, exc)
                return False
        self.stats.signals_sent += 1
        self.stats.record_latency((time.monotonic() - close.received_at) * 1000, close.key)
        self._delivered_t[slot] = max(self._delivered_t.get(slot, -1), close.t)
        pending = self._retry.get(slot)
        if pending is not None and pending.t <= close.t:
            self._drop_retry(slot, pending, superseded=pending.t < close.t)
        return True

    def _failed(self, slot: Slot, close: Close, exc: BaseException) -> None:
        self.stats.signal_failures += 1
        pending = self._retry.get(slot)
        if pending is not None and pending.t > close.t:
            self.stats.signals_superseded += 1  # a newer close already waits for this monitor
            return
        if pending is not None and pending.t < close.t:
            self.stats.signals_superseded += 1
        self._retry[slot] = close
        self._retry_wake.set()
        if self.stats.signal_failures <= 5 or self.stats.signal_failures % 100 == 0:
            emit(
                "bridge.signal_failed",
                logging.WARNING,
                workflow_id=slot[0],
                symbol=close.key[0],
                interval=close.key[1],
                t=close.t,
                error=repr(exc)[:200],
                failures=self.stats.signal_failures,
            )

    def _drop_retry(self, slot: Slot, close: Close, superseded: bool) -> None:
        if self._retry.get(slot) is close:
            del self._retry[slot]
        if superseded:
            self.stats.signals_superseded += 1

    async def _retry_loop(self) -> None:
        backoff = Backoff(self.cfg.retry_initial, self.cfg.retry_max)
        while True:
            if not self._retry:
                self._retry_wake.clear()
                await self._retry_wake.wait()
            await asyncio.sleep(backoff.next_delay())
            batch = list(self._retry.items())
            self.stats.signals_retried += len(batch)
            results = await asyncio.gather(*(self._attempt(wf, close, retry=True) for (wf, _), close in batch))
            self.stats.delivery_backlog = self.backlog
            if any(results):
                backoff.reset()
