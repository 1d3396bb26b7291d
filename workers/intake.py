"""`signal-monitor intake`: from a new `signals` row to a running SignalMonitorWorkflow.

A trigger (migrations/003) NOTIFYs every inserted signal's id; the intake LISTENs and starts a
monitor for each eligible one (trader `auto_analyze_signals`, owner on the `elite` tier, any case).
Notifications are not durable, so on every (re)connection and every
`SIGNAL_MONITOR_INTAKE_SWEEP_SECONDS` it also sweeps for `new` signals it has not decided on yet.
Each decision is written once to `signals.monitor_intake`, which is what keeps sweeps cheap and
makes an ineligible signal's reason visible in the database as well as in the log.

Starting goes through `start_monitor` (USE_EXISTING + REJECT_DUPLICATE), so a notification and a
sweep racing for the same signal, or two intakes, still start one monitor. A signal is marked only
after Temporal accepted the start: if Temporal is down, the next sweep retries it."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
from temporalio.client import Client

from workers import metrics
from workers.config import ConfigError, Settings
from workers.starting import monitor_summary, start_monitor
from workers.temporal_client import connect_client, describe_target

log = logging.getLogger("signal_monitor.intake")

CHANNEL = "signal_monitor_new_signal"
APPLICATION_NAME = "signal-monitor-intake"
INITIAL_STATUS = "new"
ELIGIBLE_TIER = "elite"
SWEEP_SECONDS_ENV = "SIGNAL_MONITOR_INTAKE_SWEEP_SECONDS"
DEFAULT_SWEEP_SECONDS = 30.0
SWEEP_BATCH = 200
# Sweeps never look further back than this (keeps the index scan short on a table with years of
# history); each trader's own max_monitoring_duration narrows it further.
SWEEP_MAX_AGE = timedelta(days=7)
BACKOFF_START, BACKOFF_MAX = 0.5, 30.0

STARTED, ALREADY_ENDED, INELIGIBLE = "started", "already_ended", "ineligible"

_SELECT = """
SELECT s.id, s.status, s.symbol, coalesce(s.interval, t.filter->>'interval') AS interval,
       s.trader_id, s.monitor_intake, t.id AS found_trader_id, t.name AS trader_name,
       t.auto_analyze_signals, p.id AS found_profile_id, p.subscription_tier, t.paused, t.paused_reason
FROM signals s
LEFT JOIN traders t ON t.id = s.trader_id
LEFT JOIN user_profiles p ON p.id = t.user_id
"""
_BY_ID = _SELECT + "WHERE s.id = $1"
# Matches the partial index signals_monitor_intake_pending_idx.
_SWEEP = (
    _SELECT
    + """WHERE s.monitor_intake IS NULL AND s.status = 'new'
  AND s."timestamp" > now() - $1::interval
  AND (t.id IS NULL OR s."timestamp" + t.max_monitoring_duration > now())
ORDER BY s."timestamp" DESC
LIMIT $2"""
)
_MARK = """UPDATE signals SET monitor_intake = $2, monitor_intake_at = now()
           WHERE id = $1 AND monitor_intake IS NULL"""


class TemporalUnavailable(Exception):
    """Starting a monitor failed for a reason other than the signal itself: retry later."""


class _ConnectionLost(Exception):
    pass


@dataclass(frozen=True)
class Ineligible:
    kind: str  # a metric label: a fixed word, never free text
    reason: str


def ineligibility(row: Any) -> Ineligible | None:
    """Why a signal is not monitored, or None when it is eligible."""
    if row["status"] != INITIAL_STATUS:
        return Ineligible("status", f"status is {row['status']!r}, not {INITIAL_STATUS!r}")
    if row["found_trader_id"] is None:
        return Ineligible("no_trader", f"trader {row['trader_id']} not found")
    if not row["auto_analyze_signals"]:
        return Ineligible(
            "auto_analyze_off", f"trader {row['trader_name'] or row['trader_id']} has auto_analyze_signals off"
        )
    if row.get("paused"):
        # max_consecutive_losses (position management); `signal-monitor trader resume` lifts it.
        return Ineligible(
            "trader_paused", f"trader {row['trader_name'] or row['trader_id']} is paused: {row['paused_reason']}"
        )
    if row["found_profile_id"] is None:
        return Ineligible("no_profile", "the trader's owner has no user profile")
    tier = (row["subscription_tier"] or "").strip().lower()
    if tier != ELIGIBLE_TIER:
        return Ineligible("tier", f"the trader's owner is on the {tier or 'unset'} tier, not {ELIGIBLE_TIER}")
    return None


def sweep_seconds() -> float:
    raw = os.environ.get(SWEEP_SECONDS_ENV, "").strip()
    if not raw:
        return DEFAULT_SWEEP_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{SWEEP_SECONDS_ENV} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{SWEEP_SECONDS_ENV} must be positive, got {raw!r}")
    return value


class _Backoff:
    def __init__(self) -> None:
        self.delay = BACKOFF_START

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, BACKOFF_MAX)
        return delay

    def reset(self) -> None:
        self.delay = BACKOFF_START


class _Metrics:
    def __init__(self) -> None:
        m = metrics.meter()
        p = metrics.PREFIX
        self.seen = m.create_counter(
            p + "intake_signals_seen", "signals examined by the intake, by source (notify, sweep)"
        )
        self.swept = m.create_counter(
            p + "intake_signals_swept", "undecided signals found by sweeps (missed notifications)"
        )
        self.started = m.create_counter(p + "intake_monitors_started", "monitors started by the intake, by source")
        self.ineligible = m.create_counter(p + "intake_signals_ineligible", "signals left alone, by reason")
        self.existing = m.create_counter(
            p + "intake_monitors_existing", "eligible signals whose monitor already existed (running or ended)"
        )
        self.errors = m.create_counter(p + "intake_errors", "intake failures, by dependency (postgres, temporal)")
        self.connected = m.create_gauge(p + "intake_listening", "1 while the intake holds its LISTEN connection")


async def run_intake(
    settings: Settings,
    client: Client | None = None,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    sweep_every: float | None = None,
) -> None:
    """Runs until `stop` is set (SIGTERM/SIGINT when none is given). `ready` is set once the
    first LISTEN is in place and the first sweep has run."""
    dsn = settings.require_database()
    period = sweep_every if sweep_every is not None else sweep_seconds()
    if client is None:
        metrics.init_runtime()  # before the first connection: the runtime serves /metrics
    stop = stop or _stop_on_signals()
    await _Intake(settings, dsn, client, period).run(stop, ready)


class _Intake:
    def __init__(self, settings: Settings, dsn: str, client: Client | None, period: float):
        self.settings = settings
        self.dsn = dsn
        self.client = client
        self.period = period
        self.metrics = _Metrics()

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None) -> None:
        backoff = _Backoff()
        while not stop.is_set():
            if self.client is None:
                try:
                    log.info("connecting to Temporal at %s", describe_target())
                    self.client = await connect_client()
                except Exception as exc:  # the SDK raises RuntimeError for most connection failures
                    self.metrics.errors.add(1, {"dependency": "temporal"})
                    delay = backoff.next()
                    log.warning("cannot reach Temporal (%s); retrying in %.1f s", _brief(exc), delay)
                    await _sleep_unless(stop, delay)
                    continue
            try:
                await self._session(stop, ready, backoff)
                return
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError, _ConnectionLost) as exc:
                self.metrics.connected.set(0)
                self.metrics.errors.add(1, {"dependency": "postgres"})
                delay = backoff.next()
                log.warning("lost PostgreSQL (%s); reconnecting in %.1f s", _brief(exc), delay)
                await _sleep_unless(stop, delay)
        log.info("intake stopped")

    async def _session(self, stop: asyncio.Event, ready: asyncio.Event | None, backoff: _Backoff) -> None:
        """One PostgreSQL connection: LISTEN, sweep, then take notifications until stop or loss."""
        inbox: asyncio.Queue[object] = asyncio.Queue()
        lost, stopping = object(), object()
        # command_timeout: a half-open connection (no RST ever arrives) surfaces at the next sweep.
        conn = await asyncpg.connect(
            self.dsn, timeout=10, command_timeout=30, server_settings={"application_name": APPLICATION_NAME}
        )
        stop_watch = asyncio.create_task(_put_when_set(stop, inbox, stopping))
        try:
            conn.add_termination_listener(lambda _c: inbox.put_nowait(lost))
            await conn.add_listener(CHANNEL, lambda _c, _pid, _ch, payload: inbox.put_nowait(payload))
            self.metrics.connected.set(1)
            log.info("listening on %s; sweeping every %.0f s", CHANNEL, self.period)
            temporal_backoff = _Backoff()
            next_sweep = 0.0
            first = True
            while True:
                if time.monotonic() >= next_sweep:
                    try:
                        await self._sweep(conn)
                        temporal_backoff.reset()
                        next_sweep = time.monotonic() + self.period
                    except TemporalUnavailable:
                        next_sweep = time.monotonic() + temporal_backoff.next()
                    if first:
                        first = False
                        backoff.reset()
                        if ready is not None:
                            ready.set()
                try:
                    item = await asyncio.wait_for(inbox.get(), max(0.0, next_sweep - time.monotonic()))
                except TimeoutError:
                    continue
                if item is stopping:
                    return
                if item is lost:
                    raise _ConnectionLost("the LISTEN connection closed")
                try:
                    await self._examine_id(conn, str(item))
                except TemporalUnavailable:
                    # Unmarked, so a sweep retries it: sooner than the period, with backoff.
                    next_sweep = min(next_sweep, time.monotonic() + temporal_backoff.next())
        finally:
            stop_watch.cancel()
            self.metrics.connected.set(0)
            if conn.is_closed():
                conn.terminate()
            else:
                try:
                    await asyncio.wait_for(conn.close(), 5)
                except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    conn.terminate()

    async def _sweep(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(_SWEEP, SWEEP_MAX_AGE, SWEEP_BATCH)
        if rows:
            log.info("sweep found %d undecided signal(s)", len(rows))
            self.metrics.swept.add(len(rows))
        for row in rows:
            await self._examine(conn, row, "sweep")

    async def _examine_id(self, conn: asyncpg.Connection, payload: str) -> None:
        try:
            signal_id = uuid.UUID(payload)
        except ValueError:
            log.warning("ignored a notification on %s that is not a signal id: %r", CHANNEL, payload[:80])
            return
        row = await conn.fetchrow(_BY_ID, signal_id)
        if row is None:
            log.warning(
                "signal %s was notified but is not in the table (deleted?)",
                signal_id,
                extra={"signal_id": str(signal_id)},
            )
            return
        await self._examine(conn, row, "notify")

    async def _examine(self, conn: asyncpg.Connection, row: Any, source: str) -> None:
        signal_id = str(row["id"])
        extra: dict[str, Any] = {"signal_id": signal_id, "event": "intake"}
        self.metrics.seen.add(1, {"source": source})
        if row["monitor_intake"] is not None:
            log.debug("signal %s already decided (%s)", signal_id, row["monitor_intake"], extra=extra)
            return
        why = ineligibility(row)
        if why is not None:
            log.info("signal %s left alone: %s", signal_id, why.reason, extra=extra)
            self.metrics.ineligible.add(1, {"reason": why.kind})
            await conn.execute(_MARK, row["id"], f"{INELIGIBLE}: {why.reason}")
            return
        summary = monitor_summary(row["symbol"], row["interval"], row["trader_name"], row["trader_id"])
        assert self.client is not None
        try:
            outcome = await start_monitor(self.client, signal_id, self.settings.task_queue, summary)
        except Exception as exc:
            self.metrics.errors.add(1, {"dependency": "temporal"})
            log.warning("signal %s: could not start its monitor (%s); will retry", signal_id, _brief(exc), extra=extra)
            raise TemporalUnavailable(str(exc)) from exc
        wid = outcome.handle.id
        extra["temporal_workflow"] = {"workflow_id": wid}  # lifted into JSON log lines by workers.logs
        if outcome.started:
            self.metrics.started.add(1, {"source": source})
            log.info("signal %s: monitor %s started (%s)", signal_id, wid, source, extra=extra)
        else:
            self.metrics.existing.add(1)
            log.info(
                "signal %s: monitor %s %s; nothing started",
                signal_id,
                wid,
                "had already ended" if outcome.ended_before else "is already running",
                extra=extra,
            )
        await conn.execute(_MARK, row["id"], ALREADY_ENDED if outcome.ended_before else STARTED)


def _brief(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


async def _put_when_set(event: asyncio.Event, queue: asyncio.Queue, item: object) -> None:
    await event.wait()
    queue.put_nowait(item)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
