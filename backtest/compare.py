"""`--compare A B`: two backtests of the same series and signals, side by side. Pure."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from backtest.report import Report, SignalOutcome, _decisions, _num, _pct, _short, dec, iso


class Difference(BaseModel):
    signal_time_ms: int
    a: str  # the decisions, as the table prints them
    b: str
    a_end: str
    b_end: str
    a_pnl: str | None
    b_pnl: str | None


def _pnl(o: SignalOutcome) -> str | None:
    return dec(o.trade.pnl) if o.trade else None


def differences(a: Report, b: Report) -> list[Difference]:
    """Signals whose decisions (monitor decision and confidence at each analysis) or end differ."""
    by_time = {o.signal_time_ms: o for o in b.signals}
    diffs = []
    for oa in a.signals:
        ob = by_time.get(oa.signal_time_ms)
        if ob is None:
            continue
        key_a = [(d.proxy_decision, d.decision, d.confidence) for d in oa.decisions]
        key_b = [(d.proxy_decision, d.decision, d.confidence) for d in ob.decisions]
        if key_a != key_b or oa.status != ob.status:
            diffs.append(
                Difference(
                    signal_time_ms=oa.signal_time_ms,
                    a=_decisions(oa),
                    b=_decisions(ob),
                    a_end=oa.status,
                    b_end=ob.status,
                    a_pnl=_pnl(oa),
                    b_pnl=_pnl(ob),
                )
            )
    return diffs


ROWS = (
    ("trades", lambda t: str(t.trades)),
    ("win rate", lambda t: _pct(t.win_rate)),
    ("total profit", lambda t: _num(t.total_profit)),
    ("average profit", lambda t: _num(t.average_profit)),
    ("profit factor", lambda t: _num(t.profit_factor)),
    ("max drawdown", lambda t: _num(t.max_drawdown)),
    ("exposure", lambda t: _pct(t.exposure)),
    ("llm-proxy calls", lambda t: str(t.llm_calls)),
    ("tokens", lambda t: str(t.tokens)),
    ("overruled by confidence", lambda t: str(t.overruled_by_confidence)),
    ("abandoned, would have won", lambda t: f"{t.abandoned_would_have_won}/{t.abandoned}"),
)


def format_compare(a: Report, b: Report) -> str:
    lines = [
        f"compare on {a.run.symbol} {a.run.interval}, {a.run.candles} candles, {len(a.signals)} signals",
        f"A = {a.run.proxy}",
        f"B = {b.run.proxy}",
        "",
        f"{'':<26} {'A':>14} {'B':>14}",
    ]
    for label, get in ROWS:
        lines.append(f"{label:<26} {get(a.totals):>14} {get(b.totals):>14}")
    for which, r in (("A", a), ("B", b)):
        if r.run.stopped:
            lines.append(f"{which} STOPPED EARLY (partial): {r.run.stopped}")
    diffs = differences(a, b)
    lines += ["", f"signals whose decisions differ: {len(diffs)} of {len(a.signals)}"]
    for d in diffs:
        lines.append(f"  {_short(d.signal_time_ms)}  A: {d.a} -> {d.a_end} {d.a_pnl or ''}".rstrip())
        lines.append(f"  {'':<11}  B: {d.b} -> {d.b_end} {d.b_pnl or ''}".rstrip())
    return "\n".join(lines)


def compare_json(a: Report, b: Report, a_json: dict[str, Any], b_json: dict[str, Any]) -> dict[str, Any]:
    return {
        "a": a_json,
        "b": b_json,
        "differences": [{**d.model_dump(mode="json"), "signal_time": iso(d.signal_time_ms)} for d in differences(a, b)],
    }
