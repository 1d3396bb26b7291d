"""`signal-monitor history`: a signal's analyses as a table or JSON (pure formatting of a
SignalReport)."""

from __future__ import annotations

import json
from datetime import datetime

from cli.signal_report import AnalysisRow, SignalReport, standin_note
from cli.text import candle_ending, candle_span, plain, signed

EXCERPT = 90


def excerpt(text: str, width: int = EXCERPT) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _t(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return value.strftime(fmt) if value else "-"


def _n(value: float | int | None) -> str:
    return plain(value)


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}".rstrip("0").rstrip(".") if value else "0"


def decision_text(a: AnalysisRow) -> str:
    return f"{a.decision} -> {a.monitor_decision}" if a.monitor_decision else a.decision


def history_lines(report: SignalReport) -> list[str]:
    """One line per analysis (the table's rows, also used by `status` after the end)."""
    rows = [
        ("#", "TIME (UTC)", "CANDLE (UTC, opens–closes)", "PRICE", "DECISION", "CONF", "TOKENS", "COST $", "REASONING")
    ]
    for a in report.analyses:
        rows.append(
            (
                "-" if a.analysis_number is None else str(a.analysis_number),
                _t(a.created_at),
                candle_span(a.candle_open_time, report.signal.interval).removesuffix(" UTC")
                if a.candle_open_time
                else "signal's own price",
                _n(a.price),
                decision_text(a),
                f"{a.confidence:g}",
                "-" if a.tokens is None else str(a.tokens),
                _usd(a.cost_usd),
                ("[abstained] " if a.abstained else "") + excerpt(a.reasoning),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([*(v.ljust(w) for v, w in zip(r[:-1], widths, strict=True)), r[-1]]).rstrip() for r in rows]


def history_text(report: SignalReport) -> str:
    s = report.signal
    head = [
        f"signal {s.signal_id}: {s.symbol} {s.interval}, status {s.status}"
        + (f" ({s.monitor_reason})" if s.monitor_reason else ""),
        f"  at {_t(s.timestamp)} UTC, price {_n(s.price)}"
        + (f" (the close of {candle_ending(s.timestamp, s.interval)})" if s.timestamp else ""),
        f"  trader {s.trader_name or '-'} ({s.trader_id or 'none'}): enters at confidence >= "
        f"{_n(s.min_confidence_to_enter)}, at most {_n(s.max_reanalyses)} reanalyses",
    ]
    if report.order_intent is not None:
        oi = report.order_intent
        # The intent is the plan at the deciding close; what happened is the position's fills below.
        done = "filled: see the position below" if report.fills else oi.status
        head.append(
            f"  order intent (the plan): {oi.side} at {_n(oi.entry_price)}, stop-loss {_n(oi.stop_loss)}, "
            f"take-profit {', '.join(map(plain, oi.take_profits)) or '-'} ({done})"
        )
    if note := standin_note(report):
        head.append(f"  NOTE: {note}")
    if not report.analyses:
        return "\n".join([*head, "no analysis recorded yet", *position_lines(report)])
    total = sum(a.tokens or 0 for a in report.analyses)
    costs = [a.cost_usd for a in report.analyses if a.cost_usd is not None]
    cost = f", cost ${_usd(sum(costs))}" if costs else ""
    tail = [f"{len(report.analyses)} analyses, {total} tokens{cost}; prices of candles: {report.candles_source}"]
    p = report.position_cost
    if p is not None:
        spent = f", cost ${_usd(p.cost_usd)}" if p.cost_usd is not None else ""
        tail.append(
            f"position: {p.decisions} management decisions ({p.model_decisions} by the model), {p.tokens} tokens{spent}"
        )
    return "\n".join([*head, *history_lines(report), *tail, *position_lines(report)])


def position_lines(report: SignalReport) -> list[str]:
    """The position and each of its fills (the `orders` rows): the prices a trader got."""
    p = report.position
    if p is None:
        return []
    lines = [f"position {p.position_id} ({p.mode}): {p.side} {plain(p.size)}, {p.status}"]
    for f in report.fills:
        on = (
            f"candle {candle_span(f.candle_open_time, report.signal.interval)}"
            if f.candle_open_time
            else f"at {_t(f.created_at)} UTC"
        )
        pnl = f", P&L {signed(f.realized_pnl)}" if f.kind != "entry" and f.realized_pnl is not None else ""
        lines.append(
            f"  {f.kind:<13} {f.side:<4} {plain(f.quantity)} at {plain(f.price)} ({f.type}), {on}, fee {plain(f.fee)}{pnl}"
        )
    if p.status == "closed":
        lines.append(
            f"  closed {_t(p.closed_at)} UTC at {plain(p.exit_price)} ({p.close_reason or '-'}): realized P&L "
            f"{signed(p.realized_pnl)} after fees {plain(p.fees_paid)}"
        )
    return lines


def history_json(report: SignalReport) -> str:
    doc = report.model_dump(mode="json", exclude={"candles"})
    return json.dumps(doc, indent=2)
