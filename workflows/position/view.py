"""What operators see of a position, from its state model: the `state` query and the Temporal
UI's Current Details (markdown). Pure."""

from __future__ import annotations

from decimal import Decimal

from workflows.common.display import candle_span, plain
from workflows.position.models import PositionState, PositionStatus, PositionView
from workflows.position.paper import gross_pnl
from workflows.position.steps import open_targets

LAST_DECISIONS_SHOWN = 5


def state_view(s: PositionState) -> PositionView:
    ctx, market = s.context, s.last_price
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
        take_profits=open_targets(s),
        targets_hit=s.targets_hit,
        last_price=market,
        realized_pnl=s.realized_pnl,
        unrealized_pnl=unrealized,
        fees_paid=s.fees_paid,
        last_decisions=s.decisions[-LAST_DECISIONS_SHOWN:],
        decisions=s.counts.processed,
        counts=s.counts,
        queued=len(s.queue),
        deadline=s.deadline,
        close_reason=s.close_reason,
        exit_price=s.exit_price,
        trader_paused=s.trader_paused,
        runs=s.runs,
    )


def details_text(s: PositionState, note: str | None = None) -> str | None:
    """None before the position's signal is loaded (nothing to show yet)."""
    ctx = s.context
    if ctx is None:
        return None
    lines = [f"**{ctx.symbol} {ctx.interval}** · {ctx.side} · trader {ctx.trader_name or ctx.trader_id}"]
    if s.status == PositionStatus.CLOSED:
        # Where the signal is now: closed, at the exit fill, with what it made.
        lines.append(
            f"status: closed · exit fill {plain(s.exit_price)} ({s.close_reason or '-'}) · realized P&L "
            f"{plain(s.realized_pnl)} after fees {plain(s.fees_paid)}"
        )
    else:
        unrealized = state_view(s).unrealized_pnl
        lines.append(
            f"status: {s.status} · unrealized P&L {plain(unrealized)} at the last close {plain(s.last_price)} · "
            f"realized {plain(s.realized_pnl)} (fees {plain(s.fees_paid)})"
        )
    lines += [
        f"entry fill {plain(s.entry_price)} · size {plain(s.quantity)} open of {plain(s.initial_quantity)}",
        f"stop {plain(s.stop_loss)} · targets {', '.join(map(plain, open_targets(s))) or 'none'} · decisions "
        f"{s.counts.processed}" + (f" · model cost ${plain(s.model_cost_usd)}" if s.model_cost_usd is not None else ""),
    ]
    if s.decisions:
        d = s.decisions[-1]
        lines.append(f"last: {d.action} on candle {candle_span(d.candle_open_time, ctx.interval)}")
    if note:
        lines.append(note)
    return "\n\n".join(lines)
