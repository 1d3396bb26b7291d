"""`signal-monitor intake`: from a new `signals` row to a running SignalMonitorWorkflow.

A trigger (migrations/003) NOTIFYs every inserted signal's id; the intake LISTENs and starts a
monitor for each eligible one (trader `auto_analyze_signals`, owner on the `elite` tier: see
intake/eligibility.py). Notifications are not durable, so on every (re)connection and every
`SIGNAL_MONITOR_INTAKE_SWEEP_SECONDS` it also sweeps for signals it has not decided on yet, whatever
the platform's triggers did to their status meanwhile (`new`, NULL, `monitoring`, `ready`, 032's
`expired`). The eligibility query is built from the schema read at start-up; a missing table or
column stops the intake with a SchemaError naming it (exit code 3), never a reconnect loop.
Each decision is written once to `signals.monitor_intake`, which is what keeps sweeps cheap and
makes an ineligible signal's reason visible in the database as well as in the log.

Starting goes through `start_monitor` (USE_EXISTING + REJECT_DUPLICATE), so a notification and a
sweep racing for the same signal, or two intakes, still start one monitor. A signal is marked only
after Temporal accepted the start: if Temporal is down, the next sweep retries it."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities import platform_schema
from activities.platform_schema import PlatformSchema, SchemaError
from activities.signals_db import EXPIRED_BY_032
from intake.eligibility import Subscription, tier_problem
from intake.position_reconcile import PositionReconciler
from intake.reconcile import Reconciler
from intake.starting import monitor_summary, start_monitor
from runtime import metrics, rollout_store
from runtime.config import Settings
from runtime.lifecycle import Backoff, stop_on_signals
from runtime.rollout import MODES, NOT_IN_ROLLOUT, Rollout
from runtime.temporal_client import connect_client, describe_target

log = logging.getLogger("signal_monitor.intake")

CHANNEL = "signal_monitor_new_signal"
APPLICATION_NAME = "signal-monitor-intake"
# Statuses a signal may have when the intake first sees it: the screener's (`new` or the column's
# NULL default), the app's queueing ones, and what trigger 032 writes from the platform's initial
# analysis (`monitoring`, `ready`; its `expired` is recognised by EXPIRED_BY_032).
MONITORABLE_STATUSES = ("new", "analysis_queued", "analyzing", "monitoring", "ready")
SWEEP_BATCH = 200
CHANGE_SETTLE = 0.2  # seconds a notified change waits for the ones right behind it
# Sweeps never look further back than this (keeps the index scan short on a table with years of
# history); each trader's own max_monitoring_duration narrows it further.
SWEEP_MAX_AGE = timedelta(days=7)
BACKOFF_START, BACKOFF_MAX = 0.5, 30.0

STARTED, ALREADY_ENDED, INELIGIBLE = "started", "already_ended", "ineligible"

_MONITORABLE = f"""(s.status IS NULL OR s.status IN ({", ".join(f"'{v}'" for v in MONITORABLE_STATUSES)})
     OR {EXPIRED_BY_032})"""
_MARK = """UPDATE signals SET monitor_intake = $2, monitor_intake_at = now()
           WHERE id = $1 AND monitor_intake IS NULL"""
# A widened rollout: the signals it left out, still within their window, are examined again.
_REEXAMINE = f"""UPDATE signals s SET monitor_intake = NULL, monitor_intake_at = NULL
FROM traders t
WHERE t.id = s.trader_id AND s.monitor_intake LIKE '{INELIGIBLE}: {NOT_IN_ROLLOUT}%' AND {_MONITORABLE}
  AND s."timestamp" > now() - $1::interval AND s."timestamp" + t.max_monitoring_duration > now()"""
# Set just before the intake cancels a monitor whose signal is no longer wanted; finish_signal
# makes it the cancelled signal's monitor_reason. Cleared when the signal is wanted again.
_LEAVE = """UPDATE signals SET monitor_leave_reason = $2 WHERE id = $1
           AND monitor_leave_reason IS DISTINCT FROM $2"""
LEAVE_PREFIX = "no longer eligible: "
# Shadow mode (SIGNAL_MONITOR_SHADOW=on) writes nothing to `signals`: its decisions live in
# shadow_intake, and the platform's statuses do not say whether a shadow monitor still runs.
_SHADOW_MARK = """INSERT INTO shadow_intake (signal_id, decision) VALUES ($1, $2) ON CONFLICT (signal_id) DO NOTHING"""
_SHADOW_REEXAMINE = f"""DELETE FROM shadow_intake si USING signals s, traders t
WHERE si.signal_id = s.id AND t.id = s.trader_id AND si.decision LIKE '{INELIGIBLE}: {NOT_IN_ROLLOUT}%'
  AND s."timestamp" > now() - $1::interval AND s."timestamp" + t.max_monitoring_duration > now()"""


@dataclass(frozen=True)
class Queries:
    by_id: str
    sweep: str
    profile_tier: bool
    running: str = ""
    """The signals this intake started whose monitors may still run: are they still wanted?"""
    recent: str = ""
    """Every signal since $1 (a dry run of the rollout counts which it would monitor)."""
    mark: str = _MARK
    reexamine: str = _REEXAMINE
    leave: str | None = _LEAVE
    """None in shadow mode: a shadow monitor's cancel carries no reason into `signals`."""


def build_queries(schema: PlatformSchema, shadow: bool = False) -> Queries:
    """The eligibility inputs as this database holds them: the subscription always, the profile
    tier only where production's column exists. In shadow mode the intake's marks are read from
    and written to shadow_intake instead of `signals`."""
    if schema.profile_tier:
        profile, profile_join = "p.subscription_tier", "LEFT JOIN user_profiles p ON p.id = t.user_id"
    else:
        profile, profile_join = "NULL::text", ""
    if shadow:
        marks, marks_join = (
            "si.decision AS monitor_intake, NULL::text AS monitor_leave_reason",
            ("LEFT JOIN shadow_intake si ON si.signal_id = s.id"),
        )
        undecided, started = "si.signal_id IS NULL", f"si.decision = '{STARTED}' AND si.ended_at IS NULL"
    else:
        marks, marks_join = "s.monitor_intake, s.monitor_leave_reason", ""
        undecided, started = "s.monitor_intake IS NULL", f"s.monitor_intake = '{STARTED}' AND {_MONITORABLE}"
    select = f"""
SELECT s.id, s.status, s.symbol, coalesce(s.interval, t.filter->>'interval') AS interval,
       s.trader_id, {marks}, t.id AS found_trader_id, t.name AS trader_name,
       t.user_id AS owner_id,
       t.auto_analyze_signals, {profile} AS profile_tier, us.tier AS subscription_tier,
       us.status AS subscription_status, us.expires_at AS subscription_expires_at, now() AS db_now,
       {EXPIRED_BY_032} AS expired_by_032, t.paused, t.paused_reason
FROM signals s
LEFT JOIN traders t ON t.id = s.trader_id
{profile_join}
{marks_join}
LEFT JOIN LATERAL (
    SELECT u.tier, u.status, u.expires_at FROM user_subscriptions u WHERE u.user_id = t.user_id
    ORDER BY (lower(u.tier) = 'elite' AND u.status = 'active' AND (u.expires_at IS NULL OR u.expires_at > now())) DESC,
             u.expires_at DESC NULLS FIRST
    LIMIT 1) us ON true
"""
    # Matches the partial index signals_monitor_intake_undecided_idx (migration 005).
    sweep = (
        select
        + f"""WHERE {undecided} AND {_MONITORABLE}
  AND s."timestamp" > now() - $1::interval
  AND (t.id IS NULL OR s."timestamp" + t.max_monitoring_duration > now())
ORDER BY s."timestamp" DESC
LIMIT $2"""
    )
    running = (
        select
        + f"""WHERE {started}
  AND s."timestamp" > now() - $1::interval"""
    )
    recent = select + 'WHERE s."timestamp" > $1 ORDER BY s."timestamp"'
    return Queries(
        by_id=select + "WHERE s.id = $1",
        sweep=sweep,
        profile_tier=schema.profile_tier,
        running=running,
        recent=recent,
        mark=_SHADOW_MARK if shadow else _MARK,
        reexamine=_SHADOW_REEXAMINE if shadow else _REEXAMINE,
        leave=None if shadow else _LEAVE,
    )


class TemporalUnavailable(Exception):
    """Starting a monitor failed for a reason other than the signal itself: retry later."""


class _ConnectionLost(Exception):
    pass


@dataclass(frozen=True)
class Ineligible:
    kind: str  # a metric label: a fixed word, never free text
    reason: str


def ineligibility(row: Any, profile_tier: bool, rollout: Rollout | None = None) -> Ineligible | None:
    """Why a signal is not monitored, or None when it is eligible (and, given a rollout, in it)."""
    if not (row["status"] is None or row["status"] in MONITORABLE_STATUSES or row["expired_by_032"]):
        return Ineligible("status", f"status is {row['status']!r}: it has ended or is handled elsewhere")
    return owner_problem(row, profile_tier, rollout)


def owner_problem(row: Any, profile_tier: bool, rollout: Rollout | None = None) -> Ineligible | None:
    """Whether the signal's trader and owner are wanted, whatever the signal's status: the
    trader, its auto-analysis, its pause, the owner's tier, then the rollout."""
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
    sub = None
    if row["subscription_tier"] is not None or row["subscription_status"] is not None:
        sub = Subscription(row["subscription_tier"], row["subscription_status"], row["subscription_expires_at"])
    problem = tier_problem(sub, row["profile_tier"], profile_tier, row["db_now"])
    if problem is not None:
        return Ineligible("tier", problem)
    if rollout is not None:
        out = rollout.why_not(row["trader_id"], row["owner_id"])
        if out is not None:
            return Ineligible("not_in_rollout", out)
    return None


# What makes a running monitor stop (docs/rollout.md, "Leaving"): a deleted trader is the
# monitor's own business (it ends `failed`), a pause stops only new starts.
LEAVING_KINDS = frozenset({"auto_analyze_off", "tier", "not_in_rollout"})


def _backoff() -> Backoff:
    # Not jittered: one intake (or a few) per deployment, and its log says the exact next try.
    return Backoff(BACKOFF_START, BACKOFF_MAX, jitter=False)


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
        self.left = m.create_counter(
            p + "intake_monitors_left",
            "running monitors cancelled because their signal is no longer wanted, by reason",
        )
        self.decisions = m.create_counter(
            p + "intake_decisions",
            "every intake decision on a signal, by reason (started, existing, <ineligible kind>)",
        )
        self.rollout_mode = m.create_gauge(p + "rollout_mode", "1 for the monitoring rollout's current mode")
        self.paused = m.create_gauge(
            p + "traders_paused", "traders paused by max_consecutive_losses, counted each sweep"
        )
        self.rollout_percent = m.create_gauge_float(
            p + "rollout_percent", "share of users admitted by percentage (percent mode: N, all: 100, else 0)"
        )


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
    period = sweep_every if sweep_every is not None else settings.intake_sweep_seconds
    if client is None:
        metrics.init_runtime(settings.metrics_address)  # before the first connection: the runtime serves /metrics
    stop = stop or stop_on_signals()
    await _Intake(settings, dsn, client, period).run(stop, ready)


async def read_schema(settings: Settings, dsn: str) -> Queries:
    """Once at start-up: what this database holds decides the queries. A missing table or column
    raises SchemaError (a configuration error: the intake stops, naming it). An empty rollout
    table gets SIGNAL_MONITOR_ROLLOUT's seed."""
    conn = await asyncpg.connect(dsn, timeout=10, server_settings={"application_name": APPLICATION_NAME})
    try:
        schema = await platform_schema.inspect(conn)
        schema.require_for_intake()
        try:
            rollout = await rollout_store.read_or_seed(conn, settings.rollout_seed)
        except rollout_store.RolloutTableMissing as exc:
            raise SchemaError(str(exc)) from None
    finally:
        await conn.close()
    log.info("rollout: %s (revision %d; `signal-monitor rollout show`)", rollout.describe(), rollout.revision)
    choice = platform_schema.choose_initial_analysis(settings.initial_analysis, schema)
    log.info("beside the platform: %s", platform_schema.describe(schema, choice))
    if settings.shadow_mode:
        log.warning("shadow mode (SIGNAL_MONITOR_SHADOW=on): decisions go to shadow_intake, nothing to signals")
    return build_queries(schema, shadow=settings.shadow_mode)


class _Intake:
    def __init__(self, settings: Settings, dsn: str, client: Client | None, period: float):
        self.settings = settings
        self.dsn = dsn
        self.client = client
        self.period = period
        self.metrics = _Metrics()
        self.queries: Queries | None = None
        self.reconciler = Reconciler(settings.task_queue)
        self.positions = PositionReconciler(settings.task_queue)
        self.rollout: Rollout | None = None

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None) -> None:
        backoff = _backoff()
        while not stop.is_set():
            if self.queries is None:
                # Before Temporal: a database that cannot work is said at once, whatever else is down.
                try:
                    self.queries = await read_schema(self.settings, self.dsn)
                except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError) as exc:
                    raise SchemaError(f"the database schema does not fit the intake: {exc}") from None
                except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    self.metrics.errors.add(1, {"dependency": "postgres"})
                    delay = backoff.next_delay()
                    log.warning("cannot read the schema from PostgreSQL (%s); retrying in %.1f s", _brief(exc), delay)
                    await _sleep_unless(stop, delay)
                    continue
            if self.client is None:
                try:
                    log.info("connecting to Temporal at %s", describe_target())
                    self.client = await connect_client()
                except Exception as exc:  # the SDK raises RuntimeError for most connection failures
                    self.metrics.errors.add(1, {"dependency": "temporal"})
                    delay = backoff.next_delay()
                    log.warning("cannot reach Temporal (%s); retrying in %.1f s", _brief(exc), delay)
                    await _sleep_unless(stop, delay)
                    continue
            try:
                await self._session(stop, ready, backoff)
                return
            except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError) as exc:
                # The schema changed under a running intake (or a query is wrong): no reconnection fixes it.
                raise SchemaError(f"the database schema does not fit the intake: {exc}") from None
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError, _ConnectionLost) as exc:
                self.metrics.connected.set(0)
                self.metrics.errors.add(1, {"dependency": "postgres"})
                delay = backoff.next_delay()
                log.warning("lost PostgreSQL (%s); reconnecting in %.1f s", _brief(exc), delay)
                await _sleep_unless(stop, delay)
        log.info("intake stopped")

    async def _session(self, stop: asyncio.Event, ready: asyncio.Event | None, backoff: Backoff) -> None:
        """One PostgreSQL connection: LISTEN, sweep, then take notifications until stop or loss."""
        inbox: asyncio.Queue[object] = asyncio.Queue()
        lost, stopping, rollout_changed = object(), object(), object()
        # command_timeout: a half-open connection (no RST ever arrives) surfaces at the next sweep.
        conn = await asyncpg.connect(
            self.dsn, timeout=10, command_timeout=30, server_settings={"application_name": APPLICATION_NAME}
        )
        stop_watch = asyncio.create_task(_put_when_set(stop, inbox, stopping))
        try:
            conn.add_termination_listener(lambda _c: inbox.put_nowait(lost))
            await conn.add_listener(CHANNEL, lambda _c, _pid, _ch, payload: inbox.put_nowait(payload))
            # A rollout change, a trader's auto-analysis or an owner's tier changed (migration 010's
            # triggers): sweep now (widening starts, leaving stops monitors, without waiting).
            await conn.add_listener(rollout_store.CHANNEL, lambda *_args: inbox.put_nowait(rollout_changed))
            self.metrics.connected.set(1)
            log.info("listening on %s; sweeping every %.0f s", CHANNEL, self.period)
            temporal_backoff = _backoff()
            next_sweep = 0.0
            first = True
            while True:
                if time.monotonic() >= next_sweep:
                    try:
                        await self._sweep(conn)
                        temporal_backoff.reset()
                        next_sweep = time.monotonic() + self.period
                    except TemporalUnavailable:
                        next_sweep = time.monotonic() + temporal_backoff.next_delay()
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
                if item is rollout_changed:
                    # Coalesced: a burst of changes (a bulk UPDATE of traders) is one sweep.
                    next_sweep = min(next_sweep, time.monotonic() + CHANGE_SETTLE)
                    continue
                try:
                    await self._examine_id(conn, str(item))
                except TemporalUnavailable:
                    # Unmarked, so a sweep retries it: sooner than the period, with backoff.
                    next_sweep = min(next_sweep, time.monotonic() + temporal_backoff.next_delay())
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

    async def _current_rollout(self, conn: asyncpg.Connection) -> Rollout:
        """The rollout as stored now (one primary-key read). A new revision is logged and, since
        it may have widened, the signals it left out are examined again by this sweep."""
        rollout = await rollout_store.read_or_seed(conn, self.settings.rollout_seed)
        previous = self.rollout
        if previous is None or previous.revision != rollout.revision:
            assert self.queries is not None
            cleared = await conn.execute(self.queries.reexamine, SWEEP_MAX_AGE)
            again = int(cleared.split()[-1])
            log.info(
                "rollout: %s (revision %d)%s",
                rollout.describe(),
                rollout.revision,
                f"; {again} signal(s) it had left out are examined again" if again else "",
            )
            for mode in MODES:
                self.metrics.rollout_mode.set(1 if mode == rollout.mode else 0, {"mode": mode})
            share = {"percent": float(rollout.percent), "all": 100.0}.get(rollout.mode, 0.0)
            self.metrics.rollout_percent.set(share)
        self.rollout = rollout
        return rollout

    async def _sweep(self, conn: asyncpg.Connection) -> None:
        assert self.queries is not None
        await self._current_rollout(conn)
        rows = await conn.fetch(self.queries.sweep, SWEEP_MAX_AGE, SWEEP_BATCH)
        if rows:
            log.info("sweep found %d undecided signal(s)", len(rows))
            self.metrics.swept.add(len(rows))
        for row in rows:
            await self._examine(conn, row, "sweep")
        if self.client is not None:
            await self._stop_the_unwanted(conn)
        self.metrics.paused.set(await conn.fetchval("SELECT count(*) FROM traders WHERE paused"))
        # Rows whose monitor Temporal ended around its code (terminate, failure, timeout...).
        if self.client is not None and not self.settings.shadow_mode:  # shadow mode writes no signal row
            await self.reconciler.sweep(self.client, conn)
            # Open positions whose workflow ended around its code: reported (see position_reconcile).
            await self.positions.sweep(self.client, conn)

    async def _examine_id(self, conn: asyncpg.Connection, payload: str) -> None:
        try:
            signal_id = uuid.UUID(payload)
        except ValueError:
            log.warning("ignored a notification on %s that is not a signal id: %r", CHANNEL, payload[:80])
            return
        assert self.queries is not None
        row = await conn.fetchrow(self.queries.by_id, signal_id)
        if row is None:
            log.warning(
                "signal %s was notified but is not in the table (deleted?)",
                signal_id,
                extra={"signal_id": str(signal_id)},
            )
            return
        await self._current_rollout(conn)
        await self._examine(conn, row, "notify")

    async def _stop_the_unwanted(self, conn: asyncpg.Connection) -> None:
        """Leaving is as real as joining: a running monitor whose trader turned auto-analysis
        off, whose owner is no longer elite, or who is out of the rollout is cancelled, with
        that reason written first for finish_signal to use."""
        assert self.queries is not None and self.client is not None
        for row in await conn.fetch(self.queries.running, SWEEP_MAX_AGE):
            why = owner_problem(row, self.queries.profile_tier, self.rollout)
            if why is None or why.kind not in LEAVING_KINDS:
                if row["monitor_leave_reason"] is not None and self.queries.leave:  # wanted again in time
                    await conn.execute(self.queries.leave, row["id"], None)
                continue
            signal_id = str(row["id"])
            reason = LEAVE_PREFIX + why.reason
            extra: dict[str, Any] = {"signal_id": signal_id, "event": "intake"}
            if self.queries.leave:
                await conn.execute(self.queries.leave, row["id"], reason)
            try:
                await self.client.get_workflow_handle(f"signal-{signal_id}").cancel()
            except Exception as exc:  # Temporal unreachable: the SDK raises RuntimeError too
                if not (isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND):  # NOT_FOUND: ended
                    self.metrics.errors.add(1, {"dependency": "temporal"})
                    log.warning(
                        "signal %s: could not cancel its monitor (%s); next sweep retries", signal_id, _brief(exc)
                    )
                continue
            if row["monitor_leave_reason"] != reason:
                self.metrics.left.add(1, {"reason": why.kind})
                log.info("signal %s: monitor cancelled: %s", signal_id, reason, extra=extra)

    async def _examine(self, conn: asyncpg.Connection, row: Any, source: str) -> None:
        signal_id = str(row["id"])
        extra: dict[str, Any] = {"signal_id": signal_id, "event": "intake"}
        self.metrics.seen.add(1, {"source": source})
        if row["monitor_intake"] is not None:
            log.debug("signal %s already decided (%s)", signal_id, row["monitor_intake"], extra=extra)
            return
        assert self.queries is not None
        why = ineligibility(row, self.queries.profile_tier, self.rollout)
        if why is not None:
            log.info("signal %s left alone: %s", signal_id, why.reason, extra=extra)
            self.metrics.ineligible.add(1, {"reason": why.kind})
            self.metrics.decisions.add(1, {"reason": why.kind})
            await conn.execute(self.queries.mark, row["id"], f"{INELIGIBLE}: {why.reason}")
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
        extra["temporal_workflow"] = {"workflow_id": wid}  # lifted into JSON log lines by runtime.logs
        self.metrics.decisions.add(1, {"reason": "started" if outcome.started else "existing"})
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
        await conn.execute(self.queries.mark, row["id"], ALREADY_ENDED if outcome.ended_before else STARTED)


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
