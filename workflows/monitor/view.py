"""The Temporal UI's Current Details of a monitor (markdown), from its state. Pure."""

from __future__ import annotations

from workflows.common.timefmt import utc_text
from workflows.monitor.models import CarriedState, SignalContext

REASONING_EXCERPT = 160


def excerpt(text: str, limit: int = REASONING_EXCERPT) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def details_text(state: CarriedState, ctx: SignalContext) -> str:
    last = state.last_decision
    price = (last.price if last and last.price else None) or (str(ctx.price) if ctx.price is not None else "-")
    lines = [
        f"**{ctx.symbol} {ctx.interval}** · trader {ctx.trader_name or ctx.trader_id}",
        f"status: {state.status} · price {price} · analyses {len(state.history)} · reanalyses "
        f"{state.reanalyses}/{state.max_reanalyses}",
    ]
    if last:
        why = last.mapped or f"{last.proxy_decision} {last.confidence:g} -> {last.decision}"
        lines.append(f"last: #{last.analysis_number} {why} on candle {utc_text(last.candle_open_time)}")
        if last.reasoning:
            lines.append(f"> {excerpt(last.reasoning)}")
    c = state.counts
    lines.append(
        f"candles: analysed {c.analysed}, duplicate {c.duplicate}, stale {c.stale}, skipped {c.skipped}, "
        f"foreign {c.foreign}, malformed {c.malformed}, future {c.future}, oversized {c.oversized}, "
        f"failed {c.failed_analyses}"
    )
    return "\n\n".join(lines)
