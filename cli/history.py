"""`signal-monitor history`: a signal's analyses as a table or JSON (pure formatting of a
SignalReport)."""

from __future__ import annotations

import json
from datetime import datetime

from cli.signal_report import AnalysisRow, SignalReport

EXCERPT = 90


def excerpt(text: str, width: int = EXCERPT) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _t(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return value.strftime(fmt) if value else "-"


def _n(value: float | int | None) -> str:
    return "-" if value is None else f"{value:g}"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}".rstrip("0").rstrip(".") if value else "0"


def decision_text(a: AnalysisRow) -> str:
    return f"{a.decision} -> {a.monitor_decision}" if a.monitor_decision else a.decision


def history_lines(report: SignalReport) -> list[str]:
    """One line per analysis (the table's rows, also used by `status` after the end)."""
    rows = [("#", "TIME (UTC)", "CANDLE (UTC)", "PRICE", "DECISION", "CONF", "TOKENS", "COST $", "REASONING")]
    for a in report.analyses:
        rows.append(
            (
                "-" if a.analysis_number is None else str(a.analysis_number),
                _t(a.created_at),
                _t(a.candle_open_time, "%Y-%m-%d %H:%M") if a.candle_open_time else "signal",
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
        f"  at {_t(s.timestamp)} UTC, price {_n(s.price)}",
        f"  trader {s.trader_name or '-'} ({s.trader_id or 'none'}): enters at confidence >= "
        f"{_n(s.min_confidence_to_enter)}, at most {_n(s.max_reanalyses)} reanalyses",
    ]
    if report.order_intent is not None:
        oi = report.order_intent
        head.append(
            f"  order intent: {oi.side} at {_n(oi.entry_price)}, stop-loss {_n(oi.stop_loss)}, "
            f"take-profit {', '.join(f'{x:g}' for x in oi.take_profits) or '-'} ({oi.status})"
        )
    if not report.analyses:
        return "\n".join([*head, "no analysis recorded yet"])
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
    return "\n".join([*head, *history_lines(report), *tail])


def history_json(report: SignalReport) -> str:
    doc = report.model_dump(mode="json", exclude={"candles"})
    return json.dumps(doc, indent=2)
