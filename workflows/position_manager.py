"""PositionManagerWorkflow: one durable workflow per entered signal, id `position-<signal id>`.

It opens the position through the execution backend, then at every accepted close of its symbol and
management interval: deterministic risk checks, the model's `manage-position` decision (validated;
an impossible action is held), the action executed exactly once (idempotency keys), and one
`position_management_decisions` row. It ends on a stop, the last take-profit, a `close` action, an
operator's `close`, or `max_position_duration` (a durable timer); then the signal is `closed`.
Activities are called by name: this module imports no I/O."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from workflows import candle_gate, inputs, names, position_candles
    from workflows import position_stubs as act
    from workflows import search_attributes as sa
    from workflows.activity_stubs import cause_of
    from workflows.candle_gate import Verdict
    from workflows.candles import Kline, datetime_to_ms, is_valid_interval, is_valid_symbol
    from workflows.models import MonitorStatus
    from workflows.paper import Bar, gross_pnl, pnl_pct
    from workflows.patches import POSITION_FUTURE_CANDLES_PATCH, POSITION_LOCAL_RECORD_PATCH
    from workflows.position_actions import ManageAction, ValidatedAction, validate_action
    from workflows.position_models import (
        CloseRequest,
        CloseSignalInput,
        Fill,
        LoadPositionInput,
        ManagementAnswer,
        ManagementRecord,
        ManagePositionInput,
        ModifyInput,
        OpenedPosition,
        OpenPositionInput,
        OrderInput,
        OrderKind,
        PositionContext,
        PositionManagerInput,
        PositionResult,
        PositionState,
        PositionStatus,
        PositionView,
        PreviousManagement,
        RecordDecisionInput,
        StopLossRequest,
        TakeProfitRequest,
    )
    from workflows.position_risk import Book, Exit, ExitKind, check, usable_levels
    from workflows.timefmt import utc_text

DECISIONS_KEPT = 20
RECENT_KEPT = 64
QUEUE_MAX = 500
REASONING_KEPT = 500


class _Ended(Exception):
    def __init__(self, result: PositionResult):
        self.result = result


def _parse_start(args: tuple[object, ...], workflow_id: str) -> PositionManagerInput:
    return inputs.parse_start_of(
        PositionManagerInput,
        names.POSITION_WORKFLOW_TYPE,
        args,
        workflow_id,
        lambda started: names.position_workflow_id_for(started.signal_id),
    )


@workflow.defn(name=names.POSITION_WORKFLOW_TYPE)
class PositionManagerWorkflow:
    @workflow.init
    def __init__(self, *args: object) -> None:
        # The raw input is validated here, not by the data converter: an input the position cannot
        # use must fail the workflow (in `run`), never its task over and over.
        self._refused: ApplicationError | None = None
        try:
            started = _parse_start(args, workflow.info().workflow_id)
        except ApplicationError as err:
            self._refused, started = err, None
        self._input = started
        state = started.state if started else None
        self._s: PositionState = state or PositionState(signal_id=started.signal_id if started else "-")
        if state is not None:
            self._s.runs += 1
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
            raise self._refused or inputs.reject("no start input")  # touches nothing: no activity, no write
        try:
            try:
                if self._s.context is None:
                    await self._load_and_open(self._input)
                self._publish()
                # One durable timer per run for max_position_duration (not one per loop turn:
                # two history events saved for every managed close).
                self._timer = asyncio.ensure_future(self._duration_timer())
                for k in self._early:
                    self._classify(k)
                self._early.clear()
                while True:
                    await self._next_step()
            except _Ended as ended:
                self._result = ended.result
        except (asyncio.CancelledError, ActivityError, CancelledError) as err:
            # CancelledError (Temporal's): a cancel that lands in the local record_position_decision.
            if not isinstance(err, asyncio.CancelledError) and not is_cancelled_exception(err):
                raise
            # An operator's cancel stops the management and places no order: the position stays as it is.
            workflow.logger.warning(
                "position of signal %s: cancelled; the position is left as it is (%s, %s open)",
                self._s.signal_id,
                self._s.status,
                self._s.quantity,
            )
            self._set_details(f"cancelled by operator: position left as it is ({self._s.status}, no order placed)")
            raise
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
        result = self._result
        if result is None:  # unreachable: the main loop only ends by `_Ended`
            raise ApplicationError("position ended without a result", type=names.POSITION_STATE_INVALID)
        self._s.status = result.status
        self._publish()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result

    async def _load_and_open(self, input: PositionManagerInput) -> None:
        ctx = await act.load_position(LoadPositionInput(signal_id=input.signal_id))
        self._s.context = ctx
        if ctx.signal_status != MonitorStatus.IN_POSITION:
            self._s.status = PositionStatus.NOT_OPENED
            raise _Ended(self._make_result(f"signal is {ctx.signal_status}, not in_position: nothing to manage"))
        problem = self._not_openable(ctx)
        reference = input.entry_price or ctx.reference_price
        if problem is None and reference is None:
            problem = "no entry price: neither the deciding close, the order intent nor the signal has one"
        if problem is not None or reference is None or ctx.user_id is None:
            await self._end_unopened(problem or "no entry price or owner")
        entry_t = input.entry_candle_t if input.entry_candle_t is not None else ctx.decided_candle_t
        stop, targets = usable_levels(ctx.side, reference, ctx.stop_loss, ctx.take_profits)
        try:
            opened = await act.open_position(
                OpenPositionInput(
                    key=f"{ctx.signal_id}:{entry_t if entry_t is not None else 'signal'}:open",
                    signal_id=ctx.signal_id,
                    trader_id=ctx.trader_id,
                    user_id=ctx.user_id,
                    symbol=ctx.symbol,
                    side=ctx.side,
                    reference_price=reference,
                    stake=ctx.paper_stake,
                    stop_loss=stop,
                    take_profits=targets,
                ),
                f"open {ctx.side} {ctx.symbol} at {reference} (paper)",
            )
        except ApplicationError as err:
            if err.type != names.INVALID_SIGNAL_DATA:
                raise
            await self._end_unopened(err.message)
        self._opened(ctx, opened, entry_t, stop, targets)

    def _opened(
        self,
        ctx: PositionContext,
        opened: OpenedPosition,
        entry_t: int | None,
        stop: Decimal | None,
        targets: list[Decimal],
    ) -> None:
        s = self._s
        s.position_id = opened.position_id
        s.entry_price = opened.fill.price
        s.initial_quantity = s.quantity = opened.fill.quantity
        s.fees_paid = opened.fill.fee
        s.realized_pnl = opened.fill.realized_pnl
        s.stop_loss, s.take_profits = stop, targets
        s.best_price = s.last_price = opened.fill.price
        s.opened_at = workflow.now()
        s.deadline = s.opened_at + timedelta(seconds=ctx.max_position_seconds)
        s.after_t = entry_t
        s.counts.fills += 1
        s.status = PositionStatus.OPEN
        workflow.logger.info(
            "position %s opened: %s %s %s at %s", s.position_id, ctx.side, s.quantity, ctx.symbol, s.entry_price
        )

    @staticmethod
    def _not_openable(ctx: PositionContext) -> str | None:
        if not ctx.trader_found or ctx.user_id is None:
            return f"trader {ctx.trader_id} not found"
        if not is_valid_symbol(ctx.symbol):
            return f"invalid symbol {ctx.symbol!r}"
        if not is_valid_interval(ctx.interval):
            return f"unknown management interval {ctx.interval!r}"
        return None

    async def _end_unopened(self, reason: str) -> NoReturn:
        """An entered signal whose position cannot be opened: the signal becomes `failed` saying why
        (it must not claim a position nobody manages)."""
        ctx = self._ctx()
        self._s.status = PositionStatus.NOT_OPENED
        await act.close_signal(
            CloseSignalInput(
                signal_id=ctx.signal_id,
                trader_id=ctx.trader_id,
                reason=f"position could not be opened: {reason}"[:500],
                realized_pnl=Decimal(0),
                max_consecutive_losses=None,
                status="failed",
            ),
            "mark signal failed · position not opened",
        )
        raise _Ended(self._make_result(f"position could not be opened: {reason}"))

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
                bool(s.queue)
                or self._close_reason is not None
                or bool(self._modifications)
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

    def _book(self) -> Book:
        s = self._s
        entry = s.entry_price or Decimal(0)
        return Book(
            side=self._ctx().side,
            entry_price=entry,
            initial_quantity=s.initial_quantity,
            quantity=s.quantity,
            stop_loss=s.stop_loss,
            take_profits=s.take_profits,
            targets_hit=s.targets_hit,
            best_price=s.best_price or entry,
        )

    async def _process(self, k: Kline) -> None:
        ctx, s = self._ctx(), self._s
        self._take(k)
        bar = Bar.of(k)
        outcome = check(self._book(), ctx.risk, bar)
        for i, exit in enumerate(outcome.exits):
            closing = outcome.closes_position and i == len(outcome.exits) - 1
            await self._exit(k, exit, closing)
        s.targets_hit, s.best_price, s.last_price = outcome.targets_hit, outcome.best_price, bar.close
        risk_exits = [e.kind for e in outcome.exits]
        if outcome.closes_position and outcome.exits:
            last = outcome.exits[-1]
            why = f"{last.kind} reached at {last.price} on candle {utc_text(k.t)}"
            await self._record(k, "close", None, why, risk_exits, None)
            await self._finish(last.kind, why)
        if s.queue:
            # A newer close waits: this one got its risk checks, the model is asked about the newest only.
            s.counts.superseded += 1
            await self._record(k, "hold", None, "superseded by a newer close: risk checks only", risk_exits, None)
            return
        answer = await self._ask(k)
        if answer is None:
            return
        action = validate_action(answer.action, answer.action_details, ctx.side, bar.close, s.quantity)
        if action.held_reason:
            s.counts.held_invalid += 1
        await self._execute(k, action)
        reasoning = answer.reasoning if not action.held_reason else f"{action.held_reason}. Model: {answer.reasoning}"
        await self._record(k, action.action, answer, reasoning, risk_exits, action)
        if action.action == "close":
            await self._finish("close_action", f"closed by the model on candle {utc_text(k.t)}")
        self._publish()

    async def _ask(self, k: Kline) -> ManagementAnswer | None:
        ctx, s = self._ctx(), self._s
        market = Decimal(k.c)
        try:
            return await act.manage_position(
                ManagePositionInput(
                    context=ctx,
                    position_id=s.position_id or "",
                    entry_price=s.entry_price or market,
                    market_price=market,
                    position_size=s.quantity,
                    current_pnl=self._pnl(market),
                    current_pnl_pct=pnl_pct(ctx.side, s.entry_price or market, market),
                    current_sl=s.stop_loss,
                    current_tp=s.take_profits[s.targets_hit :],
                    candle=k,
                    previous_decisions=[
                        PreviousManagement(action=d.action, confidence=d.confidence, reasoning=d.reasoning)
                        for d in s.decisions[-5:]
                    ],
                ),
                f"manage-position · candle {utc_text(k.t)}",
            )
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            cause = cause_of(err)
            message = f"{cause.type}: {cause.message}" if cause else str(err.cause or err)
            s.counts.llm_failures += 1
            workflow.logger.warning("position of signal %s: manage-position failed: %s", s.signal_id, message)
            await self._record(
                k, "hold", None, f"manage-position failed after retries, held: {message[:300]}", [], None
            )
            self._publish()
            return None

    async def _execute(self, k: Kline, action: ValidatedAction) -> None:
        ctx, s = self._ctx(), self._s
        key = f"{ctx.signal_id}:{k.t}:{action.action}"
        if action.action == "adjust_sl" and action.new_stop_loss is not None:
            await self._modify(key, action.new_stop_loss, s.take_profits[s.targets_hit :])
        elif action.action == "adjust_tp" and action.new_take_profits is not None:
            await self._modify(key, s.stop_loss, action.new_take_profits)
        elif action.action == "reduce" and action.reduce_quantity is not None:
            await self._order(key, "reduce", action.reduce_quantity, Decimal(k.c), market=True, close=False)
        elif action.action == "close":
            await self._order(key, "close", s.quantity, Decimal(k.c), market=True, close=True, reason="close_action")

    async def _exit(self, k: Kline, exit: Exit, closing: bool) -> None:
        suffix = str(exit.target_index) if exit.target_index is not None else ""
        key = f"{self._ctx().signal_id}:{k.t}:{exit.kind}{suffix}"
        await self._order(key, exit.kind, exit.quantity, exit.price, market=False, close=closing, reason=exit.kind)

    async def _order(
        self,
        key: str,
        kind: OrderKind,
        quantity: Decimal,
        reference: Decimal,
        *,
        market: bool,
        close: bool,
        reason: str | None = None,
    ) -> Fill:
        ctx, s = self._ctx(), self._s
        verb = "close" if close else "reduce"
        fill = await act.fill_order(
            OrderInput(
                key=key,
                signal_id=ctx.signal_id,
                position_id=s.position_id or "",
                user_id=ctx.user_id or "",
                symbol=ctx.symbol,
                side=ctx.side,
                kind=kind,
                quantity=quantity,
                reference_price=reference,
                market=market,
                close=close,
                close_reason=reason if close else None,
            ),
            f"{kind}: {verb} {'all' if close else quantity} at {'market ' if market else ''}{reference}",
        )
        s.quantity = Decimal(0) if close else s.quantity - fill.quantity
        s.realized_pnl += fill.realized_pnl
        s.fees_paid += fill.fee
        s.counts.fills += 1
        if close:
            s.exit_price = fill.price
        return fill

    async def _modify(self, key: str, stop: Decimal | None, targets: list[Decimal]) -> None:
        s = self._s
        await act.modify_position(
            ModifyInput(key=key, position_id=s.position_id or "", stop_loss=stop, take_profits=targets),
            f"set stop {stop} · targets {', '.join(map(str, targets)) or 'none'}",
        )
        s.stop_loss, s.take_profits, s.targets_hit = stop, targets, 0

    async def _record(
        self,
        k: Kline,
        action: ManageAction,
        answer: ManagementAnswer | None,
        reasoning: str,
        risk_exits: list[ExitKind],
        validated: ValidatedAction | None,
    ) -> None:
        ctx, s = self._ctx(), self._s
        market = Decimal(k.c)
        details: dict[str, Any] = dict(answer.action_details or {}) if answer else {}
        if validated is not None and validated.held_reason:
            details.update(requested=validated.requested, heldReason=validated.held_reason)
        if risk_exits:
            details["riskExits"] = list(risk_exits)
        request = RecordDecisionInput(
            position_id=s.position_id or "",
            signal_id=ctx.signal_id,
            trader_id=ctx.trader_id,
            user_id=ctx.user_id,
            candle_open_time=k.open_time(),
            timestamp=k.close_time(),
            current_pnl=self._pnl(market),
            current_pnl_pct=pnl_pct(ctx.side, s.entry_price or market, market),
            position_size=s.quantity,
            market_price=market,
            action=action,
            confidence=answer.confidence if answer else None,
            reasoning=reasoning,
            action_details=details,
            risk_assessment=answer.risk_assessment if answer else None,
            raw_ai_response=answer.raw_ai_response if answer else None,
            analysis_latency_ms=answer.latency_ms if answer else None,
            tokens_used=answer.tokens_used if answer else None,
            model_name=answer.model_name if answer else None,
        )
        summary = f"record decision · candle {utc_text(k.t)} · {action}"
        if workflow.patched(POSITION_LOCAL_RECORD_PATCH):
            await act.record_decision_local(request, summary)
        else:
            await act.record_decision(request, summary)
        s.decisions.append(
            ManagementRecord(
                candle_open_time=k.t,
                action=action,
                requested=validated.requested if validated else None,
                confidence=answer.confidence if answer else None,
                reasoning=reasoning[:REASONING_KEPT],
                held_reason=validated.held_reason if validated else None,
                risk_exits=risk_exits,
                at=workflow.now(),
            )
        )
        del s.decisions[:-DECISIONS_KEPT]
        s.counts.processed += 1  # a candle counts as processed once its decision row is written

    # --- ends ----------------------------------------------------------------------------------

    async def _close_at_market(self, code: str, key_part: str, reason: str) -> NoReturn:
        s = self._s
        market = s.last_price or s.entry_price or Decimal(0)
        close_reason = code if code != "operator" else f"operator: {reason}"
        await self._order(
            f"{self._ctx().signal_id}:{key_part}:close",
            "close",
            s.quantity,
            market,
            market=True,
            close=True,
            reason=close_reason,
        )
        await self._finish(code, reason if code != "operator" else f"closed by operator: {reason}")

    async def _finish(self, code: str, reason: str) -> NoReturn:
        ctx, s = self._ctx(), self._s
        s.status = PositionStatus.CLOSED
        s.close_reason = code
        s.closed_at = workflow.now()
        closed = await act.close_signal(
            CloseSignalInput(
                signal_id=ctx.signal_id,
                trader_id=ctx.trader_id,
                reason=f"position closed: {code}: {reason}"[:500],
                realized_pnl=s.realized_pnl,
                max_consecutive_losses=ctx.max_consecutive_losses,
            ),
            f"mark signal closed · {code} · P&L {s.realized_pnl}",
        )
        s.trader_paused = closed.trader_paused
        workflow.logger.info(
            "position %s closed (%s): exit %s, realized P&L %s", s.position_id, code, s.exit_price, s.realized_pnl
        )
        raise _Ended(self._make_result(f"{code}: {reason}"))

    def _make_result(self, reason: str) -> PositionResult:
        s = self._s
        ctx = s.context
        return PositionResult(
            signal_id=s.signal_id,
            position_id=s.position_id,
            status=s.status,
            reason=reason,
            side=ctx.side if ctx else None,
            entry_price=s.entry_price,
            initial_quantity=s.initial_quantity,
            exit_price=s.exit_price,
            realized_pnl=s.realized_pnl,
            fees_paid=s.fees_paid,
            decisions=s.counts.processed,
            counts=s.counts,
            trader_paused=s.trader_paused,
        )

    # --- candles -------------------------------------------------------------------------------

    @workflow.signal(name=names.CANDLE_CLOSED_SIGNAL)
    def candle_closed(self, *payload: object) -> None:
        """Binance's kline object `k`, through the monitor's candle gate. Takes any number of
        inputs and never raises: anything but one plausible kline is counted and ignored."""
        decoded = candle_gate.decode_counted(self._s.counts, payload)
        if not isinstance(decoded, Kline):
            workflow.logger.warning("position of signal %s: %s", self._s.signal_id, decoded)
        elif self._s.context is None or self._s.status == PositionStatus.OPENING:
            self._early.append(decoded)
        else:
            self._classify(decoded)

    def _classify(self, k: Kline) -> None:
        s, ctx = self._s, self._ctx()
        if s.status != PositionStatus.OPEN:
            s.counts.stale += 1
            return

        def verdict(check_future: bool) -> Verdict:
            return position_candles.classify(
                k,
                symbol=ctx.symbol,
                interval=ctx.interval,
                after_t=s.after_t,
                opened_ms=datetime_to_ms(s.opened_at) if s.opened_at else None,
                last_taken_t=s.last_taken_t,
                seen_t=s.recent_t + [q.t for q in s.queue],
                now_ms=datetime_to_ms(workflow.now()),
                check_future=check_future,
            )

        found = verdict(check_future=True)
        if found is Verdict.FUTURE:
            # The patch check is asked only where a close from the future arrives.
            if workflow.patched(POSITION_FUTURE_CANDLES_PATCH):
                workflow.logger.warning(
                    "position of signal %s: ignored a close from the future (open %s)", s.signal_id, utc_text(k.t)
                )
            else:
                found = verdict(check_future=False)
        if found is not Verdict.TAKE:
            candle_gate.count_refused(s.counts, found)
            return
        s.queue.append(k)
        s.queue.sort(key=lambda q: q.t)
        if len(s.queue) > QUEUE_MAX:
            s.queue.pop(0)
            s.counts.superseded += 1

    def _take(self, k: Kline) -> None:
        s = self._s
        s.last_taken_t = max(k.t, s.last_taken_t or k.t)
        if k.t not in s.recent_t:
            s.recent_t.append(k.t)
            del s.recent_t[:-RECENT_KEPT]

    # --- operators -------------------------------------------------------------------------------

    def _require_open(self) -> None:
        if self._result is not None or self._s.status != PositionStatus.OPEN:
            raise ApplicationError(f"position is {self._s.status}, not open", type=names.POSITION_NOT_OPEN)
        if self._close_reason is not None:
            raise inputs.reject("a close is already in progress")
        if self._continuing:
            raise ApplicationError("continuing as new; try again in a moment", type=names.POSITION_BUSY)

    # The handlers take the raw input, so that a missing or junk one is refused by the validator
    # with a message saying what is expected (never a decoding error, never in history).

    @workflow.update(name=names.CLOSE_UPDATE)
    async def close(self, request: object = None) -> PositionResult:
        """Close the whole position at the last close price (with slippage), with the operator's
        reason: a `CloseRequest` (`{"reason": "..."}`) or the reason as a bare string."""
        self._s.operator_changes += 1
        self._close_reason = inputs.parse(CloseRequest, request).reason
        await workflow.wait_condition(lambda: self._result is not None)
        return self._result or self._make_result("closed")

    @close.validator
    def _validate_close(self, request: object = None) -> None:
        self._require_open()
        inputs.parse(CloseRequest, request)

    @workflow.update(name=names.SET_STOP_LOSS_UPDATE)
    async def set_stop_loss(self, request: object = None) -> PositionView:
        """A `StopLossRequest` (`{"stop_loss": 96.5}`) or the bare price."""
        return await self._modification(inputs.parse(StopLossRequest, request))

    @set_stop_loss.validator
    def _validate_stop_loss(self, request: object = None) -> None:
        self._require_open()
        stop = inputs.parse(StopLossRequest, request).stop_loss
        market, side = self._s.last_price, self._ctx().side
        if market is not None and (stop >= market if side == "long" else stop <= market):
            where = "below" if side == "long" else "above"
            raise inputs.reject(f"a {side}'s stop must be {where} the last price {market}, got {stop}")

    @workflow.update(name=names.SET_TAKE_PROFIT_UPDATE)
    async def set_take_profit(self, request: object = None) -> PositionView:
        """A `TakeProfitRequest` (`{"take_profit": [110, 120]}`) or the bare list."""
        return await self._modification(inputs.parse(TakeProfitRequest, request))

    @set_take_profit.validator
    def _validate_take_profit(self, request: object = None) -> None:
        self._require_open()
        targets = inputs.parse(TakeProfitRequest, request).take_profit
        market, side = self._s.last_price, self._ctx().side
        bad = [
            t for t in targets if t <= 0 or (market is not None and (t <= market if side == "long" else t >= market))
        ]
        if bad:
            where = "above" if side == "long" else "below"
            raise inputs.reject(f"a {side}'s take-profit must be {where} the last price {market}, got {bad[0]}")

    async def _modification(self, request: StopLossRequest | TakeProfitRequest) -> PositionView:
        self._s.operator_changes += 1
        target = self._applied + len(self._modifications) + 1
        self._modifications.append(request)
        await workflow.wait_condition(lambda: self._applied >= target or self._result is not None)
        return self.state()

    async def _apply_modification(self, request: StopLossRequest | TakeProfitRequest) -> None:
        s = self._s
        key = f"{s.signal_id}:operator{s.operator_changes}-{self._applied}"
        if isinstance(request, StopLossRequest):
            await self._modify(f"{key}:adjust_sl", request.stop_loss, s.take_profits[s.targets_hit :])
        else:
            ordered = sorted(set(request.take_profit), reverse=self._ctx().side == "short")
            await self._modify(f"{key}:adjust_tp", s.stop_loss, ordered)
        self._applied += 1
        self._publish()

    @workflow.query(name=names.STATE_QUERY)
    def state(self, *_ignored: object) -> PositionView:
        s, ctx = self._s, self._s.context
        market = s.last_price
        unrealized = (
            gross_pnl(ctx.side, s.entry_price, market, s.quantity)
            if ctx and s.entry_price is not None and market is not None
            else Decimal(0)
        )
        return PositionView(
            signal_id=s.signal_id,
            status=s.status,
            position_id=s.position_id,
            symbol=ctx.symbol if ctx else None,
            interval=ctx.interval if ctx else None,
            side=ctx.side if ctx else None,
            entry_price=s.entry_price,
            initial_quantity=s.initial_quantity,
            quantity=s.quantity,
            stop_loss=s.stop_loss,
            take_profits=s.take_profits[s.targets_hit :],
            targets_hit=s.targets_hit,
            last_price=market,
            realized_pnl=s.realized_pnl,
            unrealized_pnl=unrealized,
            fees_paid=s.fees_paid,
            last_decisions=s.decisions[-5:],
            decisions=s.counts.processed,
            counts=s.counts,
            queued=len(s.queue),
            deadline=s.deadline,
            close_reason=s.close_reason,
            exit_price=s.exit_price,
            trader_paused=s.trader_paused,
            runs=s.runs,
        )

    # --- bookkeeping -----------------------------------------------------------------------------

    def _pnl(self, market: Decimal) -> Decimal:
        s, ctx = self._s, self._ctx()
        if s.entry_price is None:
            return s.realized_pnl
        return s.realized_pnl + gross_pnl(ctx.side, s.entry_price, market, s.quantity)

    def _publish(self) -> None:
        ctx = self._s.context
        if ctx is None:
            return
        current = workflow.info().typed_search_attributes
        wanted = [
            (sa.SIGNAL_SYMBOL, ctx.symbol),
            (sa.SIGNAL_INTERVAL, ctx.interval),
            (sa.TRADER_ID, ctx.trader_id or ""),
            (sa.POSITION_STATUS, str(self._s.status)),
        ]
        updates = [key.value_set(value) for key, value in wanted if current.get(key) != value]
        if updates:
            workflow.upsert_search_attributes(updates)
        self._set_details()

    def _set_details(self, note: str | None = None) -> None:
        s, ctx = self._s, self._s.context
        if ctx is None:
            return
        lines = [
            f"**{ctx.symbol} {ctx.interval}** · {ctx.side} · trader {ctx.trader_name or ctx.trader_id}",
            f"status: {s.status} · size {s.quantity}/{s.initial_quantity} · entry {s.entry_price} · last {s.last_price}",
            f"stop {s.stop_loss} · targets {', '.join(map(str, s.take_profits[s.targets_hit :])) or 'none'}",
            f"realized P&L {s.realized_pnl} (fees {s.fees_paid}) · decisions {s.counts.processed}",
        ]
        if s.decisions:
            d = s.decisions[-1]
            lines.append(f"last: {d.action} on candle {utc_text(d.candle_open_time)}")
        if note:
            lines.append(note)
        workflow.set_current_details("\n\n".join(lines))
