"""PositionManagerWorkflow: one durable workflow per entered signal, id `position-<signal id>`.

It opens the position through the execution backend, then at every accepted close of its symbol and
management interval: deterministic risk checks, the model's `manage-position` decision (validated;
an impossible action is held), the action executed exactly once (idempotency keys), and one
`position_management_decisions` row. It ends on a stop, the last take-profit, a `close` action, an
operator's `close`, or `max_position_duration` (a durable timer); then the signal is `closed`.

Orchestration only: the state is one model (`PositionState`, also the continue-as-new payload),
the logic is pure modules beside it (`steps`, `candle_gate`, `risk`, `actions`, `inputs`, `view`)
and in `workflows/common/`. Activities are called by name: this module imports no I/O."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import NoReturn, cast

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    # `import workflows.a.b as b`, not `from workflows.a import b`: see monitor/workflow.py (a submodule
    # taken by name from the sandbox's copy of the package is imported afresh for every workflow).
    import workflows.common.names as names
    import workflows.common.parsing as parsing
    import workflows.common.patches as patches
    import workflows.common.price_gate as price_gate
    import workflows.common.search_attributes as sa
    import workflows.common.start_input as start_input
    import workflows.position.candle_gate as candle_gate
    import workflows.position.inputs as inputs
    import workflows.position.steps as steps
    import workflows.position.stubs as act
    import workflows.position.view as view
    from workflows.common.activity_calls import failure_text
    from workflows.common.candles import Kline
    from workflows.common.display import candle_span, plain
    from workflows.common.ended import Ended
    from workflows.common.timefmt import datetime_to_ms
    from workflows.monitor.models import MonitorStatus
    from workflows.position.actions import closing_the_rest, leaves_dust, validate_action
    from workflows.position.inputs import CloseRequest, StopLossRequest, TakeProfitRequest
    from workflows.position.models import (
        LoadPositionInput,
        ManageAndRecordInput,
        ManagedPosition,
        ModifyInput,
        OrderInput,
        PositionContext,
        PositionManagerInput,
        PositionResult,
        PositionStatus,
        PositionView,
    )
    from workflows.position.paper import Bar
    from workflows.position.risk import ExitKind, check


@workflow.defn(name=names.POSITION_WORKFLOW_TYPE)
class PositionManagerWorkflow:
    @workflow.init
    def __init__(self, *args: object) -> None:
        # An input the position cannot use fails the workflow in `run`.
        started, self._refused = start_input.started_or_refused(inputs.parse_start, args)
        self._input = started
        self._s = inputs.initial_state(started)
        self._early: list[Kline] = []
        self._close_reason: str | None = None
        self._modifications: list[StopLossRequest | TakeProfitRequest] = []
        self._applied = 0
        self._continuing = False
        self._expired = False
        self._timer: asyncio.Task[None] | None = None
        self._result: PositionResult | None = None

    # --- main loop ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, *args: object) -> PositionResult:
        if self._refused is not None or self._input is None:
            raise self._refused or parsing.reject("no start input")  # touches nothing: no activity, no write
        s = self._s
        try:
            self._result = result = await self._manage(self._input)
        except (asyncio.CancelledError, ActivityError, CancelledError) as err:
            # CancelledError (Temporal's): a cancel that lands in the local record_position_decision.
            if not isinstance(err, asyncio.CancelledError) and not is_cancelled_exception(err):
                raise
            # An operator's cancel stops the management and places no order: the position stays as it is.
            workflow.logger.warning(
                "position of signal %s: cancelled; the position is left as it is (%s, %s open)",
                s.signal_id,
                s.status,
                s.quantity,
            )
            self._set_details(f"cancelled by operator: position left as it is ({s.status}, no order placed)")
            raise
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
        s.status = result.status
        self._publish()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result

    async def _manage(self, input: PositionManagerInput) -> PositionResult:
        try:
            if self._s.context is None:
                await self._load_and_open(input)
            elif steps.is_live(self._s) and workflow.patched(patches.LIVE_RECONCILE_PATCH):
                # A new run of a live position: the exchange may have moved while nobody watched.
                await self._reconcile(f"run{self._s.counts.fills}-{workflow.info().run_id[:8]}", None)
            self._publish()
            # One durable timer per run for max_position_duration (not one per loop turn:
            # two history events saved for every managed close).
            self._timer = asyncio.ensure_future(self._duration_timer())
            for k in self._early:
                self._classify(k)
            self._early.clear()
            while True:
                await self._next_step()
        except Ended as ended:
            return cast(PositionResult, ended.result)

    async def _load_and_open(self, input: PositionManagerInput) -> None:
        s = self._s
        ctx = await act.load_position(LoadPositionInput(signal_id=input.signal_id))
        s.context = ctx
        if ctx.signal_status != MonitorStatus.IN_POSITION:
            s.status = PositionStatus.NOT_OPENED
            raise Ended(steps.result_of(s, f"signal is {ctx.signal_status}, not in_position: nothing to manage"))
        existing = ctx.existing
        # Only where a position row exists at the start: histories of first starts carry no marker.
        if existing is not None and workflow.patched(patches.POSITION_REAL_STATE_PATCH):
            if existing.status != "open" or existing.quantity <= 0:
                # Nothing open: no order, no paid call; the signal ends as its position did.
                closed = await act.close_signal(
                    steps.already_closed_signal(ctx, existing), "close signal · position found closed"
                )
                s.position_id, s.realized_pnl, s.fees_paid = (
                    existing.position_id,
                    existing.realized_pnl,
                    existing.fees_paid,
                )
                s.entry_price, s.exit_price, s.initial_quantity = (
                    existing.entry_price,
                    existing.exit_price,
                    existing.initial_quantity,
                )
                s.trader_paused = bool(closed.trader_paused)
                s.status = PositionStatus.CLOSED
                raise Ended(
                    steps.result_of(s, f"position {existing.position_id} was already closed: nothing to manage")
                )
            steps.adopted(s, ctx, existing, workflow.now())
            workflow.logger.info(
                "position %s taken over from the database: %s %s %s", s.position_id, ctx.side, s.quantity, ctx.symbol
            )
            return
        if input.take_over_only:
            s.status = PositionStatus.NOT_OPENED
            raise Ended(steps.result_of(s, "no position to take over: nothing was opened for this signal"))
        request = steps.open_request(input, ctx)
        if isinstance(request, str):
            await self._end_unopened(request)
        try:
            opened = await act.open_position(request, steps.open_summary(request))
        except ApplicationError as err:
            if err.type != names.INVALID_SIGNAL_DATA:
                raise
            await self._end_unopened(err.message)
        steps.opened(s, ctx, request, opened, steps.entry_candle_t(input, ctx), workflow.now())
        workflow.logger.info(
            "position %s opened: %s %s %s at %s", s.position_id, ctx.side, s.quantity, ctx.symbol, s.entry_price
        )

    async def _end_unopened(self, reason: str) -> NoReturn:
        """An entered signal whose position cannot be opened: the signal becomes `failed` saying why
        (it must not claim a position nobody manages)."""
        ctx = self._ctx()
        self._s.status = PositionStatus.NOT_OPENED
        await act.close_signal(steps.unopened_signal(ctx, reason), "mark signal failed · position not opened")
        raise Ended(steps.result_of(self._s, f"position could not be opened: {reason}"))

    async def _duration_timer(self) -> None:
        deadline = self._s.deadline or workflow.now()
        remaining = deadline - workflow.now()
        if remaining > timedelta(0):
            await workflow.sleep(remaining, summary="max_position_duration")
        self._expired = True

    async def _next_step(self) -> None:
        s = self._s
        await workflow.wait_condition(
            lambda: (
                bool(s.queue or self._modifications)
                or self._close_reason is not None
                or self._expired
                or workflow.info().is_continue_as_new_suggested()
            )
        )
        if self._expired:
            await self._close_at_market("max_position_duration", "duration", "max_position_duration passed")
        if self._close_reason is not None:
            await self._close_at_market("operator", f"operator{s.operator_changes}", self._close_reason)
        while self._modifications:
            await self._apply_modification(self._modifications.pop(0))
        if s.queue and not workflow.info().is_continue_as_new_suggested():
            await self._process(s.queue.pop(0))
            return
        if workflow.info().is_continue_as_new_suggested():
            self._continuing = True
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(PositionManagerInput(signal_id=s.signal_id, state=s))

    # --- one candle ----------------------------------------------------------------------------

    def _ctx(self) -> PositionContext:
        if self._s.context is None:
            # Unreachable after `_load_and_open`; fail the workflow, never the task.
            raise ApplicationError("position has no context", type=names.POSITION_STATE_INVALID, non_retryable=True)
        return self._s.context

    async def _process(self, k: Kline) -> None:
        ctx, s = self._ctx(), self._s
        candle_gate.take(s, k)
        bar = Bar.of(k)
        exchange_stop = False
        if steps.is_live(s) and workflow.patched(patches.LIVE_RECONCILE_PATCH):
            exchange_stop = await self._reconcile(str(k.t), k)
        outcome = check(steps.book(s, ctx.side, exchange_stop), ctx.risk, bar)
        for i, exit in enumerate(outcome.exits):
            closing = outcome.closes_position and i == len(outcome.exits) - 1
            await self._order(steps.exit_order(ctx, s, k, exit, closing))
        risk_exits = steps.risk_checked(s, outcome, bar)
        if end := steps.risk_end(outcome, k):
            await self._record(steps.Decision(k, "close", end[1], risk_exits=risk_exits))
            await self._finish(*end)
        if s.queue:
            # A newer close waits: this one got its risk checks, the model is asked about the newest only.
            s.counts.superseded += 1
            await self._record(
                steps.Decision(k, "hold", "superseded by a newer close: risk checks only", risk_exits=risk_exits)
            )
            return
        reference = s.last_model_price if s.last_model_price is not None else s.entry_price
        why = price_gate.gated(ctx.management_min_move_pct, reference, bar.close)
        if why is not None and workflow.patched(patches.POSITION_PRICE_MOVE_GATE_PATCH):
            # The stop and target checks above ran; only the model is not asked.
            s.counts.gated += 1
            await self._record(steps.Decision(k, "hold", why, risk_exits=risk_exits))
            self._publish()
            return
        managed = await self._ask(k, risk_exits)
        if managed is None:
            return
        answer = managed.answer
        s.last_model_price = bar.close
        action = validate_action(answer.action, answer.action_details, ctx.side, bar.close, s.quantity)
        # Only where a dust remainder arises: histories without one carry no marker.
        if leaves_dust(action, s.quantity, bar.close) and workflow.patched(patches.POSITION_DUST_REMAINDER_PATCH):
            action = closing_the_rest(action, s.quantity, bar.close)
        if action.held_reason:
            s.counts.held_invalid += 1
        step = steps.action_step(ctx, s, k, action)
        if isinstance(step, OrderInput):
            await self._order(step)
        elif step is not None:
            await self._modify(step)
        decision = steps.model_decision(k, answer, action, risk_exits)
        if managed.recorded is None:
            await self._record(decision)
        else:  # a hold, written by the activity that asked
            steps.recorded(s, decision, workflow.now())
        if action.action == "close":
            await self._finish("close_action", f"closed by the model on candle {candle_span(k.t, k.i)}")
        self._publish()

    async def _reconcile(self, part: str, k: Kline | None) -> bool:
        """A live position against its exchange: an exit the exchange made (its resting stop
        filled while nobody watched) or an end it forced is booked and ends the position. Returns
        whether the stop rests on the exchange (then it, not the candle, decides the stop)."""
        ctx, s = self._ctx(), self._s
        found = await act.reconcile_position(steps.reconcile_request(s, part), "reconcile with the exchange")
        if found.fill is not None:
            steps.filled(s, steps.exchange_exit(ctx, s, found.fill, part), found.fill)
            reason = f"{found.fill.kind} filled on the exchange at {plain(found.fill.price)}"
        elif found.ended is not None:
            s.quantity = Decimal(0)
            reason = found.ended
        else:
            return found.protected
        code = found.fill.kind if found.fill is not None else "exchange"
        if k is not None:
            await self._record(steps.Decision(k, "close", reason))
        await self._finish(code, reason)

    async def _ask(self, k: Kline, risk_exits: list[ExitKind]) -> ManagedPosition | None:
        ctx, s = self._ctx(), self._s
        request, summary = steps.manage_request(ctx, s, k), f"manage-position · candle {candle_span(k.t, k.i)}"
        try:
            if workflow.patched(patches.POSITION_HOLD_RECORDED_BY_CALL_PATCH):
                return await act.manage_and_record_position(
                    ManageAndRecordInput(request=request, risk_exits=risk_exits), summary
                )
            return ManagedPosition(answer=await act.manage_position(request, summary))
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            message = failure_text(err)
            s.counts.llm_failures += 1
            workflow.logger.warning("position of signal %s: manage-position failed: %s", s.signal_id, message)
            await self._record(
                steps.Decision(k, "hold", f"manage-position failed after retries, held: {message[:300]}")
            )
            self._publish()
            return None

    async def _order(self, request: OrderInput) -> None:
        fill = await act.fill_order(request, steps.order_summary(request))
        steps.filled(self._s, request, fill)

    async def _modify(self, request: ModifyInput) -> None:
        # The resting target is an activity input only: history's commands stay as they were.
        request = steps.with_exchange_target(self._ctx(), request)
        await act.modify_position(request, steps.modify_summary(request))
        steps.modified(self._s, request)

    async def _record(self, decision: steps.Decision) -> None:
        request = steps.record_request(self._ctx(), self._s, decision)
        local = workflow.patched(patches.POSITION_LOCAL_RECORD_PATCH)
        await act.record_decision(request, steps.record_summary(decision), local)
        # A candle counts as processed once its decision row is written.
        steps.recorded(self._s, decision, workflow.now())

    # --- ends ----------------------------------------------------------------------------------

    async def _close_at_market(self, code: str, key_part: str, reason: str) -> NoReturn:
        order, end_reason = steps.market_close(self._ctx(), self._s, code, key_part, reason)
        await self._order(order)
        await self._finish(code, end_reason)

    async def _finish(self, code: str, reason: str) -> NoReturn:
        ctx, s = self._ctx(), self._s
        steps.closing(s, code, workflow.now())
        closed = await act.close_signal(
            steps.closed_signal(ctx, s, code, reason), f"mark signal closed · {code} · P&L {s.realized_pnl}"
        )
        s.trader_paused = closed.trader_paused
        workflow.logger.info(
            "position %s closed (%s): exit %s, realized P&L %s", s.position_id, code, s.exit_price, s.realized_pnl
        )
        raise Ended(steps.result_of(s, f"{code}: {reason}"))

    # --- candles -------------------------------------------------------------------------------

    @workflow.signal(name=names.CANDLE_CLOSED_SIGNAL)
    def candle_closed(self, *payload: object) -> None:
        """Binance's kline object `k`, through the monitor's candle gate. Takes any number of
        inputs and never raises: anything but one plausible kline is counted and ignored."""
        now_ms = datetime_to_ms(workflow.now())
        self._warn(candle_gate.receive(self._s, self._early, payload, now_ms, self._refuse_future))

    def _classify(self, k: Kline) -> None:
        self._warn(candle_gate.file(self._s, self._ctx(), k, datetime_to_ms(workflow.now()), self._refuse_future))

    def _warn(self, note: str | None) -> None:
        if note:
            workflow.logger.warning("position of signal %s: %s", self._s.signal_id, note)

    @staticmethod
    def _refuse_future() -> bool:
        # The patch check is asked only where a close from the future arrives.
        return workflow.patched(patches.POSITION_FUTURE_CANDLES_PATCH)

    # --- operators -------------------------------------------------------------------------------

    def _require_open(self) -> None:
        inputs.require_open(
            self._s, ended=self._result is not None, closing=self._close_reason is not None, continuing=self._continuing
        )

    # The handlers take the raw input, so that a missing or junk one is refused by the validator
    # with a message saying what is expected (never a decoding error, never in history).

    @workflow.update(name=names.CLOSE_UPDATE)
    async def close(self, request: object = None) -> PositionResult:
        """Close the whole position at the last close price (with slippage), with the operator's
        reason: a `CloseRequest` (`{"reason": "..."}`) or the reason as a bare string."""
        self._s.operator_changes += 1
        self._close_reason = parsing.parse(CloseRequest, request).reason
        await workflow.wait_condition(lambda: self._result is not None)
        return self._result or steps.result_of(self._s, "closed")

    @close.validator
    def _validate_close(self, request: object = None) -> None:
        self._require_open()
        parsing.parse(CloseRequest, request)

    @workflow.update(name=names.SET_STOP_LOSS_UPDATE)
    async def set_stop_loss(self, request: object = None) -> PositionView:
        """A `StopLossRequest` (`{"stop_loss": 96.5}`) or the bare price."""
        return await self._modification(parsing.parse(StopLossRequest, request))

    @set_stop_loss.validator
    def _validate_stop_loss(self, request: object = None) -> None:
        self._require_open()
        inputs.check_stop_loss(request, self._ctx().side, self._s.last_price)

    @workflow.update(name=names.SET_TAKE_PROFIT_UPDATE)
    async def set_take_profit(self, request: object = None) -> PositionView:
        """A `TakeProfitRequest` (`{"take_profit": [110, 120]}`) or the bare list."""
        return await self._modification(parsing.parse(TakeProfitRequest, request))

    @set_take_profit.validator
    def _validate_take_profit(self, request: object = None) -> None:
        self._require_open()
        inputs.check_take_profit(request, self._ctx().side, self._s.last_price)

    async def _modification(self, request: StopLossRequest | TakeProfitRequest) -> PositionView:
        self._s.operator_changes += 1
        target = self._applied + len(self._modifications) + 1
        self._modifications.append(request)
        await workflow.wait_condition(lambda: self._applied >= target or self._result is not None)
        return self.state()

    async def _apply_modification(self, request: StopLossRequest | TakeProfitRequest) -> None:
        await self._modify(steps.operator_change(self._s, self._ctx().side, request, self._applied))
        self._applied += 1
        self._publish()

    @workflow.query(name=names.STATE_QUERY)
    def state(self, *_ignored: object) -> PositionView:
        return view.state_view(self._s)

    # --- bookkeeping -----------------------------------------------------------------------------

    def _publish(self) -> None:
        """Search attributes (upserted only when they changed) and the UI's current details."""
        s, ctx = self._s, self._s.context
        if ctx is None:
            return
        current = workflow.info().typed_search_attributes
        updates = sa.position_changed(current, ctx.symbol, ctx.interval, ctx.trader_id or "", str(s.status))
        if updates:
            workflow.upsert_search_attributes(updates)
        self._set_details()

    def _set_details(self, note: str | None = None) -> None:
        if (text := view.details_text(self._s, note)) is not None:
            workflow.set_current_details(text)
