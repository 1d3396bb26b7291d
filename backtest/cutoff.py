"""`--model-cutoff DATE`: a model may remember the past it is tested on (it recalls market values
from before its training cutoff; "The Memorization Problem", arXiv 2504.14765). Signals before the
cutoff are marked memorizable; the headline totals are those of the signals after it, the others
given beside them. Pure: a report in, two sub-reports out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from backtest.report import Report, build_report, iso

# Knowledge cutoffs as their providers state them (verify before relying on one; the flag wins).
KNOWN_CUTOFFS = {
    "gemini-2.5-flash": "2025-01-31",
    "gemini-2.5-flash-lite": "2025-01-31",
    "gpt-5-nano": "2024-05-31",
}


def known_cutoff(model: str | None) -> datetime | None:
    """The table's cutoff for a model id (`google/gemini-2.5-flash` -> gemini-2.5-flash's), else None."""
    day = KNOWN_CUTOFFS.get((model or "").rsplit("/", 1)[-1].lower())
    return datetime.fromisoformat(day).replace(tzinfo=UTC) if day else None


def split(report: Report, cutoff_ms: int) -> tuple[Report, Report]:
    """(after the cutoff: the headline, before it: memorizable)."""
    after = [o for o in report.signals if o.signal_time_ms >= cutoff_ms]
    before = [o for o in report.signals if o.signal_time_ms < cutoff_ms]
    return build_report(report.run, after), build_report(report.run, before)


def _line(label: str, r: Report) -> str:
    t = r.totals
    win = "-" if t.win_rate is None else f"{t.win_rate * 100:.1f}%"
    pf = "-" if t.profit_factor is None else f"{t.profit_factor:.2f}"
    return (
        f"{label}: signals {t.signals_run}/{t.signals} · trades {t.trades} · win rate {win} · "
        f"total profit {t.total_profit} · profit factor {pf}"
    )


def format_cutoff(report: Report, cutoff_ms: int) -> str:
    after, before = split(report, cutoff_ms)
    return "\n".join(
        [
            f"model cutoff {iso(cutoff_ms)}: the headline is the signals after it (the model cannot remember them)",
            _line("HEADLINE after the cutoff", after),
            _line("memorizable (before the cutoff, not counted)", before),
        ]
    )


def cutoff_json(report: Report, cutoff_ms: int) -> dict[str, Any]:
    after, before = split(report, cutoff_ms)
    return {
        "cutoff": iso(cutoff_ms),
        "after": after.totals.model_dump(mode="json"),
        "memorizable_before": before.totals.model_dump(mode="json"),
        "memorizable_signals": [iso(o.signal_time_ms) for o in before.signals],
    }
