"""What operators see of a position, from its state model: the `state` query and the Temporal
UI's Current Details (markdown). Pure."""

from __future__ import annotations

from decimal import Decimal

from workflows.common.timefmt import utc_text
from workflows.position.models import PositionState, PositionView
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
    lines = [
        f"**{ctx.symbol} {ctx.interval}** · {ctx.side} · trader {ctx.trader_name or ctx.trader_id}",
        f"status: {s.status} · size {s.quantity}/{s.initial_quantity} · entry {s.entry_price} · last {s.last_price}",
        f"stop {s.stop_loss} · targets {', '.join(map(str, open_targets(s))) or 'none'}",
        f"realized P&L {s.realized_pnl} (fees {s.fees_paid}) · decisions {s.counts.processed}",
    ]
    if s.decisions:
        d = s.decisions[-1]
        lines.append(f"last: {d.action} on candle {utc_text(d.candle_open_time)}")
    if note:
        lines.append(note)
    return "\n\n".join(lines)
