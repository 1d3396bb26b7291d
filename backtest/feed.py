"""Feeding a series to the running workflows on the time-skipping server: the clock slept to each
event's time, each close signalled to every monitor and open position, every workflow settled
before the next step, timers given their due, and the end (data or call cap) handled cleanly."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from backtest.gate import CallCounter
from backtest.inputs import SignalSpec
from backtest.report import iso
from backtest.spec import BacktestSpec
from intake.starting import start_monitor
from market.candle import Candle
from market.intervals import interval_ms
from workflows.common.names import CANDLE_CLOSED_SIGNAL, CLOSE_UPDATE, STATE_QUERY, position_workflow_id_for

log = logging.getLogger("signal_monitor.backtest")

_WORKFLOW_TASK_EVENTS = frozenset(
    {
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
    }
)
LATE_TOLERANCE_MS = 1000
SETTLE_TIMEOUT = 600.0  # real seconds one step may take (an analysis retried with backoff takes ~1 min)


@dataclass
class Monitor:
    spec: SignalSpec
    price: Decimal
    signal_id: str
    handle: WorkflowHandle
    deadline_ms: int  # shifted
    sent: int = 0
    result: Any = None
    cut: str | None = None  # why the backtest ended it (end of data, call cap)
    position: Position | None = None


@dataclass
class Position:
    """The signal's PositionManagerWorkflow, started by the monitor's `enter`."""

    handle: WorkflowHandle
    entry_ms: int  # original time of the entry fill: the deciding close (or the signal's time)
    max_ms: int  # max_position_duration
    sent: int = 0
    result: Any = None
    exit_ms: int | None = None
    cut: str | None = None


class Feed:
    def __init__(self, env: WorkflowEnvironment, spec: BacktestSpec, gate: CallCounter, task_queue: str) -> None:
        self.env = env
        self.client = env.client
        self.spec = spec
        self.gate = gate
        self.task_queue = task_queue
        self.monitors: list[Monitor] = []
        self.stopped: str | None = None
        self.horizon_ms = spec.candles[0].t  # original time up to which candles were delivered
        self.shift_ms = 0
        self.late_events = 0
        self.max_late_ms = 0
        self._last_event_ms = 0

    # -- time ---------------------------------------------------------------------------------

    async def _now_ms(self) -> int:
        return int((await self.env.get_current_time()).timestamp() * 1000)

    async def sleep_to(self, shifted_ms: int) -> None:
        gap = shifted_ms - await self._now_ms()
        if gap > 0:
            await self.env.sleep(timedelta(milliseconds=gap))
        elif gap < -LATE_TOLERANCE_MS and shifted_ms > self._last_event_ms:
            # The server's clock runs in real time between sleeps: the last step (a slow llm-proxy)
            # took longer than the time to this later event, which now arrives late.
            self.late_events += 1
            self.max_late_ms = max(self.max_late_ms, -gap)
        self._last_event_ms = shifted_ms

    # -- monitors -----------------------------------------------------------------------------

    @staticmethod
    async def _running(handle: WorkflowHandle) -> bool:
        return (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

    async def settle(self, handle: WorkflowHandle) -> None:
        """Until the workflow has nothing in flight: its last workflow task completed, no activity
        pending, and its history unchanged across the check (or it has ended). A close signalled
        before is in its history, so it has been acted on."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            before = await handle.fetch_history()
            desc = await handle.describe()
            if desc.status != WorkflowExecutionStatus.RUNNING:
                return
            tasks = [e.event_type for e in before.events if e.event_type in _WORKFLOW_TASK_EVENTS]
            if (
                tasks
                and tasks[-1] == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
                and not desc.raw_description.pending_activities
                and len((await handle.fetch_history()).events) == len(before.events)
            ):
                return
            await asyncio.sleep(0.02)
        raise TimeoutError(f"{handle.id} did not settle within {SETTLE_TIMEOUT:.0f} s")

    async def wait_closed(self, handle: WorkflowHandle) -> None:
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while await self._running(handle):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{handle.id} did not end within {SETTLE_TIMEOUT:.0f} s")
            await asyncio.sleep(0.02)

    def running(self) -> list[Monitor]:
        return [m for m in self.monitors if m.result is None and m.cut is None]

    def open_positions(self) -> list[Position]:
        return [m.position for m in self.monitors if m.position is not None and m.position.result is None]

    async def _result(self, handle: WorkflowHandle) -> Any:
        # No auto time-skipping while fetching a result: it would let the server jump to another
        # workflow's timer.
        with self.env.auto_time_skipping_disabled():
            try:
                return await handle.result()
            except Exception as exc:  # a failed or cancelled workflow: its reason is the report's
                return exc

    async def collect(self, m: Monitor) -> None:
        m.result = await self._result(m.handle)
        if not isinstance(m.result, Exception) and m.result.status == "in_position":
            await self.attach_position(m)

    async def attach_position(self, m: Monitor) -> None:
        """The position the monitor's `enter` started (`start-position-on-enter`)."""
        handle = self.client.get_workflow_handle(position_workflow_id_for(m.signal_id))
        try:
            await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return
            raise
        history = (await m.handle.query(STATE_QUERY)).get("history") or []
        decided = history[-1].get("candle_open_time") if history else None
        if decided is None:
            entry_ms = m.spec.time_ms
        else:
            entry_ms = decided - self.shift_ms + interval_ms(self.spec.interval)
        max_ms = int(self.spec.settings.max_position_duration.total_seconds() * 1000)
        m.position = Position(handle, entry_ms, max_ms)
        await self.settle(handle)
        await self.collect_position_if_closed(m.position, entry_ms)

    async def collect_position_if_closed(self, p: Position, at_ms: int) -> None:
        if not await self._running(p.handle):
            p.result = await self._result(p.handle)
            p.exit_ms = at_ms

    # -- steps --------------------------------------------------------------------------------

    async def deliver(self, c: Candle) -> bool:
        at = c.T + 1 + self.shift_ms
        # A monitor (position) whose max_monitoring_duration (max_position_duration) ended before
        # this close has ended by its timer.
        for m in self.running():
            if m.deadline_ms <= at:
                await self.wait_closed(m.handle)
                await self.collect(m)
        for p in self.open_positions():
            # Its timer (set a few real milliseconds after the entry) ends it just after a close
            # falling exactly on entry + max_position_duration: that close is never its to see.
            if p.entry_ms + p.max_ms <= c.T + 1:
                await self.wait_closed(p.handle)
                await self.collect_position_if_closed(p, p.entry_ms + p.max_ms)
        monitors, positions = self.running(), self.open_positions()
        room = self.gate.room()
        if room is not None and room < len(monitors) + len(positions):
            self.stopped = (
                f"llm-proxy call cap ({self.gate.max_calls}) reached: {self.gate.calls} calls made, the close at "
                f"{iso(c.T + 1)} needs up to {len(monitors) + len(positions)} more"
            )
            return False
        k = c.kline(self.spec.symbol, self.spec.interval, self.shift_ms)
        recipients: list[Monitor | Position] = [*monitors, *positions]
        for w in recipients:
            w.sent += 1
            try:
                await w.handle.signal(CANDLE_CLOSED_SIGNAL, k)
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
                log.warning("%s ended before the close at %s reached it", w.handle.id, iso(c.T + 1))
        await asyncio.gather(
            *(self.settle(m.handle) for m in monitors),
            *(self.settle(p.handle) for p in positions),
        )
        self.horizon_ms = c.T + 1
        for p in positions:
            await self.collect_position_if_closed(p, c.T + 1)
        for m in monitors:
            if not await self._running(m.handle):
                await self.collect(m)
        return not self.gate.cap_reached or self.stop_for_cap()

    def stop_for_cap(self) -> bool:
        self.stopped = f"llm-proxy call cap ({self.gate.max_calls}) reached after {self.gate.calls} calls"
        return False

    async def start(self, conn: asyncpg.Connection, s: SignalSpec, price: Decimal, trader_id: uuid.UUID) -> bool:
        room = self.gate.room()
        if room is not None and room < 1:
            self.stopped = f"llm-proxy call cap ({self.gate.max_calls}) reached before the signal at {iso(s.time_ms)}"
            return False
        signal_id = uuid.uuid4()
        shifted = datetime.fromtimestamp((s.time_ms + self.shift_ms) / 1000, tz=UTC)
        await conn.execute(
            """INSERT INTO signals (id, trader_id, symbol, interval, "timestamp", price_at_signal, status)
               VALUES ($1, $2, $3, $4, $5, $6, 'new')""",
            signal_id,
            trader_id,
            self.spec.symbol,
            self.spec.interval,
            shifted,
            price,
        )
        outcome = await start_monitor(
            self.client, str(signal_id), self.task_queue, f"backtest {self.spec.symbol} {self.spec.interval}"
        )
        window = int(self.spec.settings.max_monitoring_duration.total_seconds() * 1000)
        m = Monitor(s, price, str(signal_id), outcome.handle, s.time_ms + self.shift_ms + window)
        self.monitors.append(m)
        await self.settle(m.handle)
        if not await self._running(m.handle):
            await self.collect(m)
        return not self.gate.cap_reached or self.stop_for_cap()

    async def finish(self) -> None:
        why = self.stopped or "end of data"
        for m in self.running():
            m.cut = why
            await m.handle.cancel()
        for m in self.monitors:
            if m.result is None:
                await self.wait_closed(m.handle)
                m.result = await self._result(m.handle)
        # Open positions are closed at the last close fed, like an operator's close (no llm-proxy call).
        for p in self.open_positions():
            p.cut = "stopped" if self.stopped else "end_of_data"
            with self.env.auto_time_skipping_disabled():
                try:
                    await p.handle.execute_update(CLOSE_UPDATE, {"reason": f"backtest: {why}"})
                except Exception as exc:  # already closing by itself: its own result says how
                    log.info("closing %s: %s", p.handle.id, exc)
            await self.wait_closed(p.handle)
            await self.collect_position_if_closed(p, self.horizon_ms)
