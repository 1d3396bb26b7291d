"""SignalMonitorWorkflow: one long-lived workflow per monitored signal.

Signal handlers only validate, classify and enqueue; one main loop runs the analyses, so every
candle is analysed at most once and the de-duplication state is durable workflow state."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities import llm_proxy as llm_errors
    from activities.llm_proxy import LlmProxy
    from activities.signals_db import SignalStore
    from workflows import names
    from workflows import search_attributes as sa
    from workflows.candles import Kline, is_valid_interval, is_valid_symbol
    from workflows.decisions import monitor_decision
    from workflows.models import (
        TERMINAL_SIGNAL_STATUSES,
        Analysis,
        AnalyzeSignalInput,
        CarriedState,
        Counts,
        DecisionRecord,
        FailedAnalysis,
        FinishedSignal,
        FinishSignalInput,
        LoadSignalInput,
        MonitorResult,
        MonitorState,
        PreviousDecision,
        RecordAnalysisInput,
        RecordedAnalysis,
        SignalContext,
        SignalMonitorInput,
    )
    from workflows.position_models import StartedPosition, StartPositionInput

MAX_CONSECUTIVE_FAILURES = 5
MAX_REANALYSES_CEILING = 1000
# Bounded memory of open times seen, to tell a repeated candle (duplicate) from an old one (stale).
RECENT_CANDLES_KEPT = 64
SKIPPED_KEPT = 50
FAILURES_KEPT = 20
REASONING_KEPT = 500
# An operator's cancel that arrives while an activity runs reaches the workflow as that activity's
# cancellation (an ActivityError), not as asyncio.CancelledError: before this patch it was taken
# for a failed analysis and the monitor kept running.
CANCEL_DURING_ACTIVITY_PATCH = "cancel-during-activity"
# Before this patch a waiting candle was analysed before Temporal's continue-as-new suggestion was
# looked at, so a monitor that always had a close waiting (closes faster than analyses, or a
# backlog after an outage) never continued as new and grew toward the hard history limit.
CONTINUE_AS_NEW_FIRST_PATCH = "continue-as-new-before-waiting-candle"
# An `enter` starts the signal's PositionManagerWorkflow (`position-<id>`); before this patch the
# monitor ended at the order intent and nothing managed the position.
START_POSITION_PATCH = "start-position-on-enter"

ANALYSIS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=6,
    non_retryable_error_types=llm_errors.NON_RETRYABLE,
)
DB_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=["SignalNotFound", "InvalidSignalId"],
)
DB_TIMEOUT = timedelta(seconds=30)


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _utc(ms: int | None) -> str:
    if ms is None:
        return "signal"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


class _Ended(Exception):
    """Internal: the monitor reached an end; carries the result out of the main loop."""

    def __init__(self, result: MonitorResult):
        self.result = result


@workflow.defn(name=names.WORKFLOW_TYPE)
class SignalMonitorWorkflow:
    @workflow.init
    def __init__(self, input: SignalMonitorInput) -> None:
        self._signal_id = input.signal_id
        c = input.carried
        self._context: SignalContext | None = c.context if c else None
        self._status: str = c.status if c else "starting"
        self._deadline: datetime | None = c.deadline if c else None
        self._max_reanalyses: int | None = c.max_reanalyses if c else None
        self._initial_done: bool = c.initial_done if c else False
        self._last_taken_t: int | None = c.last_taken_t if c else None
        self._recent_t: list[int] = list(c.recent_t) if c else []
        self._pending: Kline | None = c.pending if c else None
        self._retry_candle: Kline | None = c.retry_candle if c else None
        self._retry_initial: bool = c.retry_initial if c else False
        self._consecutive_failures: int = c.consecutive_failures if c else 0
        self._counts: Counts = c.counts if c else Counts()
        self._history: list[DecisionRecord] = list(c.history) if c else []
        self._failures: list[FailedAnalysis] = list(c.failures) if c else []
        self._skipped_t: list[int] = list(c.skipped_t) if c else []
        self._runs: int = (c.runs + 1) if c else 1
        self._early: list[Kline] = []
        self._analysing = False
        self._force_reanalysis = False
        self._abandon_reason: str | None = None
        self._limit_changed = False
        self._result: MonitorResult | None = None
        self._order_intent_id: str | None = None

    # --- the main loop -------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: SignalMonitorInput) -> MonitorResult:
        try:
            try:
                if self._context is None:
                    await self._load()
                self._publish()
                for kline in self._early:
                    self._classify(kline)
                self._early.clear()
                if not self._initial_done:
                    self._initial_done = True
                    await self._analyse(None)
                while True:
                    await self._next_step()
            except _Ended as ended:
                self._result = ended.result
        except (asyncio.CancelledError, ActivityError) as err:
            if isinstance(err, ActivityError) and not self._cancelled_activity(err):
                raise
            # Clean-up survives the cancellation: activities scheduled after it run normally.
            finished = await self._finish_activity("cancelled", "cancelled by operator")
            if finished.signal_status == "cancelled" or finished.signal_status is None:
                self._status = "cancelled"
                self._publish()
                raise
            # The signal had already ended (e.g. an `enter` recorded a moment before): report that.
            self._result = self._make_result(finished.signal_status, "ended before the cancellation")
        self._status = self._result.status
        self._publish()
        # Updates waiting on the end see the result before the run completes.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result

    @staticmethod
    def _cancelled_activity(err: ActivityError) -> bool:
        # Only a cancel of this workflow cancels its activities (nothing else requests it).
        return is_cancelled_exception(err) and workflow.patched(CANCEL_DURING_ACTIVITY_PATCH)

    async def _load(self) -> None:
        try:
            ctx = await workflow.execute_activity_method(
                SignalStore.load_signal,
                LoadSignalInput(signal_id=self._signal_id),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
                summary="load signal and trader",
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type in ("SignalNotFound", "InvalidSignalId"):
                raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from None
            raise
        self._context = ctx
        self._max_reanalyses = ctx.max_reanalyses
        self._deadline = ctx.signal_time + timedelta(seconds=ctx.max_monitoring_seconds)
        workflow.logger.info(
            "monitoring signal %s: %s %s, trader %s", ctx.signal_id, ctx.symbol, ctx.interval, ctx.trader_id
        )
        if ctx.status in TERMINAL_SIGNAL_STATUSES:
            # Started again for a signal that already ended: report, change nothing.
            raise _Ended(self._make_result(ctx.status, f"signal was already {ctx.status}"))
        problem = self._context_problem(ctx)
        if problem:
            await self._end("failed", problem)
        if workflow.now() >= self._deadline:
            await self._end("expired", "max_monitoring_duration had passed before monitoring started")
        self._status = "analyzing"

    @staticmethod
    def _context_problem(ctx: SignalContext) -> str | None:
        if not ctx.trader_found:
            return f"trader {ctx.trader_id} not found"
        if not is_valid_interval(ctx.interval):
            return f"unknown interval {ctx.interval!r}"
        if not is_valid_symbol(ctx.symbol):
            return f"invalid symbol {ctx.symbol!r}"
        return None

    async def _next_step(self) -> None:
        assert self._deadline is not None
        try:
            await workflow.wait_condition(
                lambda: (
                    self._pending is not None
                    or self._force_reanalysis
                    or self._abandon_reason is not None
                    or self._limit_changed
                    or workflow.info().is_continue_as_new_suggested()
                ),
                timeout=max(timedelta(0), self._deadline - workflow.now()),
                timeout_summary="max_monitoring_duration",
            )
        except TimeoutError:
            await self._end("expired", "max_monitoring_duration passed with no decision")
        if self._abandon_reason is not None:
            await self._end("expired", f"abandoned by operator: {self._abandon_reason}")
        if self._limit_changed:
            self._limit_changed = False
            if self._limit_reached():
                await self._end("expired", "reanalysis limit reached (lowered by operator)")
        if self._force_reanalysis:
            self._force_reanalysis = False
            # The newest candle without an analysis; else the signal itself if its first failed.
            candle = self._pending or self._retry_candle
            self._pending = None
            if candle is not None or self._retry_initial:
                await self._analyse(candle)
            return
        if self._pending is not None and not self._continue_as_new_first():
            candle, self._pending = self._pending, None
            await self._analyse(candle)
            return
        if workflow.info().is_continue_as_new_suggested():
            await workflow.wait_condition(workflow.all_handlers_finished)
            # The waiting candle, if any, is carried and analysed first by the next run.
            workflow.continue_as_new(SignalMonitorInput(signal_id=self._signal_id, carried=self._carry()))

    @staticmethod
    def _continue_as_new_first() -> bool:
        # The patch marker is only written where it changes the path taken.
        return workflow.info().is_continue_as_new_suggested() and workflow.patched(CONTINUE_AS_NEW_FIRST_PATCH)

    # --- one analysis ----------------------------------------------------------------------------

    async def _analyse(self, candle: Kline | None) -> None:
        ctx = self._context
        assert ctx is not None and self._max_reanalyses is not None
        number = len(self._history)
        candle_t = candle.t if candle else None
        if candle is not None:
            self._take(candle)
        self._analysing = True
        self._status = "analyzing"
        self._set_details()
        try:
            analysis = await workflow.execute_activity_method(
                LlmProxy.analyze_signal,
                AnalyzeSignalInput(
                    context=ctx,
                    analysis_number=number,
                    max_reanalyses=self._max_reanalyses,
                    candle=candle,
                    previous_decisions=[
                        PreviousDecision(
                            decision=d.proxy_decision,
                            confidence=d.confidence,
                            reasoning=d.reasoning,
                            candleOpenTime=d.candle_open_time,
                        )
                        for d in self._history[-5:]
                    ],
                ),
                task_queue=names.llm_task_queue_for(workflow.info().task_queue),
                start_to_close_timeout=timedelta(seconds=90),
                schedule_to_close_timeout=timedelta(minutes=15),
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=ANALYSIS_RETRY,
                summary=f"analysis #{number} · candle {_utc(candle_t)}",
            )
        except ActivityError as err:
            self._analysing = False
            if self._cancelled_activity(err):
                raise
            await self._analysis_failed(candle, err)
            return
        decision = monitor_decision(analysis.decision, analysis.confidence, ctx.min_confidence_to_enter)
        new_status, reason = "monitoring", None
        if decision == "enter":
            new_status, reason = "in_position", f"entered at analysis #{number}"
        elif decision == "abandon":
            new_status, reason = "expired", f"abandoned by the model at analysis #{number}"
        elif number >= self._max_reanalyses:
            new_status, reason = "expired", f"reanalysis limit reached ({self._max_reanalyses})"
        recorded = await self._record(number, candle, analysis, decision, new_status, reason)
        self._analysing = False
        self._consecutive_failures = 0
        self._counts.analysed += 1
        # A success supersedes any earlier failed analysis: only the newest candle matters.
        self._retry_initial = False
        if self._retry_candle is not None and (candle is None or self._retry_candle.t <= candle.t):
            self._retry_candle = None
        self._history.append(
            DecisionRecord(
                analysis_number=number,
                candle_open_time=candle_t,
                proxy_decision=analysis.decision,
                decision=decision,
                confidence=analysis.confidence,
                reasoning=analysis.reasoning[:REASONING_KEPT],
                analysis_id=recorded.analysis_id,
                at=workflow.now(),
            )
        )
        self._order_intent_id = recorded.order_intent_id or self._order_intent_id
        stored = recorded.signal_status
        if decision == "enter" and stored == "in_position":
            await self._start_position(candle)
        if stored in TERMINAL_SIGNAL_STATUSES:
            if stored != new_status and recorded.signal_reason:
                # The signal ended under us (an operator's cancel won the race, the trader was deleted).
                reason = recorded.signal_reason
            raise _Ended(self._make_result(stored, reason or f"signal is {stored}"))
        self._status = "monitoring"
        self._publish()

    async def _record(
        self,
        number: int,
        candle: Kline | None,
        analysis: Analysis,
        decision: str,
        new_status: str,
        reason: str | None,
    ) -> RecordedAnalysis:
        ctx = self._context
        assert ctx is not None
        try:
            return await workflow.execute_activity_method(
                SignalStore.record_analysis,
                RecordAnalysisInput(
                    signal_id=ctx.signal_id,
                    trader_id=ctx.trader_id,
                    user_id=ctx.user_id,
                    symbol=ctx.symbol,
                    analysis_number=number,
                    candle_open_time=candle.open_time() if candle else None,
                    analysis=analysis,
                    monitor_decision=decision,
                    new_status=new_status,
                    reason=reason,
                ),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
                summary=f"record analysis #{number} · candle {_utc(candle.t if candle else None)} · {decision}",
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "SignalNotFound":
                # The signals row was deleted under the monitor: say so, not "Activity task failed".
                raise ApplicationError(
                    f"{cause.message}: deleted while it was monitored", type=cause.type, non_retryable=True
                ) from None
            raise

    async def _start_position(self, candle: Kline | None) -> None:
        """Start `position-<id>` through an activity (the worker's client): the position outlives
        this monitor, and a repeated start is harmless. A start that keeps failing is logged, not
        fatal: the signal is entered either way and the position can be started by hand."""
        if not workflow.patched(START_POSITION_PATCH):
            return
        ctx = self._context
        price = Decimal(candle.c) if candle is not None else (Decimal(str(ctx.price)) if ctx and ctx.price else None)
        try:
            await workflow.execute_activity(
                names.START_POSITION_ACTIVITY,
                StartPositionInput(
                    signal_id=self._signal_id,
                    task_queue=workflow.info().task_queue,
                    entry_price=price if price is not None and price > 0 else None,
                    entry_candle_t=candle.t if candle is not None else None,
                ),
                result_type=StartedPosition,
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=10),
                summary=f"start {names.position_workflow_id_for(self._signal_id)}",
            )
        except ActivityError as err:
            if self._cancelled_activity(err):
                raise
            workflow.logger.warning("signal %s: could not start its position manager: %s", self._signal_id, err.cause)

    async def _analysis_failed(self, candle: Kline | None, err: ActivityError) -> None:
        cause = err.cause
        message = f"{cause.type}: {cause.message}" if isinstance(cause, ApplicationError) else str(cause or err)
        self._consecutive_failures += 1
        self._counts.failed_analyses += 1
        self._failures.append(
            FailedAnalysis(candle_open_time=candle.t if candle else None, error=message[:300], at=workflow.now())
        )
        del self._failures[:-FAILURES_KEPT]
        if candle is None:
            self._retry_initial = True
        else:
            self._retry_candle = candle
        workflow.logger.warning(
            "signal %s: analysis failed after retries (%d in a row): %s",
            self._signal_id,
            self._consecutive_failures,
            message,
        )
        if self._consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
            await self._end("failed", f"{self._consecutive_failures} consecutive analyses failed: {message[:200]}")
        self._status = "monitoring"
        self._publish()

    # --- ends ------------------------------------------------------------------------------------

    async def _end(self, status: str, reason: str) -> None:
        finished = await self._finish_activity(status, reason)
        stored = finished.signal_status
        if stored is not None and stored != status:
            reason = f"signal was already {stored}"
            status = stored
        raise _Ended(self._make_result(status, reason))

    async def _finish_activity(self, status: str, reason: str) -> FinishedSignal:
        return await workflow.execute_activity_method(
            SignalStore.finish_signal,
            FinishSignalInput(signal_id=self._signal_id, status=status, reason=reason),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
            summary=f"mark signal {status}",
        )

    def _make_result(self, status: str, reason: str) -> MonitorResult:
        return MonitorResult(
            signal_id=self._signal_id,
            status=status,
            reason=reason,
            analyses=len(self._history),
            reanalyses=self._reanalyses(),
            last_decision=self._history[-1] if self._history else None,
            order_intent_id=self._order_intent_id,
            counts=self._counts,
        )

    # --- candles ---------------------------------------------------------------------------------

    @workflow.signal(name=names.CANDLE_CLOSED_SIGNAL)
    def candle_closed(self, payload: Any) -> None:
        """Binance's kline object `k`. Never raises: a bad candle is counted and ignored."""
        self._counts.received += 1
        try:
            kline = Kline.model_validate(payload)
        except ValidationError as exc:
            self._counts.malformed += 1
            workflow.logger.warning(
                "signal %s: ignored malformed candle_closed payload: %s",
                self._signal_id,
                "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5]),
            )
            return
        if self._context is None:
            self._early.append(kline)
        else:
            self._classify(kline)

    def _classify(self, k: Kline) -> None:
        ctx = self._context
        assert ctx is not None
        if k.s.upper() != ctx.symbol or k.i != ctx.interval:
            self._counts.foreign += 1
        elif not k.x:
            self._counts.open += 1
        elif self._result is not None:
            self._counts.stale += 1
        elif k.T <= _ms(ctx.signal_time):
            # Closed before the signal was raised: the first analysis already saw it.
            self._counts.stale += 1
        elif k.t in self._recent_t or (self._pending is not None and k.t == self._pending.t):
            self._counts.duplicate += 1
        elif self._last_taken_t is not None and k.t < self._last_taken_t:
            self._counts.stale += 1
            self._remember(k.t)
        elif self._pending is not None and k.t < self._pending.t:
            # Newer than the last analysis but older than what waits: superseded on arrival.
            self._skip(k.t)
            self._remember(k.t)
        else:
            if self._pending is not None:
                self._skip(self._pending.t)
            self._pending = k
            self._remember(k.t)

    def _take(self, k: Kline) -> None:
        if self._last_taken_t is None or k.t > self._last_taken_t:
            self._last_taken_t = k.t
        self._remember(k.t)

    def _remember(self, t: int) -> None:
        if t not in self._recent_t:
            self._recent_t.append(t)
            del self._recent_t[:-RECENT_CANDLES_KEPT]

    def _skip(self, t: int) -> None:
        self._counts.skipped += 1
        self._skipped_t.append(t)
        del self._skipped_t[:-SKIPPED_KEPT]

    # --- operators ------------------------------------------------------------------------------

    @workflow.query(name=names.STATE_QUERY)
    def state(self) -> MonitorState:
        ctx = self._context
        return MonitorState(
            signal_id=self._signal_id,
            status=self._status,
            symbol=ctx.symbol if ctx else None,
            interval=ctx.interval if ctx else None,
            trader_id=ctx.trader_id if ctx else None,
            analyses=len(self._history),
            reanalyses=self._reanalyses(),
            max_reanalyses=self._max_reanalyses,
            counts=self._counts,
            last_decision=self._history[-1] if self._history else None,
            history=self._history,
            failures=self._failures,
            skipped_candles=self._skipped_t,
            pending_candle=self._pending.t if self._pending else None,
            analysing=self._analysing,
            consecutive_failures=self._consecutive_failures,
            deadline=self._deadline,
            end_reason=self._result.reason if self._result else None,
            runs=self._runs,
        )

    def _require_active(self) -> None:
        if self._result is not None:
            raise ApplicationError(f"monitor has ended ({self._result.status})", type="MonitorEnded")
        if self._context is None:
            raise ApplicationError("monitor is still loading its signal; try again", type="MonitorNotReady")

    @workflow.update(name=names.ABANDON_UPDATE)
    async def abandon(self, request: Any) -> MonitorResult:
        """Stop monitoring now: the signal becomes `expired` with the operator's reason."""
        self._abandon_reason = _abandon_reason(request)
        await workflow.wait_condition(lambda: self._result is not None)
        assert self._result is not None
        return self._result

    @abandon.validator
    def _validate_abandon(self, request: Any) -> None:
        self._require_active()
        _abandon_reason(request)
        if self._abandon_reason is not None:
            raise ApplicationError("an abandon is already in progress", type="InvalidRequest")

    @workflow.update(name=names.REANALYZE_UPDATE)
    async def reanalyze(self, request: Any = None) -> MonitorState:
        """Analyse the latest candle that has no analysis yet, now, without waiting for a close."""
        before = self._counts.analysed + self._counts.failed_analyses
        self._force_reanalysis = True
        await workflow.wait_condition(
            lambda: self._result is not None or self._counts.analysed + self._counts.failed_analyses > before
        )
        return self.state()

    @reanalyze.validator
    def _validate_reanalyze(self, request: Any = None) -> None:
        self._require_active()
        if self._analysing or self._force_reanalysis:
            raise ApplicationError("an analysis is already running", type="InvalidRequest")
        if not (self._retry_initial or self._pending is not None or self._retry_candle is not None):
            latest = _utc(self._last_taken_t) if self._last_taken_t is not None else "the signal"
            raise ApplicationError(
                f"nothing to reanalyse: the latest candle ({latest}) is already analysed and the database "
                "keeps one analysis per candle; the next close will be analysed",
                type="InvalidRequest",
            )
        if self._max_reanalyses is not None and self._reanalyses() >= self._max_reanalyses and self._history:
            raise ApplicationError("the reanalysis limit is reached", type="InvalidRequest")

    @workflow.update(name=names.SET_LIMIT_UPDATE)
    def set_limit(self, request: Any) -> MonitorState:
        """Change this signal's reanalysis limit (never below the reanalyses already done)."""
        self._max_reanalyses = _limit_value(request)
        self._limit_changed = True
        self._publish()
        return self.state()

    @set_limit.validator
    def _validate_set_limit(self, request: Any) -> None:
        self._require_active()
        limit = _limit_value(request)
        done = self._reanalyses()
        if limit < done:
            raise ApplicationError(f"limit {limit} is below the {done} reanalyses already done", type="InvalidRequest")

    # --- bookkeeping -----------------------------------------------------------------------------

    def _reanalyses(self) -> int:
        return max(0, len(self._history) - 1)

    def _limit_reached(self) -> bool:
        return (
            bool(self._history)
            and self._max_reanalyses is not None
            and self._history[-1].decision == "continue"
            and self._reanalyses() >= self._max_reanalyses
            and not self._analysing
        )

    def _publish(self) -> None:
        """Search attributes and the UI's current details, upserted only when they changed."""
        ctx = self._context
        if ctx is None:
            return
        updates = []
        current = workflow.info().typed_search_attributes
        wanted = [
            (sa.SIGNAL_SYMBOL, ctx.symbol),
            (sa.SIGNAL_INTERVAL, ctx.interval),
            (sa.TRADER_ID, ctx.trader_id or ""),
            (sa.MONITOR_STATUS, self._status),
            (sa.REANALYSES, self._reanalyses()),
        ]
        for key, value in wanted:
            if current.get(key) != value:
                updates.append(key.value_set(value))
        if updates:
            workflow.upsert_search_attributes(updates)
        self._set_details()

    def _set_details(self) -> None:
        ctx = self._context
        if ctx is None:
            return
        last = self._history[-1] if self._history else None
        lines = [
            f"**{ctx.symbol} {ctx.interval}** · trader {ctx.trader_name or ctx.trader_id}",
            f"status: {self._status} · analyses {len(self._history)} · reanalyses "
            f"{self._reanalyses()}/{self._max_reanalyses}",
        ]
        if last:
            lines.append(
                f"last: #{last.analysis_number} {last.decision} ({last.proxy_decision} {last.confidence:.0f}) "
                f"on candle {_utc(last.candle_open_time)}"
            )
        c = self._counts
        lines.append(
            f"candles: analysed {c.analysed}, duplicate {c.duplicate}, stale {c.stale}, skipped {c.skipped}, "
            f"foreign {c.foreign}, malformed {c.malformed}, failed {c.failed_analyses}"
        )
        workflow.set_current_details("\n\n".join(lines))

    def _carry(self) -> CarriedState:
        assert self._context is not None and self._deadline is not None and self._max_reanalyses is not None
        return CarriedState(
            context=self._context,
            status=self._status,
            deadline=self._deadline,
            max_reanalyses=self._max_reanalyses,
            initial_done=self._initial_done,
            last_taken_t=self._last_taken_t,
            recent_t=self._recent_t,
            pending=self._pending,
            retry_candle=self._retry_candle,
            retry_initial=self._retry_initial,
            consecutive_failures=self._consecutive_failures,
            counts=self._counts,
            history=self._history,
            failures=self._failures,
            skipped_t=self._skipped_t,
            runs=self._runs,
        )


def _abandon_reason(request: Any) -> str:
    reason = request.get("reason") if isinstance(request, dict) else request
    if not isinstance(reason, str) or not reason.strip():
        raise ApplicationError('abandon needs a reason: a non-empty string or {"reason": "..."}', type="InvalidRequest")
    if len(reason) > 500:
        raise ApplicationError("abandon reason is longer than 500 characters", type="InvalidRequest")
    return reason.strip()


def _limit_value(request: Any) -> int:
    value = request.get("limit") if isinstance(request, dict) else request
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApplicationError('set_limit needs a whole number: 7 or {"limit": 7}', type="InvalidRequest")
    if not 0 <= value <= MAX_REANALYSES_CEILING:
        raise ApplicationError(f"limit must be between 0 and {MAX_REANALYSES_CEILING}", type="InvalidRequest")
    return value
