"""Feeds a candle series to the real `SignalMonitorWorkflow`s, one per signal, on the time-skipping
server, with the project's worker in-process, and gathers what they decided.

Time: the test server's clock cannot go back, so the whole series is shifted by a whole number of
weeks into the server's future (candle boundaries keep their alignment) and shifted back in the
report. Each candle close is delivered at its own (shifted) close time, T + 1 ms, after the clock
was slept there; each signal is started at its own time. Before the next step every monitor has
settled (its analysis recorded, nothing pending), so the same inputs give the same report."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from workers.backtest.gate import CallGate
from workers.backtest.inputs import Candle, SignalSpec, TraderSettings, interval_ms
from workers.backtest.report import Decision, Report, RunInfo, SignalOutcome, build_report, iso
from workers.backtest.sandbox import Sandbox
from workers.backtest.trades import Side, Trade, would_have_won
from workers.config import Settings
from workers.starting import start_monitor
from workers.worker import run_worker
from workflows.names import CANDLE_CLOSED_SIGNAL, CLOSE_UPDATE, STATE_QUERY, position_workflow_id_for

log = logging.getLogger("signal_monitor.backtest")

WEEK_MS = 7 * 86_400_000
_WORKFLOW_TASK_EVENTS = frozenset(
    {
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
    }
)
SETTLE_TIMEOUT = 600.0  # real seconds one step may take (an analysis retried with backoff takes ~1 min)
TRADES_FROM = "PositionManagerWorkflow (paper backend)"
# The position manager's close codes in the report's words.
EXIT_REASONS = {"max_position_duration": "duration", "close_action": "close"}


@dataclass(frozen=True)
class ProxyTarget:
    """Where analyses go. `headers` are added by the gate (a prompt version chosen by a header);
    `strategy` is merged into the trader's strategy JSON (one chosen by a strategy field)."""

    label: str
    url: str
    key: str = field(repr=False)
    headers: dict[str, str] = field(default_factory=dict)
    strategy: dict[str, Any] = field(default_factory=dict)
    local: bool = False


@dataclass
class BacktestSpec:
    symbol: str
    interval: str
    candles: list[Candle]
    signals: list[SignalSpec]
    settings: TraderSettings
    max_calls: int | None = None


@dataclass
class _Monitor:
    spec: SignalSpec
    price: Decimal
    signal_id: str
    handle: WorkflowHandle
    deadline_ms: int  # shifted
    sent: int = 0
    result: Any = None
    cut: str | None = None  # why the backtest ended it (end of data, call cap)
    position: _Position | None = None


@dataclass
class _Position:
    """The signal's PositionManagerWorkflow, started by the monitor's `enter`."""

    handle: WorkflowHandle
    entry_ms: int  # original time of the entry fill: the deciding close (or the signal's time)
    max_ms: int  # max_position_duration
    sent: int = 0
    result: Any = None
    exit_ms: int | None = None
    cut: str | None = None


def expected_analyses(spec: BacktestSpec) -> int:
    """Upper bound of analyze-signal calls before retries: per signal, its first analysis plus one
    per close it can see (within the reanalysis limit, the monitoring window and the data)."""
    window = int(spec.settings.max_monitoring_duration.total_seconds() * 1000)
    total = 0
    for s in _runnable(spec):
        closes = sum(1 for c in spec.candles if s.time_ms <= c.T < s.time_ms + window)
        total += 1 + min(spec.settings.max_reanalyses, closes)
    return total


def expected_management(spec: BacktestSpec) -> int:
    """Upper bound of manage-position calls: one per close an entered signal's position could see
    (every signal entering at once and staying open for max_position_duration or the data)."""
    span = int(spec.settings.max_position_duration.total_seconds() * 1000)
    return sum(sum(1 for c in spec.candles if s.time_ms <= c.T < s.time_ms + span) for s in _runnable(spec))


def _runnable(spec: BacktestSpec) -> list[SignalSpec]:
    first, last = spec.candles[0].T + 1, spec.candles[-1].T + 1
    return [s for s in spec.signals if first <= s.time_ms < last]


def _price_at(candles: list[Candle], time_ms: int) -> Decimal | None:
    closed = [c for c in candles if c.T + 1 <= time_ms]
    return closed[-1].c if closed else None


async def _insert_trader(
    conn: asyncpg.Connection, settings: TraderSettings, symbol: str, interval: str, strategy: dict[str, Any]
) -> tuple[uuid.UUID, uuid.UUID]:
    user_id, trader_id = uuid.uuid4(), uuid.uuid4()
    await conn.execute("INSERT INTO user_profiles (id, subscription_tier) VALUES ($1, 'elite')", user_id)
    await conn.execute(
        """INSERT INTO traders (id, user_id, name, enabled, filter, strategy, auto_analyze_signals,
                                max_reanalyses, min_confidence_to_enter, max_monitoring_duration)
           VALUES ($1, $2, $3, true, $4::jsonb, $5::jsonb, false, $6, $7, $8)""",
        trader_id,
        user_id,
        f"backtest {symbol} {interval}",
        json.dumps({"interval": interval}),
        json.dumps(strategy),
        settings.max_reanalyses,
        settings.min_confidence_to_enter,
        settings.max_monitoring_duration,
    )
    # Position settings go to the trader's columns where the schema has them (migration 006).
    present = {
        r["column_name"]
        for r in await conn.fetch("SELECT column_name FROM information_schema.columns WHERE table_name = 'traders'")
    }
    for column, value in (
        ("paper_stake", settings.paper_stake),
        ("max_position_duration", settings.max_position_duration),
    ):
        if column in present:
            await conn.execute(f"UPDATE traders SET {column} = $2 WHERE id = $1", trader_id, value)
    return user_id, trader_id


@contextlib.asynccontextmanager
async def _worker(client: Client, settings: Settings) -> AsyncIterator[None]:
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop=stop, client=client, ready=ready))
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()  # the worker's start-up error
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


class _Run:
    def __init__(self, env: WorkflowEnvironment, spec: BacktestSpec, gate: CallGate, task_queue: str) -> None:
        self.env = env
        self.client = env.client
        self.spec = spec
        self.gate = gate
        self.task_queue = task_queue
        self.monitors: list[_Monitor] = []
        self.stopped: str | None = None
        self.horizon_ms = spec.candles[0].t  # original time up to which candles were delivered
        self.shift_ms = 0

    # -- time ---------------------------------------------------------------------------------

    async def _now_ms(self) -> int:
        return int((await self.env.get_current_time()).timestamp() * 1000)

    async def sleep_to(self, shifted_ms: int) -> None:
        gap = shifted_ms - await self._now_ms()
        if gap > 0:
            await self.env.sleep(timedelta(milliseconds=gap))

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

    def running(self) -> list[_Monitor]:
        return [m for m in self.monitors if m.result is None and m.cut is None]

    def open_positions(self) -> list[_Position]:
        return [m.position for m in self.monitors if m.position is not None and m.position.result is None]

    async def _result(self, handle: WorkflowHandle) -> Any:
        # No auto time-skipping while fetching a result: it would let the server jump to another
        # workflow's timer.
        with self.env.auto_time_skipping_disabled():
            try:
                return await handle.result()
            except Exception as exc:  # a failed or cancelled workflow: its reason is the report's
                return exc

    async def collect(self, m: _Monitor) -> None:
        m.result = await self._result(m.handle)
        if not isinstance(m.result, Exception) and m.result.status == "in_position":
            await self.attach_position(m)

    async def attach_position(self, m: _Monitor) -> None:
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
        m.position = _Position(handle, entry_ms, max_ms)
        await self.settle(handle)
        await self.collect_position_if_closed(m.position, entry_ms)

    async def collect_position_if_closed(self, p: _Position, at_ms: int) -> None:
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
        recipients: list[_Monitor | _Position] = [*monitors, *positions]
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
        m = _Monitor(s, price, str(signal_id), outcome.handle, s.time_ms + self.shift_ms + window)
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


def _decisions(state: dict[str, Any], shift_ms: int) -> list[Decision]:
    out = []
    for d in state.get("history") or []:
        t = d.get("candle_open_time")
        out.append(
            Decision(
                analysis=d["analysis_number"],
                candle_open_ms=None if t is None else t - shift_ms,
                proxy_decision=d["proxy_decision"],
                confidence=float(d["confidence"]),
                decision=d["decision"],
            )
        )
    return out


def _levels(key_levels: Any) -> tuple[Side, Decimal | None, Decimal | None, Decimal | None]:
    kl = json.loads(key_levels) if isinstance(key_levels, str) else (key_levels or {})

    def num(x: Any) -> Decimal | None:
        try:
            d = Decimal(str(x))
        except ArithmeticError:
            return None
        return d if d.is_finite() and d > 0 else None

    tps = kl.get("takeProfit")
    tp = num(tps[0] if isinstance(tps, list) and tps else tps)
    entry, sl = num(kl.get("entry")), num(kl.get("stopLoss"))
    side: Side = "sell" if entry is not None and sl is not None and sl > entry else "buy"
    return side, entry, sl, tp


def _position_reason(p: _Position) -> str:
    res = p.result
    if isinstance(res, Exception):
        return str(getattr(res, "cause", None) or res)
    return str((res or {}).get("reason"))


def _dec(x: Any) -> Decimal | None:
    return None if x is None else Decimal(str(x))


def _position_trade(m: _Monitor, p: _Position) -> Trade | None:
    """The trade as the position manager ran it: its fills' prices and its realised P&L after fees."""
    res = p.result
    if isinstance(res, Exception) or not res or res.get("status") != "closed" or p.exit_ms is None:
        return None
    code = str(res.get("reason", "")).split(":", 1)[0]
    reason = p.cut if code == "operator" and p.cut else EXIT_REASONS.get(code, code)
    entry, exit_price = _dec(res.get("entry_price")), _dec(res.get("exit_price"))
    if entry is None or exit_price is None:
        return None
    return Trade(
        signal_time_ms=m.spec.time_ms,
        side="sell" if res.get("side") == "short" else "buy",
        entry_time_ms=p.entry_ms,
        entry_price=entry,
        quantity=_dec(res.get("initial_quantity")) or Decimal(0),
        exit_time_ms=p.exit_ms,
        exit_price=exit_price,
        exit_reason=reason,
        fees=_dec(res.get("fees_paid")) or Decimal(0),
        pnl=_dec(res.get("realized_pnl")) or Decimal(0),
    )


async def _outcome(run: _Run, conn: asyncpg.Connection, m: _Monitor) -> SignalOutcome:
    spec, settings = run.spec, run.spec.settings
    state = await m.handle.query(STATE_QUERY)
    decisions = _decisions(state, run.shift_ms)
    res = m.result
    if isinstance(res, Exception):
        status = "cancelled" if m.cut else "failed"
        reason = m.cut or str(getattr(res, "cause", None) or res)
    else:
        status, reason = res.status, res.reason
    if m.cut:
        status = "cut_by_cap" if run.stopped else "end_of_data"
    sid = uuid.UUID(m.signal_id)
    delivered = [c for c in spec.candles if c.T + 1 <= run.horizon_ms]
    trade, won = None, None
    management: dict[str, int] = {}
    if status == "in_position" and m.position is not None:
        trade = _position_trade(m, m.position)
        rows = await conn.fetch(
            "SELECT action, count(*) AS n FROM position_management_decisions WHERE signal_id = $1 GROUP BY action", sid
        )
        management = {r["action"]: r["n"] for r in sorted(rows, key=lambda r: r["action"])}
        if trade is None:
            reason = f"{reason}; position: {_position_reason(m.position)}"
    elif status == "in_position":
        reason = f"{reason}; no PositionManagerWorkflow was started for it: no trade"
    elif status == "expired" and decisions:
        row = await conn.fetchrow(
            "SELECT key_levels FROM signal_analyses WHERE signal_id = $1 ORDER BY analysis_number DESC LIMIT 1", sid
        )
        if row is not None:
            side, _entry, sl, tp = _levels(row["key_levels"])
            after = decisions[-1].candle_open_ms
            start = m.spec.time_ms if after is None else after + interval_ms(spec.interval)
            end = m.spec.time_ms + int(settings.max_monitoring_duration.total_seconds() * 1000)
            window = [c for c in delivered if c.t >= start and c.T < end]
            won = would_have_won(side, sl, tp, window)
    return SignalOutcome(
        signal_time_ms=m.spec.time_ms,
        price=m.price,
        status=status,
        reason=reason,
        decisions=decisions,
        llm_calls=run.gate.calls_by_signal.get(m.signal_id, 0),
        tokens=run.gate.tokens_by_signal.get(m.signal_id, 0),
        trade=trade,
        management=management,
        would_have_won=won,
    )


async def run_backtest(
    sandbox: Sandbox, spec: BacktestSpec, proxy: ProxyTarget, progress: Callable[[str], None] | None = None
) -> Report:
    say = progress or (lambda _msg: None)
    database_url = await sandbox.new_database()
    gate = await CallGate(proxy.url, proxy.key, spec.max_calls, proxy.headers).start()
    task_queue = f"backtest-{uuid.uuid4().hex[:10]}"
    settings = Settings(
        database_url=database_url,
        llm_proxy_url=gate.url,
        llm_proxy_key=gate.local_key,
        task_queue=task_queue,
        llm_max_concurrent=8,
        llm_max_per_second=None,
        llm_queue_max_per_second=None,
        llm_timeout_seconds=60.0,
        max_cached_workflows=1000,
        db_pool_size=4,
        paper_fee_pct=spec.settings.fee_rate * 100,
        paper_slippage_pct=spec.settings.slippage * 100,
    )
    run = _Run(sandbox.env, spec, gate, task_queue)
    outcomes: list[SignalOutcome] = []
    conn = await asyncpg.connect(database_url)
    try:
        async with _worker(sandbox.env.client, settings):
            now = await run._now_ms()
            run.shift_ms = (math.ceil((now - spec.candles[0].t) / WEEK_MS) + 1) * WEEK_MS
            strategy = {**spec.settings.strategy, **proxy.strategy}
            _user, trader_id = await _insert_trader(conn, spec.settings, spec.symbol, spec.interval, strategy)
            first_close, last_close = spec.candles[0].T + 1, spec.candles[-1].T + 1
            events: list[tuple[int, int, Any]] = [(c.T + 1, 0, c) for c in spec.candles]
            not_run: list[SignalOutcome] = []
            for s in spec.signals:
                price = s.price if s.price is not None else _price_at(spec.candles, s.time_ms)
                if s.time_ms < first_close or s.time_ms >= last_close or price is None:
                    why = "before the first close" if s.time_ms < first_close else "at or after the last close"
                    not_run.append(
                        SignalOutcome(
                            signal_time_ms=s.time_ms,
                            price=price or Decimal(0),
                            status="not_run",
                            reason=f"signal {why} of the data",
                        )
                    )
                    continue
                events.append((s.time_ms, 1, (s, price)))
            events.sort(key=lambda e: (e[0], e[1]))
            say(f"feeding {len(spec.candles)} closes and {len(events) - len(spec.candles)} signals to the monitors")
            for at, kind, item in events:
                if kind == 0 and not run.running() and not run.open_positions():
                    run.horizon_ms = at  # nobody to feed and no timer to fire: no need to move the clock
                    continue
                await run.sleep_to(at + run.shift_ms)
                go_on = await (run.deliver(item) if kind == 0 else run.start(conn, item[0], item[1], trader_id))
                if not go_on:
                    break
            started = {m.spec.time_ms for m in run.monitors}
            for _at, kind, item in events:
                if kind == 1 and item[0].time_ms not in started:
                    not_run.append(
                        SignalOutcome(
                            signal_time_ms=item[0].time_ms,
                            price=item[1],
                            status="not_run",
                            reason=run.stopped or "not started",
                        )
                    )
            await run.finish()
            for m in run.monitors:
                outcomes.append(await _outcome(run, conn, m))
            outcomes += not_run
    finally:
        await conn.close()
        await gate.stop()
    info = RunInfo(
        symbol=spec.symbol,
        interval=spec.interval,
        candles=len(spec.candles),
        first_open_ms=spec.candles[0].t,
        last_close_ms=run.horizon_ms,
        proxy=proxy.label,
        trades_from=TRADES_FROM,
        stake=spec.settings.paper_stake,
        max_calls=spec.max_calls,
        stopped=run.stopped,
    )
    return build_report(info, outcomes)
