"""Pure operations on the position manager's state model (`PositionState`): what opening, a fill,
a change of levels, a decision and the end do to it, and the activity inputs (with their summaries)
built from it. No Temporal: the workflow passes `workflow.now()` in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from market.intervals import is_valid_interval
from workflows.common.candles import Kline, is_valid_symbol
from workflows.common.display import candle_span, plain
from workflows.common.models import PREVIOUS_DECISIONS_SENT, REASONING_KEPT
from workflows.position.actions import ManageAction, ValidatedAction, validate_action
from workflows.position.inputs import StopLossRequest, TakeProfitRequest
from workflows.position.models import (
    CloseSignalInput,
    ExistingPosition,
    Fill,
    ManageAndRecordInput,
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
    PreviousManagement,
    ReconcileInput,
    RecordDecisionInput,
)
from workflows.position.paper import Bar, Side, gross_pnl, pnl_pct
from workflows.position.risk import Book, Exit, ExitKind, RiskOutcome, usable_levels

DECISIONS_KEPT = 20
SIGNAL_REASON_MAX = 500

# --- opening -----------------------------------------------------------------------------------


def not_openable(ctx: PositionContext) -> str | None:
    if not ctx.trader_found or ctx.user_id is None:
        return f"trader {ctx.trader_id} not found"
    if not is_valid_symbol(ctx.symbol):
        return f"invalid symbol {ctx.symbol!r}"
    if not is_valid_interval(ctx.interval):
        return f"unknown management interval {ctx.interval!r}"
    return None


def entry_candle_t(input: PositionManagerInput, ctx: PositionContext) -> int | None:
    """The candle that decided the entry: the monitor's, else the signal's recorded one."""
    return input.entry_candle_t if input.entry_candle_t is not None else ctx.decided_candle_t


def open_request(input: PositionManagerInput, ctx: PositionContext) -> OpenPositionInput | str:
    """The entry order (levels on the wrong side of the entry dropped), or why there can be none."""
    problem = not_openable(ctx)
    reference = input.entry_price or ctx.reference_price
    if problem is None and reference is None:
        problem = "no entry price: neither the deciding close, the order intent nor the signal has one"
    if problem is not None or reference is None or ctx.user_id is None:
        return problem or "no entry price or owner"
    entry_t = entry_candle_t(input, ctx)
    stop, targets = usable_levels(ctx.side, reference, ctx.stop_loss, ctx.take_profits)
    return OpenPositionInput(
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
        exchange_target=exchange_target(ctx, targets),
    )


def exchange_target(ctx: PositionContext, targets: list[Decimal]) -> Decimal | None:
    """The first target when reaching it closes the whole position (one target, or no partial
    levels): a live account rests it beside the stop as one OCO. With partial levels the targets
    stay candle-decided (an OCO's two legs sell the same quantity)."""
    if not targets or (len(targets) > 1 and ctx.risk.partial_take_profit_levels):
        return None
    return targets[0]


def with_exchange_target(ctx: PositionContext, request: ModifyInput) -> ModifyInput:
    return request.model_copy(update={"exchange_target": exchange_target(ctx, request.take_profits)})


def open_summary(request: OpenPositionInput) -> str:
    return f"open {request.side} {request.symbol} at {request.reference_price} (paper)"


def opened(
    s: PositionState,
    ctx: PositionContext,
    request: OpenPositionInput,
    position: OpenedPosition,
    entry_t: int | None,
    now: datetime,
) -> None:
    """The entry filled: the position is open, with the levels the entry order carried."""
    s.position_id = position.position_id
    s.entry_price = position.fill.price
    s.initial_quantity = s.quantity = position.fill.quantity
    s.fees_paid = position.fill.fee
    s.realized_pnl = position.fill.realized_pnl
    s.stop_loss, s.take_profits = request.stop_loss, request.take_profits
    s.best_price = s.last_price = position.fill.price
    s.opened_at = now
    s.deadline = now + timedelta(seconds=ctx.max_position_seconds)
    s.after_t = entry_t
    s.counts.fills += 1
    s.status = PositionStatus.OPEN


def adopted(s: PositionState, ctx: PositionContext, existing: ExistingPosition, now: datetime) -> None:
    """A position another run opened and left open: managed from its row (size, levels, P&L so
    far), from the close after the last one managed, with its duration counted from its opening."""
    s.position_id = existing.position_id
    s.entry_price = existing.entry_price
    s.initial_quantity, s.quantity = existing.initial_quantity, existing.quantity
    s.fees_paid, s.realized_pnl = existing.fees_paid, existing.realized_pnl
    mark = existing.mark_price or existing.entry_price
    s.stop_loss, s.take_profits = usable_levels(existing.side, mark, existing.stop_loss, existing.take_profits)
    s.best_price = s.last_price = mark
    s.opened_at = existing.opened_at or now
    s.deadline = s.opened_at + timedelta(seconds=ctx.max_position_seconds)
    s.after_t = existing.last_managed_t if existing.last_managed_t is not None else ctx.decided_candle_t
    s.status = PositionStatus.OPEN


def already_closed_signal(ctx: PositionContext, existing: ExistingPosition) -> CloseSignalInput:
    """A start over a position whose row is already closed: the signal closes with that P&L."""
    return _signal_closed(ctx, f"{existing.close_reason or 'closed'}: found closed by a new run", existing.realized_pnl)


def unopened_signal(ctx: PositionContext, reason: str) -> CloseSignalInput:
    """An entered signal whose position cannot be opened becomes `failed` saying why."""
    return CloseSignalInput(
        signal_id=ctx.signal_id,
        trader_id=ctx.trader_id,
        reason=f"position could not be opened: {reason}"[:SIGNAL_REASON_MAX],
        realized_pnl=Decimal(0),
        max_consecutive_losses=None,
        status="failed",
    )


# --- the book and its P&L ----------------------------------------------------------------------


def open_targets(s: PositionState) -> list[Decimal]:
    """The take-profit targets not reached yet, nearest first."""
    return s.take_profits[s.targets_hit :]


def book(s: PositionState, side: Side, exchange_stop: bool = False) -> Book:
    """What the risk checks need of the position. `exchange_stop`: the stop-loss rests on the
    exchange, which decides it (the candle's stop rule is left out)."""
    entry = s.entry_price or Decimal(0)
    return Book(
        side=side,
        entry_price=entry,
        initial_quantity=s.initial_quantity,
        quantity=s.quantity,
        stop_loss=None if exchange_stop else s.stop_loss,
        take_profits=s.take_profits,
        targets_hit=s.targets_hit,
        best_price=s.best_price or entry,
    )


def pnl(s: PositionState, side: Side, market: Decimal) -> Decimal:
    """Realized P&L plus what the open quantity would make at `market`."""
    if s.entry_price is None:
        return s.realized_pnl
    return s.realized_pnl + gross_pnl(side, s.entry_price, market, s.quantity)


def is_live(s: PositionState) -> bool:
    """Opened by the live backend (its position ids are `live-<signal id>`)."""
    return (s.position_id or "").startswith("live-")


def reconcile_request(s: PositionState, part: str) -> ReconcileInput:
    return ReconcileInput(key=f"{s.signal_id}:{part}:reconcile", position_id=s.position_id or "", signal_id=s.signal_id)


def exchange_exit(ctx: PositionContext, s: PositionState, fill: Fill, key_part: str) -> OrderInput:
    """The close the exchange made (the order `filled` books): the whole position at its fill."""
    return order_request(
        ctx, s, f"{ctx.signal_id}:{key_part}:exchange", fill.kind if fill.kind != "entry" else "close",
        s.quantity, fill.price, market=False, close=True, reason=fill.kind,
    )  # fmt: skip


def risk_checked(s: PositionState, outcome: RiskOutcome, bar: Bar) -> list[ExitKind]:
    """The risk checks of a close are done (their exits filled): the targets reached, the best
    price for the next trailing stop and the last price move on. Returns the exits' kinds."""
    s.targets_hit, s.best_price, s.last_price = outcome.targets_hit, outcome.best_price, bar.close
    return [e.kind for e in outcome.exits]


def risk_end(outcome: RiskOutcome, k: Kline) -> tuple[ExitKind, str] | None:
    """The exit that closed the position at this close, and why, if one did."""
    if not (outcome.closes_position and outcome.exits):
        return None
    last = outcome.exits[-1]
    return last.kind, f"{last.kind} reached at {plain(last.price)} on candle {candle_span(k.t, k.i)}"


# --- orders and levels -------------------------------------------------------------------------


def order_request(
    ctx: PositionContext,
    s: PositionState,
    key: str,
    kind: OrderKind,
    quantity: Decimal,
    reference: Decimal,
    *,
    market: bool,
    close: bool,
    reason: str | None = None,
) -> OrderInput:
    """A reduce or a close of this position under the idempotency key `key`."""
    return OrderInput(
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
    )


def exit_order(ctx: PositionContext, s: PositionState, k: Kline, exit: Exit, closing: bool) -> OrderInput:
    """A risk exit fills at its level (or the gap's open), not at market; `closing`: the last one."""
    suffix = str(exit.target_index) if exit.target_index is not None else ""
    key = f"{ctx.signal_id}:{k.t}:{exit.kind}{suffix}"
    return order_request(
        ctx, s, key, exit.kind, exit.quantity, exit.price, market=False, close=closing, reason=exit.kind
    )


def action_step(
    ctx: PositionContext, s: PositionState, k: Kline, action: ValidatedAction
) -> OrderInput | ModifyInput | None:
    """What a validated model action does at the close of `k`: new levels, an order at market, or
    nothing (hold)."""
    key = f"{ctx.signal_id}:{k.t}:{action.action}"
    if action.action == "adjust_sl" and action.new_stop_loss is not None:
        return modify_request(s, key, action.new_stop_loss, open_targets(s))
    if action.action == "adjust_tp" and action.new_take_profits is not None:
        return modify_request(s, key, s.stop_loss, action.new_take_profits)
    if action.action == "reduce" and action.reduce_quantity is not None:
        return order_request(ctx, s, key, "reduce", action.reduce_quantity, Decimal(k.c), market=True, close=False)
    if action.action == "close":
        return order_request(
            ctx, s, key, "close", s.quantity, Decimal(k.c), market=True, close=True, reason="close_action"
        )
    return None


def market_close(
    ctx: PositionContext, s: PositionState, code: str, key_part: str, reason: str
) -> tuple[OrderInput, str]:
    """A close at market by the duration or an operator, at the last price: the order and the
    end's reason."""
    market = s.last_price or s.entry_price or Decimal(0)
    operator = code == "operator"
    order = order_request(
        ctx,
        s,
        f"{ctx.signal_id}:{key_part}:close",
        "close",
        s.quantity,
        market,
        market=True,
        close=True,
        reason=f"operator: {reason}" if operator else code,
    )
    return order, f"closed by operator: {reason}" if operator else reason


def order_summary(request: OrderInput) -> str:
    verb = "close" if request.close else "reduce"
    size = "all" if request.close else request.quantity
    return f"{request.kind}: {verb} {size} at {'market ' if request.market else ''}{request.reference_price}"


def filled(s: PositionState, request: OrderInput, fill: Fill) -> None:
    """A reduce or a close filled: the open quantity, P&L and fees follow it."""
    s.quantity = Decimal(0) if request.close else s.quantity - fill.quantity
    s.realized_pnl += fill.realized_pnl
    s.fees_paid += fill.fee
    s.counts.fills += 1
    if request.close:
        s.exit_price = fill.price


def modify_request(s: PositionState, key: str, stop: Decimal | None, targets: list[Decimal]) -> ModifyInput:
    return ModifyInput(key=key, position_id=s.position_id or "", stop_loss=stop, take_profits=targets)


def modify_summary(request: ModifyInput) -> str:
    return f"set stop {request.stop_loss} · targets {', '.join(map(str, request.take_profits)) or 'none'}"


def modified(s: PositionState, request: ModifyInput) -> None:
    """New levels: the targets are counted afresh from the first."""
    s.stop_loss, s.take_profits, s.targets_hit = request.stop_loss, request.take_profits, 0


def operator_change(
    s: PositionState, side: Side, request: StopLossRequest | TakeProfitRequest, applied: int
) -> ModifyInput:
    """An operator's change of levels (`applied`: how many this run applied already): a new stop
    keeps the open targets; new targets keep the stop and are ordered nearest first."""
    key = f"{s.signal_id}:operator{s.operator_changes}-{applied}"
    if isinstance(request, StopLossRequest):
        return modify_request(s, f"{key}:adjust_sl", request.stop_loss, open_targets(s))
    ordered = sorted(set(request.take_profit), reverse=side == "short")
    return modify_request(s, f"{key}:adjust_tp", s.stop_loss, ordered)


# --- the model's decision and its record -------------------------------------------------------


def manage_request(ctx: PositionContext, s: PositionState, k: Kline) -> ManagePositionInput:
    market = Decimal(k.c)
    return ManagePositionInput(
        context=ctx,
        position_id=s.position_id or "",
        entry_price=s.entry_price or market,
        market_price=market,
        position_size=s.quantity,
        current_pnl=pnl(s, ctx.side, market),
        current_pnl_pct=pnl_pct(ctx.side, s.entry_price or market, market),
        current_sl=s.stop_loss,
        current_tp=open_targets(s),
        candle=k,
        previous_decisions=[
            PreviousManagement(action=d.action, confidence=d.confidence, reasoning=d.reasoning)
            for d in s.decisions[-PREVIOUS_DECISIONS_SENT:]
        ],
    )


@dataclass(frozen=True)
class Decision:
    """One candle's decision as it is recorded: the action taken, why, the model's answer (none for
    a risk close, a superseded close or a failed call), the risk exits taken before the model, and
    the validation of the model's action (it says what was asked when it was held)."""

    k: Kline
    action: ManageAction
    reasoning: str
    answer: ManagementAnswer | None = None
    risk_exits: list[ExitKind] = field(default_factory=list)
    validated: ValidatedAction | None = None


def record_request(ctx: PositionContext, s: PositionState, d: Decision) -> RecordDecisionInput:
    """The `position_management_decisions` row of one candle."""
    market = Decimal(d.k.c)
    return _decision_row(
        ctx,
        s.position_id or "",
        s.quantity,
        pnl(s, ctx.side, market),
        pnl_pct(ctx.side, s.entry_price or market, market),
        d,
    )


def hold_row(input: ManageAndRecordInput, answer: ManagementAnswer) -> RecordDecisionInput | None:
    """The row `record_request` writes for this answer when it is a `hold` (validated as the
    workflow validates it), from the manage request alone: a hold changes nothing the request did
    not already describe. None for any other action: its orders come first, then its row."""
    request = input.request
    ctx = request.context
    action = validate_action(
        answer.action, answer.action_details, ctx.side, request.market_price, request.position_size
    )
    if action.action != "hold":
        return None
    d = model_decision(request.candle, answer, action, input.risk_exits)
    return _decision_row(
        ctx, request.position_id, request.position_size, request.current_pnl, request.current_pnl_pct, d
    )


def _decision_row(
    ctx: PositionContext, position_id: str, size: Decimal, current_pnl: Decimal, current_pnl_pct: Decimal, d: Decision
) -> RecordDecisionInput:
    k, answer, validated = d.k, d.answer, d.validated
    details: dict[str, Any] = dict(answer.action_details or {}) if answer else {}
    if validated is not None and validated.held_reason:
        details.update(requested=validated.requested, heldReason=validated.held_reason)
    if d.risk_exits:
        details["riskExits"] = list(d.risk_exits)
    return RecordDecisionInput(
        position_id=position_id,
        signal_id=ctx.signal_id,
        trader_id=ctx.trader_id,
        user_id=ctx.user_id,
        candle_open_time=k.open_time(),
        timestamp=k.close_time(),
        current_pnl=current_pnl,
        current_pnl_pct=current_pnl_pct,
        position_size=size,
        market_price=Decimal(k.c),
        action=d.action,
        confidence=answer.confidence if answer else None,
        reasoning=d.reasoning,
        action_details=details,
        risk_assessment=answer.risk_assessment if answer else None,
        raw_ai_response=answer.raw_ai_response if answer else None,
        analysis_latency_ms=answer.latency_ms if answer else None,
        tokens_used=answer.tokens_used if answer else None,
        model_name=answer.model_name if answer else None,
        model_call=answer.model_call if answer else None,
    )


def record_summary(d: Decision) -> str:
    return f"record decision · candle {candle_span(d.k.t, d.k.i)} · {d.action}"


def recorded(s: PositionState, d: Decision, now: datetime) -> None:
    """A decision row is written: kept (the last few) and its candle counted as processed."""
    s.decisions.append(
        ManagementRecord(
            candle_open_time=d.k.t,
            action=d.action,
            requested=d.validated.requested if d.validated else None,
            confidence=d.answer.confidence if d.answer else None,
            reasoning=d.reasoning[:REASONING_KEPT],
            held_reason=d.validated.held_reason if d.validated else None,
            risk_exits=d.risk_exits,
            at=now,
        )
    )
    del s.decisions[:-DECISIONS_KEPT]
    s.counts.processed += 1
    call = d.answer.model_call if d.answer else None
    if call is not None and call.cost_usd is not None:
        s.model_cost_usd = (s.model_cost_usd or Decimal(0)) + call.cost_usd


def model_decision(k: Kline, answer: ManagementAnswer, action: ValidatedAction, risk_exits: list[ExitKind]) -> Decision:
    """The model's validated answer as recorded: a held action leads its reasoning with why."""
    why = action.held_reason or action.note
    reasoning = answer.reasoning if not why else f"{why}. Model: {answer.reasoning}"
    return Decision(k, action.action, reasoning, answer, risk_exits, action)


# --- the end -----------------------------------------------------------------------------------


def closing(s: PositionState, code: str, now: datetime) -> None:
    s.status = PositionStatus.CLOSED
    s.close_reason = code
    s.closed_at = now


def closed_signal(ctx: PositionContext, s: PositionState, code: str, reason: str) -> CloseSignalInput:
    """The signal becomes `closed` with the position's P&L (the trader's loss streak counted)."""
    return _signal_closed(ctx, f"{code}: {reason}", s.realized_pnl)


def _signal_closed(ctx: PositionContext, why: str, realized_pnl: Decimal) -> CloseSignalInput:
    return CloseSignalInput(
        signal_id=ctx.signal_id,
        trader_id=ctx.trader_id,
        reason=f"position closed: {why}"[:SIGNAL_REASON_MAX],
        realized_pnl=realized_pnl,
        max_consecutive_losses=ctx.max_consecutive_losses,
    )


def result_of(s: PositionState, reason: str) -> PositionResult:
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
