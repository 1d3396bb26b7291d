"""`--compare A B`: two backtests of the same series and signals, side by side. Pure."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from backtest.report import Report, SignalOutcome, _decisions, _num, _pct, _short, dec, iso, scripted_note


class Difference(BaseModel):
    signal_time_ms: int
    a: str  # the decisions, as the table prints them
    b: str
    a_end: str
    b_end: str
    a_pnl: str | None
    b_pnl: str | None
    decisions_differ: bool  # the monitor's decisions (and confidences) or where the signal ended
    trades_differ: bool  # the trade: taken or not, its side, entry, exit, reason or P&L


def _pnl(o: SignalOutcome) -> str | None:
    return dec(o.trade.pnl) if o.trade else None


def _trade_key(o: SignalOutcome) -> tuple | None:
    t = o.trade
    if t is None:
        return None
    return (t.side, t.entry_time_ms, t.entry_price, t.exit_time_ms, t.exit_price, t.exit_reason, t.pnl)


def differences(a: Report, b: Report) -> list[Difference]:
    """Signals whose decisions or whose trades differ, each counted apart: two prompts may decide
    differently (other confidences, one more wait) and still take the very same trade."""
    by_time = {o.signal_time_ms: o for o in b.signals}
    diffs = []
    for oa in a.signals:
        ob = by_time.get(oa.signal_time_ms)
        if ob is None:
            continue
        key_a = [(d.proxy_decision, d.decision, d.confidence) for d in oa.decisions]
        key_b = [(d.proxy_decision, d.decision, d.confidence) for d in ob.decisions]
        decisions_differ = key_a != key_b or oa.status != ob.status
        trades_differ = _trade_key(oa) != _trade_key(ob)
        if decisions_differ or trades_differ:
            diffs.append(
                Difference(
                    signal_time_ms=oa.signal_time_ms,
                    a=_decisions(oa),
                    b=_decisions(ob),
                    a_end=oa.status,
                    b_end=ob.status,
                    a_pnl=_pnl(oa),
                    b_pnl=_pnl(ob),
                    decisions_differ=decisions_differ,
                    trades_differ=trades_differ,
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
    for which, r in (("A", a), ("B", b)):
        if r.run.scripted:
            lines.append(f"{which}: {scripted_note(r.run)}")
    diffs = differences(a, b)
    n = len(a.signals)
    decided = [d for d in diffs if d.decisions_differ]
    traded = [d for d in diffs if d.trades_differ]
    same_trade = [d for d in decided if not d.trades_differ]
    lines += [
        "",
        f"signals whose decisions differ: {len(decided)} of {n}"
        + (f" ({len(same_trade)} of them with the very same trade)" if same_trade else ""),
        f"signals whose trades differ: {len(traded)} of {n}",
    ]
    for d in diffs:
        what = " and ".join(w for w, on in (("decisions", d.decisions_differ), ("trade", d.trades_differ)) if on)
        lines.append(f"  {_short(d.signal_time_ms)}  A: {d.a} -> {d.a_end} {d.a_pnl or ''}".rstrip())
        lines.append(f"  {'':<11}  B: {d.b} -> {d.b_end} {d.b_pnl or ''}".rstrip())
        lines.append(f"  {'':<11}  differ: {what}")
    return "\n".join(lines)


def compare_json(a: Report, b: Report, a_json: dict[str, Any], b_json: dict[str, Any]) -> dict[str, Any]:
    return {
        "a": a_json,
        "b": b_json,
        "differences": [{**d.model_dump(mode="json"), "signal_time": iso(d.signal_time_ms)} for d in differences(a, b)],
    }
