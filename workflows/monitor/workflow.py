"""SignalMonitorWorkflow: one long-lived workflow per monitored signal.

Orchestration only: the state is one model (`MonitorState`, also the continue-as-new payload),
the decisions are pure modules beside it (`steps`, `candle_gate`, `outcomes`, `decisions`, `view`,
`inputs`) and in `workflows/common/`.
Signal handlers only validate, classify and enqueue; one main loop runs the analyses, so every
candle is analysed at most once and the de-duplication state is durable workflow state.
Activities are called by name: this module imports no I/O."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import NoReturn, cast

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    # `import workflows.a.b as b`, not `from workflows.a import b`: the sandbox holds its own copy of
    # the `workflows` package (this module's ancestor), and a submodule taken from it by name is
    # imported afresh for every new workflow instead of passed through (py-spy: ~9 % of a worker
    # starting monitors went into re-running these modules).
    import workflows.common.activity_calls as calls
    import workflows.common.names as names
    import workflows.common.parsing as parsing
    import workflows.common.patches as patches
    import workflows.common.price_gate as price_gate
    import workflows.common.search_attributes as sa
    import workflows.common.start_input as start_input
    import workflows.monitor.candle_gate as candle_gate
    import workflows.monitor.inputs as inputs
    import workflows.monitor.outcomes as outcomes
    import workflows.monitor.steps as steps
    import workflows.monitor.stubs as act
    import workflows.monitor.view as view
    from workflows.common.candles import Kline
    from workflows.common.display import candle_span
    from workflows.common.ended import Ended
    from workflows.common.timefmt import datetime_to_ms
    from workflows.monitor.models import (
        TERMINAL_SIGNAL_STATUSES,
        Analysis,
        FindPlatformAnalysisInput,
        FinishedSignal,
        FinishSignalInput,
        LoadSignalInput,
        MonitorResult,
        MonitorState,
        MonitorStatus,
        MonitorView,
        RecordAnalysisInput,
        RecordedAnalysis,
        SignalContext,
        SignalMonitorInput,
    )
    from workflows.monitor.outcomes import End


@workflow.defn(name=names.WORKFLOW_TYPE)
class SignalMonitorWorkflow:
    @workflow.init
    def __init__(self, *args: object) -> None:
        # An input the monitor cannot use fails the workflow in `run` (`-`: that run touches nothing).
        parsed, self._refused = start_input.started_or_refused(inputs.parse_start, args)
        started = parsed or SignalMonitorInput(signal_id="-")
        self._signal_id = started.signal_id
        self._s = started.carried or MonitorState(runs=0)
        self._s.runs += 1
        # One durable max_monitoring_duration timer per run (patches.ONE_DEADLINE_TIMER_PATCH).
        self._deadline_timer: asyncio.Task[None] | None = None
        self._deadline_passed = False
        self._details = ""

    # --- the main loop -------------------------------------------------------------------------

    @workflow.run
    async def run(self, *args: object) -> MonitorResult:
        if self._refused is not None:
            raise self._refused  # touches nothing: no activity, no write
        s = self._s
        try:
            result = await self._monitor()
        except (asyncio.CancelledError, ActivityError, CancelledError) as err:
            # CancelledError (Temporal's): a cancel that lands in the local record_analysis.
            if not isinstance(err, asyncio.CancelledError) and not self._cancelled_activity(err):
                raise
            # Clean-up survives the cancellation: activities scheduled after it run normally.
            finished = await self._finish_activity(outcomes.cancelled())
            if finished.signal_status in (MonitorStatus.CANCELLED, None):
                s.status = MonitorStatus.CANCELLED
                self._publish()
                raise
            # The signal had already ended (e.g. an `enter` recorded a moment before): report that.
            result = self._make_result(finished.signal_status, "ended before the cancellation")
        s.result, s.status = result, MonitorStatus.of(result.status, s.status)
        self._publish()
        # Updates waiting on the end see the result before the run completes.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result

    async def _monitor(self) -> MonitorResult:
        s = self._s
        try:
            if s.context is None:
                await self._load()
            self._publish()
            ctx, _, _ = self._loaded()
            for kline in s.early:
                self._classify(kline, ctx)
            s.early.clear()
            if not s.initial_done:
                s.initial_done = True
                await self._initial_analysis(ctx)
            while True:
                await self._next_step()
        except Ended as ended:
            return cast(MonitorResult, ended.result)

    @staticmethod
    def _cancelled_activity(err: BaseException) -> bool:
        # Only a cancel of this workflow cancels its activities (nothing else requests it).
        return is_cancelled_exception(err) and workflow.patched(patches.CANCEL_DURING_ACTIVITY_PATCH)

    def _loaded(self) -> tuple[SignalContext, datetime, int]:
        """The one narrowing of the loaded state: set together by `_load` (or carried together)."""
        s = self._s
        if s.context is None or s.deadline is None or s.max_reanalyses is None:
            # Unreachable after `_load`; fail the workflow, never the task.
            raise ApplicationError("monitor state has no loaded signal", type="MonitorStateInvalid", non_retryable=True)
        return s.context, s.deadline, s.max_reanalyses

    async def _load(self) -> None:
        try:
            ctx = await act.load_signal(LoadSignalInput(signal_id=self._signal_id))
        except ActivityError as err:
            if failure := calls.refusal(err, names.SIGNAL_NOT_FOUND, names.INVALID_SIGNAL_ID):
                raise failure from None
            if cause := calls.cause_of(err, names.INVALID_SIGNAL_DATA, names.PERMANENT_DATABASE_ERROR):
                await self._end(outcomes.invalid(cause.message))
            raise
        workflow.logger.info(
            "monitoring signal %s: %s %s, trader %s", ctx.signal_id, ctx.symbol, ctx.interval, ctx.trader_id
        )
        end = steps.loaded(self._s, ctx, workflow.now())
        if isinstance(end, End):
            await self._end(end)
        if end is not None:  # started again for a signal that already ended: report, change nothing
            raise Ended(self._make_result(*end))

    async def _next_step(self) -> None:
        s = self._s
        _, deadline, _ = self._loaded()
        if workflow.patched(patches.ONE_DEADLINE_TIMER_PATCH):
            if self._deadline_timer is None:
                self._deadline_timer = asyncio.ensure_future(self._deadline(deadline))
            await workflow.wait_condition(
                lambda: self._deadline_passed or steps.has_work(s) or workflow.info().is_continue_as_new_suggested()
            )
            if self._deadline_passed:
                await self._end(outcomes.deadline_passed(before_start=False))
        else:
            try:
                # Before the patch: a timer per loop turn, cancelled and restarted for every candle.
                await workflow.wait_condition(
                    lambda: steps.has_work(s) or workflow.info().is_continue_as_new_suggested(),
                    timeout=max(timedelta(0), deadline - workflow.now()),
                    timeout_summary="max_monitoring_duration",
                )
            except TimeoutError:
                await self._end(outcomes.deadline_passed(before_start=False))
        forced = s.force_reanalysis  # an operator's reanalysis is never gated
        step = steps.next_step(s, self._continue_as_new_first)
        if isinstance(step, End):
            await self._end(step)
        if isinstance(step, steps.Analyse):
            if step.candle is not None and not forced and self._gated(step.candle):
                return
            await self._analyse(step.candle)
        elif step == "continue" and workflow.info().is_continue_as_new_suggested():
            await workflow.wait_condition(workflow.all_handlers_finished)
            # The waiting candle, if any, is carried and analysed first by the next run.
            workflow.continue_as_new(SignalMonitorInput(signal_id=self._signal_id, carried=s))

    async def _deadline(self, deadline: datetime) -> None:
        """The run's one durable timer for max_monitoring_duration: started once, never cancelled
        (a run that ends or continues as new leaves it; the next run starts its own)."""
        remaining = deadline - workflow.now()
        if remaining > timedelta(0):
            await workflow.sleep(remaining, summary="max_monitoring_duration")
        self._deadline_passed = True

    @staticmethod
    def _continue_as_new_first() -> bool:
        # The patch marker is only written where it changes the path taken.
        return workflow.info().is_continue_as_new_suggested() and workflow.patched(patches.CONTINUE_AS_NEW_FIRST_PATCH)

    # --- one analysis ----------------------------------------------------------------------------

    async def _initial_analysis(self, ctx: SignalContext) -> None:
        """Analysis #0: the platform's own (trigger 028) where it runs one for this signal, taken
        through the same decide-and-record path as the monitor's; else the monitor's own call."""
        if ctx.initial_analysis != "platform" or not workflow.patched(patches.PLATFORM_INITIAL_ANALYSIS_PATCH):
            await self._analyse(None)
            return
        s = self._s
        grace_end, looks = outcomes.platform_grace_end(ctx), 0
        look = FindPlatformAnalysisInput(signal_id=self._signal_id)
        found = await act.find_platform_analysis(look)
        while (
            found is None
            and s.abandon_reason is None
            and (wait := outcomes.platform_wait(grace_end, workflow.now(), looks)) is not None
        ):
            try:
                # Durable, and an operator's abandon (or cancel) ends the wait at once.
                await workflow.wait_condition(
                    lambda: s.abandon_reason is not None, timeout=wait, timeout_summary="platform's initial analysis"
                )
            except TimeoutError:
                looks += 1
                found = await act.find_platform_analysis(look)
        if s.abandon_reason is not None:
            return  # the main loop ends the monitor as the operator asked
        if found is None:
            workflow.logger.info("signal %s: no platform analysis by the grace; analysing it here", self._signal_id)
        await self._analyse(None, given=found)

    def _gated(self, candle: Kline) -> bool:
        """The price-move gate: a close that moved less than the trader's min_price_move_pct since
        the last analysed close is taken (the de-duplication point moves), counted `gated` and not
        analysed: no call, no reanalysis used. The deadline timer and the limit are untouched."""
        s, ctx = self._s, self._loaded()[0]
        reference = s.history[-1].price if s.history else None
        why = price_gate.gated(ctx.min_price_move_pct, reference, candle.c)
        if why is None or not workflow.patched(patches.PRICE_MOVE_GATE_PATCH):
            return False
        candle_gate.take(s, candle)
        s.counts.gated += 1
        workflow.logger.info("signal %s: candle %s %s", self._signal_id, candle_span(candle.t, candle.i), why)
        self._publish()
        return True

    async def _analyse(self, candle: Kline | None, given: Analysis | None = None) -> None:
        s = self._s
        ctx, _, limit = self._loaded()
        number = len(s.history)
        if candle is not None:
            candle_gate.take(s, candle)
        s.analysing, s.status = True, MonitorStatus.ANALYZING
        self._set_details()
        recorded: RecordedAnalysis | None = None
        try:
            request = steps.analysis_request(s, ctx, number, limit, candle)
            summary = f"analysis #{number} · candle {candle_span(candle.t, candle.i) if candle else 'signal'}"
            if given is not None:  # the platform's own initial analysis, taken as this analysis's answer
                analysis = given
            elif workflow.patched(patches.ANALYSIS_RECORDS_ITS_ROW_PATCH):
                analyzed = await act.analyze_and_record_signal(request, summary)
                analysis, recorded = analyzed.analysis, analyzed.recorded
            else:
                analysis = await act.analyze_signal(request, summary)
        except ActivityError as err:
            s.analysing = False
            if self._cancelled_activity(err):
                raise
            await self._analysis_failed(candle, err)
            return
        decision, outcome, record = steps.answered(request, analysis)
        if recorded is None:  # not written by the analysis activity: the answer is in history now
            recorded = await self._record(record, candle)
        steps.analysed(s, ctx, number, candle, analysis, decision, recorded, workflow.now())
        stored = recorded.signal_status
        if decision == "enter" and stored == MonitorStatus.IN_POSITION:
            await self._start_position(ctx, candle)
        if stored in TERMINAL_SIGNAL_STATUSES:
            raise Ended(self._make_result(*outcomes.recorded_end(stored, outcome, recorded.signal_reason)))
        s.status = MonitorStatus.MONITORING
        self._publish()

    async def _record(self, request: RecordAnalysisInput, candle: Kline | None) -> RecordedAnalysis:
        on = candle_span(candle.t, candle.i) if candle else "signal"
        summary = f"record analysis #{request.analysis_number} · candle {on} · {request.monitor_decision}"
        try:
            return await act.record_analysis(request, summary, local=workflow.patched(patches.LOCAL_RECORD_PATCH))
        except (ActivityError, ApplicationError) as err:
            # The signals row was deleted under the monitor: say so.
            if failure := calls.refusal(err, names.SIGNAL_NOT_FOUND, wording="{}: deleted while it was monitored"):
                raise failure from None
            if cause := calls.cause_of(err, names.PERMANENT_DATABASE_ERROR):
                self._s.analysing = False
                await self._end(outcomes.invalid(cause.message))
            raise

    async def _start_position(self, ctx: SignalContext, candle: Kline | None) -> None:
        """Start `position-<id>` through an activity (the worker's client): the position outlives
        this monitor, and a repeated start is harmless. A start that keeps failing is logged, not
        fatal: the signal is entered either way and the position can be started by hand."""
        if not workflow.patched(patches.START_POSITION_PATCH):
            return
        try:
            await act.start_position_manager(
                steps.position_start(self._signal_id, ctx, candle, workflow.info().task_queue)
            )
        except ActivityError as err:
            if self._cancelled_activity(err):
                raise
            workflow.logger.warning("signal %s: could not start its position manager: %s", self._signal_id, err.cause)

    async def _analysis_failed(self, candle: Kline | None, err: ActivityError) -> None:
        s = self._s
        message = calls.failure_text(err)
        end = steps.analysis_failed(s, candle, message, workflow.now())
        failures = s.consecutive_failures
        workflow.logger.warning(
            "signal %s: analysis failed after retries (%d in a row): %s", self._signal_id, failures, message
        )
        if end is not None:
            await self._end(end)
        s.status = MonitorStatus.MONITORING
        self._publish()

    # --- ends ------------------------------------------------------------------------------------

    async def _end(self, end: End) -> NoReturn:
        finished = await self._finish_activity(end)
        raise Ended(self._make_result(*outcomes.as_stored(end, finished.signal_status)))

    async def _finish_activity(self, end: End) -> FinishedSignal:
        request = FinishSignalInput(signal_id=self._signal_id, status=end.status, reason=end.reason)
        try:
            return await act.finish_signal(request)
        except ActivityError as err:
            # The end cannot be written: the workflow fails saying why (the sweep reconciles the row).
            if failure := calls.refusal(err, names.PERMANENT_DATABASE_ERROR):
                raise failure from None
            raise

    def _make_result(self, status: str, reason: str) -> MonitorResult:
        return steps.result_of(self._signal_id, self._s, status, reason, workflow.now())

    # --- candles ---------------------------------------------------------------------------------

    @workflow.signal(name=names.CANDLE_CLOSED_SIGNAL)
    def candle_closed(self, *payload: object) -> None:
        """Binance's kline object `k`. Takes any number of inputs and never raises: anything but
        one plausible kline is counted and ignored."""
        self._warn(candle_gate.receive(self._s, payload, datetime_to_ms(workflow.now()), self._refuse_future))

    def _classify(self, k: Kline, ctx: SignalContext) -> None:
        self._warn(candle_gate.file(self._s, ctx, k, datetime_to_ms(workflow.now()), self._refuse_future))

    def _warn(self, note: str | None) -> None:
        if note:
            workflow.logger.warning("signal %s: %s", self._signal_id, note)

    @staticmethod
    def _refuse_future() -> bool:
        return workflow.patched(patches.FUTURE_CANDLES_PATCH)

    # --- operators ------------------------------------------------------------------------------

    @workflow.query(name=names.STATE_QUERY)
    def state(self, *_ignored: object) -> MonitorView:
        return view.state_view(self._signal_id, self._s)

    @workflow.update(name=names.ABANDON_UPDATE)
    async def abandon(self, request: object = None) -> MonitorResult:
        """Stop monitoring now: the signal becomes `expired` with the operator's reason. Input: an
        `AbandonRequest` (`{"reason": "..."}`) or the reason as a bare string."""
        self._s.abandon_reason = parsing.parse(inputs.AbandonRequest, request).reason
        await workflow.wait_condition(lambda: self._s.result is not None)
        if (result := self._s.result) is None:  # unreachable: the condition above
            raise parsing.reject("monitor ended without a result")
        return result

    @abandon.validator
    def _validate_abandon(self, request: object = None) -> None:
        inputs.check_abandon(self._s, request)

    @workflow.update(name=names.REANALYZE_UPDATE)
    async def reanalyze(self, request: object = None) -> MonitorView:
        """Analyse the latest candle that has no analysis yet, now, without waiting for a close."""
        s = self._s
        before = steps.analyses_done(s)
        s.force_reanalysis = True
        await workflow.wait_condition(lambda: s.result is not None or steps.analyses_done(s) > before)
        return self.state()

    @reanalyze.validator
    def _validate_reanalyze(self, request: object = None) -> None:
        inputs.check_reanalyze(self._s, request)

    @workflow.update(name=names.SET_LIMIT_UPDATE)
    def set_limit(self, request: object = None) -> MonitorView:
        """Change this signal's reanalysis limit (never below the reanalyses already done). Input:
        a `SetLimitRequest` (`{"limit": 7}`) or the bare number."""
        self._s.max_reanalyses = parsing.parse(inputs.SetLimitRequest, request).limit
        self._s.limit_changed = True
        self._publish()
        return self.state()

    @set_limit.validator
    def _validate_set_limit(self, request: object = None) -> None:
        inputs.check_set_limit(self._s, request)

    # --- bookkeeping -----------------------------------------------------------------------------

    def _publish(self) -> None:
        """Search attributes and the UI's current details, upserted only when they changed."""
        s, ctx = self._s, self._s.context
        if ctx is None:
            return
        current = workflow.info().typed_search_attributes
        updates = sa.monitor_changed(
            current, ctx.symbol, ctx.interval, ctx.trader_id or "", s.status.value, s.reanalyses
        )
        if updates:
            workflow.upsert_search_attributes(updates)
        self._set_details()

    def _set_details(self) -> None:
        if self._s.context is not None:
            text = view.details_text(self._s, self._s.context)
            if text != self._details:
                self._details = text
                workflow.set_current_details(text)
