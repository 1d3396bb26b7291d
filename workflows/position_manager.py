"""PositionManagerWorkflow: one durable workflow per entered signal, id `position-<signal id>`.

It opens the position through the execution backend, then at every accepted close of its symbol and
management interval: deterministic risk checks, the model's `manage-position` decision (validated;
an impossible action is held), the action executed exactly once (idempotency keys), and one
`position_management_decisions` row. It ends on a stop, the last take-profit, a `close` action, an
operator's `close`, or `max_position_duration` (a durable timer); then the signal is `closed`.
Activities are called by name: this module imports no I/O."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from workflows import names
    from workflows import search_attributes as sa
    from workflows.candles import Kline, datetime_to_ms, is_valid_interval, is_valid_symbol
    from workflows.paper import Bar, gross_pnl, pnl_pct
    from workflows.position_actions import ValidatedAction, validate_action
    from workflows.position_candles import classify
    from workflows.position_models import (
        ClosedSignal,
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
        RecordedDecision,
        StopLossRequest,
        TakeProfitRequest,
    )
    from workflows.position_risk import Book, Exit, check, usable_levels

PERMANENT_TYPES = [
    "SignalNotFound",
    "InvalidSignalId",
    "InvalidSignalData",
    "PermanentDatabaseError",
    "PositionNotFound",
    "PositionClosed",
]
DB_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=PERMANENT_TYPES,
)
DB_TIMEOUT = timedelta(seconds=30)
# The same rules as `analyze_signal` (workflows/signal_monitor.py ANALYSIS_RETRY); names spelled
# here because this module imports no activity module.
LLM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=6,
    non_retryable_error_types=["LlmProxyAuthError", "LlmProxyRequestRejected"],
)
DECISIONS_KEPT = 20
RECENT_KEPT = 64
QUEUE_MAX = 500
REASONING_KEPT = 500


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


class _Ended(Exception):
    def __init__(self, result: PositionResult):
        self.result = result


def _parse_input(raw: Any) -> tuple[PositionManagerInput | None, str | None]:
    try:
        parsed = raw if isinstance(raw, PositionManagerInput) else PositionManagerInput.model_validate(raw)
    except ValidationError as exc:
        return None, "bad input: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
    try:
        signal_id = str(uuid.UUID(parsed.signal_id))
    except ValueError:
        return None, f"signal_id {parsed.signal_id[:80]!r} is not a UUID"
    expected = names.position_workflow_id_for(signal_id)
    if workflow.info().workflow_id != expected:
        return None, f"workflow id {workflow.info().workflow_id!r} does not match the signal: expected {expected!r}"
    parsed.signal_id = signal_id
    return parsed, None


@workflow.defn(name=names.POSITION_WORKFLOW_TYPE)
class PositionManagerWorkflow:
    @workflow.init
    def __init__(self, input: Any) -> None:
        parsed, self._input_error = _parse_input(input)
        self._input = parsed
        state = parsed.state if parsed else None
        self._s: PositionState = state or PositionState(signal_id=parsed.signal_id if parsed else "?")
        if state is not None:
            self._s.runs += 1
        self._early: list[Kline] = []
        self._close_reason: str | None = None
        self._modifications: list[StopLossRequest | TakeProfitRequest] = []
        self._applied = 0
        self._continuing = False
        self._result: PositionResult | None = None

    # --- main loop ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: Any) -> PositionResult:
        if self._input is None:
            raise ApplicationError(self._input_error or "bad input", type="InvalidInput", non_retryable=True)
        try:
            try:
                if self._s.context is None:
                    await self._load_and_open(self._input)
                self._publish()
                for k in self._early:
                    self._classify(k)
                self._early.clear()
                while True:
                    await self._next_step()
            except _Ended as ended:
                self._result = ended.result
        except (asyncio.CancelledError, ActivityError) as err:
            if isinstance(err, ActivityError) and not is_cancelled_exception(err):
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
        self._s.status = self._result.status
        self._publish()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result

    async def _load_and_open(self, input: PositionManagerInput) -> None:
        ctx = await self._db(
            names.LOAD_POSITION_ACTIVITY, LoadPositionInput(signal_id=input.signal_id), PositionContext, "load signal"
        )
        self._s.context = ctx
        problem = self._not_openable(ctx)
        reference = input.entry_price or ctx.reference_price
        if problem is None and reference is None:
            problem = "no entry price: neither the deciding close, the order intent nor the signal has one"
        if problem is not None or reference is None or ctx.user_id is None:
            self._end_unopened(problem or "no entry price or owner")
        entry_t = input.entry_candle_t if input.entry_candle_t is not None else ctx.decided_candle_t
        stop, targets = usable_levels(ctx.side, reference, ctx.stop_loss, ctx.take_profits)
        opened = await self._db(
            names.OPEN_POSITION_ACTIVITY,
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
            OpenedPosition,
            f"open {ctx.side} {ctx.symbol} at {reference} (paper)",
        )
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
        if ctx.signal_status != "in_position":
            return f"signal is {ctx.signal_status}, not in_position: nothing to manage"
        if not ctx.trader_found or ctx.user_id is None:
            return f"trader {ctx.trader_id} not found"
        if not is_valid_symbol(ctx.symbol):
            return f"invalid symbol {ctx.symbol!r}"
        if not is_valid_interval(ctx.interval):
            return f"unknown management interval {ctx.interval!r}"
        return None

    def _end_unopened(self, reason: str) -> NoReturn:
        self._s.status = PositionStatus.NOT_OPENED
        raise _Ended(self._make_result(reason))

    async def _next_step(self) -> None:
        s = self._s
        deadline = s.deadline or workflow.now()
        try:
            await workflow.wait_condition(
                lambda: (
                    bool(s.queue)
                    or self._close_reason is not None
                    or bool(self._modifications)
                    or workflow.info().is_continue_as_new_suggested()
                ),
                timeout=max(timedelta(0), deadline - workflow.now()),
                timeout_summary="max_position_duration",
            )
        except TimeoutError:
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
            raise ApplicationError("position has no context", type="InvalidState", non_retryable=True)
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
        if outcome.closes_position:
            last = outcome.exits[-1]
            why = f"{last.kind} reached at {last.price} on candle {_utc(k.t)}"
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
            await self._finish("close_action", f"closed by the model on candle {_utc(k.t)}")
        self._publish()

    async def _ask(self, k: Kline) -> ManagementAnswer | None:
        ctx, s = self._ctx(), self._s
        market = Decimal(k.c)
        try:
            return await workflow.execute_activity(
                names.MANAGE_POSITION_ACTIVITY,
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
                result_type=ManagementAnswer,
                task_queue=names.llm_task_queue_for(workflow.info().task_queue),
                start_to_close_timeout=timedelta(seconds=90),
                schedule_to_close_timeout=timedelta(minutes=15),
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=LLM_RETRY,
                summary=f"manage-position · candle {_utc(k.t)}",
            )
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            cause = err.cause
            message = f"{cause.type}: {cause.message}" if isinstance(cause, ApplicationError) else str(cause or err)
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
        fill = await self._db(
            names.CLOSE_POSITION_ACTIVITY if close else names.REDUCE_POSITION_ACTIVITY,
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
            Fill,
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
        await self._db(
            names.MODIFY_POSITION_ACTIVITY,
            ModifyInput(key=key, position_id=s.position_id or "", stop_loss=stop, take_profits=targets),
            bool,
            f"set stop {stop} · targets {', '.join(map(str, targets)) or 'none'}",
        )
        s.stop_loss, s.take_profits, s.targets_hit = stop, targets, 0

    async def _record(
        self,
        k: Kline,
        action: Any,
        answer: ManagementAnswer | None,
        reasoning: str,
        risk_exits: list[Any],
        validated: ValidatedAction | None,
    ) -> None:
        ctx, s = self._ctx(), self._s
        market = Decimal(k.c)
        details: dict[str, Any] = dict(answer.action_details or {}) if answer else {}
        if validated is not None and validated.held_reason:
            details.update(requested=validated.requested, heldReason=validated.held_reason)
        if risk_exits:
            details["riskExits"] = list(risk_exits)
        await self._db(
            names.RECORD_POSITION_DECISION_ACTIVITY,
            RecordDecisionInput(
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
            ),
            RecordedDecision,
            f"record decision · candle {_utc(k.t)} · {action}",
        )
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
        closed = await self._db(
            names.CLOSE_SIGNAL_ACTIVITY,
            CloseSignalInput(
                signal_id=ctx.signal_id,
                trader_id=ctx.trader_id,
                reason=f"position closed: {code}: {reason}"[:500],
                realized_pnl=s.realized_pnl,
                max_consecutive_losses=ctx.max_consecutive_losses,
            ),
            ClosedSignal,
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

    # --- activities by name ----------------------------------------------------------------------

    async def _db(self, activity: str, arg: Any, result_type: type, summary: str) -> Any:
        try:
            return await workflow.execute_activity(
                activity,
                arg,
                result_type=result_type,
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
                summary=summary,
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type in PERMANENT_TYPES:
                # A permanent error ends the workflow with its own words, not "Activity task failed".
                raise ApplicationError(f"{activity}: {cause.message}", type=cause.type, non_retryable=True) from None
            raise

    # --- candles -------------------------------------------------------------------------------

    @workflow.signal(name=names.CANDLE_CLOSED_SIGNAL)
    def candle_closed(self, payload: Any) -> None:
        """Binance's kline object `k`. Never raises: a bad candle is counted and ignored."""
        self._s.counts.received += 1
        try:
            kline = Kline.model_validate(payload)
        except ValidationError:
            self._s.counts.malformed += 1
            return
        if self._s.context is None or self._s.status == PositionStatus.OPENING:
            self._early.append(kline)
        else:
            self._classify(kline)

    def _classify(self, k: Kline) -> None:
        s, ctx = self._s, self._ctx()
        if s.status != PositionStatus.OPEN:
            s.counts.stale += 1
            return
        verdict = classify(
            k,
            symbol=ctx.symbol,
            interval=ctx.interval,
            after_t=s.after_t,
            opened_ms=datetime_to_ms(s.opened_at) if s.opened_at else None,
            last_taken_t=s.last_taken_t,
            seen_t=s.recent_t + [q.t for q in s.queue],
        )
        if verdict != "accept":
            setattr(s.counts, verdict, getattr(s.counts, verdict) + 1)
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
            raise ApplicationError(f"position is {self._s.status}, not open", type="PositionNotOpen")
        if self._close_reason is not None:
            raise ApplicationError("a close is already in progress", type="InvalidRequest")
        if self._continuing:
            raise ApplicationError("continuing as new; try again in a moment", type="PositionBusy")

    @workflow.update(name=names.CLOSE_UPDATE)
    async def close(self, request: CloseRequest) -> PositionResult:
        """Close the whole position at the last close price (with slippage), with the operator's reason."""
        self._s.operator_changes += 1
        self._close_reason = request.reason.strip()
        await workflow.wait_condition(lambda: self._result is not None)
        return self._result or self._make_result("closed")

    @close.validator
    def _validate_close(self, request: CloseRequest) -> None:
        self._require_open()
        if not request.reason.strip():
            raise ApplicationError("close needs a non-empty reason", type="InvalidRequest")

    @workflow.update(name=names.SET_STOP_LOSS_UPDATE)
    async def set_stop_loss(self, request: StopLossRequest) -> PositionView:
        return await self._modification(request)

    @set_stop_loss.validator
    def _validate_stop_loss(self, request: StopLossRequest) -> None:
        self._require_open()
        market, side = self._s.last_price, self._ctx().side
        if market is not None and (request.stop_loss >= market if side == "long" else request.stop_loss <= market):
            where = "below" if side == "long" else "above"
            raise ApplicationError(
                f"a {side}'s stop must be {where} the last price {market}, got {request.stop_loss}",
                type="InvalidRequest",
            )

    @workflow.update(name=names.SET_TAKE_PROFIT_UPDATE)
    async def set_take_profit(self, request: TakeProfitRequest) -> PositionView:
        return await self._modification(request)

    @set_take_profit.validator
    def _validate_take_profit(self, request: TakeProfitRequest) -> None:
        self._require_open()
        market, side = self._s.last_price, self._ctx().side
        bad = [
            t
            for t in request.take_profit
            if t <= 0 or (market is not None and (t <= market if side == "long" else t >= market))
        ]
        if bad:
            where = "above" if side == "long" else "below"
            raise ApplicationError(
                f"a {side}'s take-profit must be {where} the last price {market}, got {bad[0]}", type="InvalidRequest"
            )

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
    def state(self) -> PositionView:
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
            lines.append(f"last: {d.action} on candle {_utc(d.candle_open_time)}")
        if note:
            lines.append(note)
        workflow.set_current_details("\n\n".join(lines))
