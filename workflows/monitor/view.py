"""What operators see of a monitor, from its state model: the `state` query and the Temporal UI's
Current Details (markdown). Pure."""

from __future__ import annotations

from workflows.common.display import candle_span, plain
from workflows.common.names import position_workflow_id_for
from workflows.monitor.models import MonitorState, MonitorView, SignalContext

REASONING_EXCERPT = 160


def state_view(signal_id: str, s: MonitorState) -> MonitorView:
    ctx = s.context
    return MonitorView(
        signal_id=signal_id,
        status=s.status,
        symbol=ctx.symbol if ctx else None,
        interval=ctx.interval if ctx else None,
        trader_id=ctx.trader_id if ctx else None,
        analyses=len(s.history),
        reanalyses=s.reanalyses,
        max_reanalyses=s.max_reanalyses,
        counts=s.counts,
        last_decision=s.last_decision,
        history=s.history,
        failures=s.failures,
        skipped_candles=s.skipped_t,
        pending_candle=s.pending.t if s.pending else None,
        analysing=s.analysing,
        consecutive_failures=s.consecutive_failures,
        deadline=s.deadline,
        end_reason=s.result.reason if s.result else None,
        runs=s.runs,
    )


def excerpt(text: str, limit: int = REASONING_EXCERPT) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def details_text(state: MonitorState, ctx: SignalContext) -> str:
    last = state.last_decision
    price = (last.price if last and last.price else None) or (plain(ctx.price) if ctx.price is not None else "-")
    lines = [
        f"**{ctx.symbol} {ctx.interval}** · trader {ctx.trader_name or ctx.trader_id}",
        f"status: {state.status} · price {price} · analyses {len(state.history)} · reanalyses "
        f"{state.reanalyses}/{state.max_reanalyses}",
    ]
    if state.status == "in_position":
        # This monitor's part is done; the signal's later life (open, closed, exit, P&L) is the
        # position manager's, whose details say where it is now.
        lines.append(f"entered: the position is managed by `{position_workflow_id_for(ctx.signal_id)}`")
    if last:
        why = last.mapped or f"{last.proxy_decision} {last.confidence:g} -> {last.decision}"
        on = candle_span(last.candle_open_time, ctx.interval, none="the signal's own price")
        lines.append(f"last: #{last.analysis_number} {why} on {'candle ' if last.candle_open_time else ''}{on}")
        if last.reasoning:
            lines.append(f"> {excerpt(last.reasoning)}")
    costs = [r.cost_usd for r in state.history if r.cost_usd is not None]
    if costs:
        lines.append(f"model cost: ${plain(sum(costs))} over {len(costs)} analyses")
    c = state.counts
    lines.append(
        f"candles: analysed {c.analysed}, duplicate {c.duplicate}, stale {c.stale}, skipped {c.skipped}, "
        f"foreign {c.foreign}, malformed {c.malformed}, future {c.future}, oversized {c.oversized}, "
        f"failed {c.failed_analyses}" + (f", gated {c.gated}" if c.gated else "")
    )
    return "\n\n".join(lines)
