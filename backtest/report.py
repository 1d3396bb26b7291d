"""The backtest's figures: per signal, per trade and in total. Pure: outcomes in, report out."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from backtest.trades import Trade

SCRIPTED = (
    "decisions scripted: the local llm-proxy stand-in answers by a fixed script, not a model (default: each "
    "signal wait 55, wait 62, enter_trade 78, each position hold, hold, close; 'strict': a fixed rule on the "
    "candle's move); these figures exercise the pipeline, they say nothing about a strategy"
)
RULE_SCRIPTED = (
    "decisions by the local model stand-in: a documented rule over the prompt's candles (fakes/model/rule.py), "
    "not a model; these figures exercise the pipeline, they say nothing about a strategy"
)
Q4 = Decimal("0.0001")


def scripted_note(run: RunInfo) -> str:
    return RULE_SCRIPTED if run.proxy.startswith("model ") else SCRIPTED


class Decision(BaseModel):
    analysis: int
    candle_open_ms: int | None  # None: the first analysis, on the signal's own price
    proxy_decision: str
    confidence: float
    decision: str  # the monitor's: enter | continue | abandon

    @property
    def overruled(self) -> bool:
        """llm-proxy said enter_trade, the trader's minimum confidence said no."""
        return self.proxy_decision == "enter_trade" and self.decision != "enter"


class SignalOutcome(BaseModel):
    signal_time_ms: int
    price: Decimal
    # Where the signal ended, as its row says: closed (entered, the position closed: see `trade`) |
    # in_position (entered, no closed trade) | expired | failed | cancelled | not_run | cut_by_cap | end_of_data
    status: str
    reason: str
    decisions: list[Decision] = Field(default_factory=list)
    llm_calls: int = 0
    tokens: int = 0
    trade: Trade | None = None
    management: dict[str, int] = Field(default_factory=dict, description="position decisions by action")
    would_have_won: bool | None = None


class RunInfo(BaseModel):
    symbol: str
    interval: str
    candles: int
    first_open_ms: int
    last_close_ms: int  # the horizon: the last candle fed (earlier when a run was stopped)
    proxy: str
    scripted: bool = False  # the local stand-in: its decisions are a fixed script, not a model's
    trades_from: str  # what ran the trades: PositionManagerWorkflow (paper backend)
    stake: Decimal
    max_calls: int | None = None
    stopped: str | None = None  # why the run ended early (the call cap), None when it ran through
    late_events: int = 0  # closes/signals fed more than 1 s after their time (a step outlasted the gap)
    max_late_seconds: float = 0.0


class Totals(BaseModel):
    signals: int
    signals_run: int
    trades: int
    wins: int
    win_rate: float | None
    total_profit: Decimal
    average_profit: Decimal | None
    profit_factor: float | None  # None: no losing trade (or no trade)
    max_drawdown: Decimal
    max_drawdown_pct: float
    average_holding_seconds: float | None
    exposure: float  # fraction of the series' time with a position open
    llm_calls: int
    tokens: int
    llm_calls_per_signal: float | None
    tokens_per_signal: float | None
    llm_calls_per_trade: float | None
    tokens_per_trade: float | None
    overruled_by_confidence: int
    abandoned: int
    abandoned_would_have_won: int


class Report(BaseModel):
    run: RunInfo
    signals: list[SignalOutcome]
    totals: Totals


def _ratio(a: float | Decimal, b: float | Decimal) -> float | None:
    return round(float(a) / float(b), 4) if b else None


def max_drawdown(pnls_in_exit_order: list[Decimal], start: Decimal) -> Decimal:
    """Largest fall of the equity (start + realised P&L, trade by trade) below its running peak."""
    equity = peak = start
    worst = Decimal(0)
    for pnl in pnls_in_exit_order:
        equity += pnl
        peak = max(peak, equity)
        worst = max(worst, peak - equity)
    return worst


def exposure(trades: list[Trade], first_ms: int, last_ms: int) -> float:
    """Share of [first_ms, last_ms] covered by at least one open position (overlaps counted once)."""
    span = last_ms - first_ms
    if span <= 0:
        return 0.0
    covered, cursor = 0, first_ms
    for t in sorted(trades, key=lambda t: t.entry_time_ms):
        start, end = max(t.entry_time_ms, cursor), min(t.exit_time_ms, last_ms)
        if end > start:
            covered += end - start
            cursor = end
    return round(covered / span, 4)


def equity_curve(trades: list[Trade], start: Decimal) -> list[tuple[int, Decimal]]:
    points, equity = [], start
    for t in sorted(trades, key=lambda t: (t.exit_time_ms, t.signal_time_ms)):
        equity += t.pnl
        points.append((t.exit_time_ms, equity))
    return points


def build_report(run: RunInfo, outcomes: list[SignalOutcome]) -> Report:
    outcomes = sorted(outcomes, key=lambda o: o.signal_time_ms)
    trades = [o.trade for o in outcomes if o.trade is not None]
    pnls = [t.pnl for t in sorted(trades, key=lambda t: (t.exit_time_ms, t.signal_time_ms))]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    total = sum(pnls, Decimal(0))
    dd = max_drawdown(pnls, run.stake)
    peak = max([run.stake, *(e for _, e in equity_curve(trades, run.stake))])
    holding = [(t.exit_time_ms - t.entry_time_ms) / 1000 for t in trades]
    run_outcomes = [o for o in outcomes if o.status != "not_run"]
    calls = sum(o.llm_calls for o in outcomes)
    tokens = sum(o.tokens for o in outcomes)
    abandoned = [o for o in outcomes if o.status == "expired"]
    totals = Totals(
        signals=len(outcomes),
        signals_run=len(run_outcomes),
        trades=len(trades),
        wins=len(wins),
        win_rate=_ratio(len(wins), len(trades)),
        total_profit=total.quantize(Q4),
        average_profit=(total / len(trades)).quantize(Q4) if trades else None,
        profit_factor=_ratio(sum(wins, Decimal(0)), -sum(losses, Decimal(0))) if losses else None,
        max_drawdown=dd.quantize(Q4),
        max_drawdown_pct=round(float(dd / peak) * 100, 4) if peak else 0.0,
        average_holding_seconds=round(sum(holding) / len(holding), 1) if holding else None,
        exposure=exposure(trades, run.first_open_ms, run.last_close_ms),
        llm_calls=calls,
        tokens=tokens,
        llm_calls_per_signal=_ratio(calls, len(run_outcomes)),
        tokens_per_signal=_ratio(tokens, len(run_outcomes)),
        llm_calls_per_trade=_ratio(calls, len(trades)),
        tokens_per_trade=_ratio(tokens, len(trades)),
        overruled_by_confidence=sum(1 for o in outcomes for d in o.decisions if d.overruled),
        abandoned=len(abandoned),
        abandoned_would_have_won=sum(1 for o in abandoned if o.would_have_won),
    )
    return Report(run=run, signals=outcomes, totals=totals)


# --- output ----------------------------------------------------------------------------------


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def _short(ms: int | None) -> str:
    if ms is None:
        return "signal"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%m-%d %H:%M")


def dec(x: Decimal | None) -> str | None:
    """A price or amount as plain digits, without trailing zeros (43300, not 4.33E+4 or 43300.0)."""
    if x is None:
        return None
    text = format(x.normalize(), "f")
    return text


def to_json(report: Report) -> dict[str, Any]:
    """`--json`: `trades` and `totals` as the issue names them, then everything else."""
    r, t = report.run, report.totals
    trades = [
        {
            "signal_time": iso(o.trade.signal_time_ms),
            "side": o.trade.side,
            "entry_time": iso(o.trade.entry_time_ms),
            "entry_price": dec(o.trade.entry_price),
            "exit_time": iso(o.trade.exit_time_ms),
            "exit_price": dec(o.trade.exit_price),
            "exit_reason": o.trade.exit_reason,
            "quantity": dec(o.trade.quantity),
            "fees": dec(o.trade.fees),
            "pnl": dec(o.trade.pnl),
        }
        for o in report.signals
        if o.trade is not None
    ]
    signals = [
        {
            "signal_time": iso(o.signal_time_ms),
            "price": dec(o.price),
            "status": o.status,
            "reason": o.reason,
            "decisions": [
                {
                    "analysis": d.analysis,
                    "candle_open_time": iso(d.candle_open_ms),
                    "proxy_decision": d.proxy_decision,
                    "confidence": d.confidence,
                    "decision": d.decision,
                    "overruled_by_confidence": d.overruled,
                }
                for d in o.decisions
            ],
            "llm_calls": o.llm_calls,
            "tokens": o.tokens,
            "position_decisions": o.management,
            "would_have_won": o.would_have_won,
        }
        for o in report.signals
    ]
    totals = t.model_dump(mode="json")
    return {
        "run": {**r.model_dump(mode="json"), "first_open": iso(r.first_open_ms), "last_close": iso(r.last_close_ms)},
        "trades": trades,
        "totals": totals,
        "signals": signals,
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def _num(x: float | Decimal | None, digits: int = 2) -> str:
    return "-" if x is None else f"{float(x):,.{digits}f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def _decisions(o: SignalOutcome) -> str:
    words = {"enter": "E", "continue": "w", "abandon": "A"}
    marks = []
    for d in o.decisions:
        mark = words.get(d.decision, "?") + f"{d.confidence:.0f}"
        marks.append(mark + "!" if d.overruled else mark)
    return " ".join(marks) or "-"


def format_table(report: Report) -> str:
    """The printed report: one line per signal, then the totals."""
    r, t = report.run, report.totals
    lines = [
        f"backtest {r.symbol} {r.interval}: {r.candles} candles {iso(r.first_open_ms)} -> {iso(r.last_close_ms)}, "
        f"proxy {r.proxy}, trades from {r.trades_from}, stake {r.stake}",
    ]
    if r.stopped:
        lines.append(f"STOPPED EARLY (partial report): {r.stopped}")
    if r.scripted:
        lines.append(f"NOTE: {scripted_note(r)}")
    if r.late_events:
        lines.append(
            f"WARNING: {r.late_events} closes/signals were fed up to {r.max_late_seconds:.0f} s after their time (llm-proxy "
            "answers took longer than the gap to the next candle): timers may have fired before closes they would follow live"
        )
    lines.append("")
    header = f"{'signal':<12} {'price':>11} {'end':<12} {'decisions':<26} {'entry':>11} {'exit':>11} {'reason':<12} {'pnl':>9} {'calls':>5} {'tokens':>7}"
    lines += [header, "-" * len(header)]
    for o in report.signals:
        tr = o.trade
        end = o.status + ("*" if o.would_have_won else "")
        lines.append(
            f"{_short(o.signal_time_ms):<12} {_num(o.price):>11} {end:<12} {_decisions(o)[:26]:<26} "
            f"{_num(tr.entry_price if tr else None):>11} {_num(tr.exit_price if tr else None):>11} "
            f"{(tr.exit_reason if tr else ''):<12} {_num(tr.pnl if tr else None):>9} {o.llm_calls:>5} {o.tokens:>7}"
        )
    lines += [
        "",
        "decisions: E enter, w wait/continue, A abandon, with confidence; ! enter_trade overruled by "
        "min_confidence_to_enter; * abandoned but would have won",
        "",
        f"trades {t.trades} · win rate {_pct(t.win_rate)} · total profit {_num(t.total_profit)} · "
        f"average {_num(t.average_profit)} · profit factor {_num(t.profit_factor)}",
        f"max drawdown {_num(t.max_drawdown)} ({t.max_drawdown_pct:.2f}%) · average holding {_duration(t.average_holding_seconds)} "
        f"· exposure {_pct(t.exposure)}",
        f"signals {t.signals_run}/{t.signals} run · llm-proxy calls {t.llm_calls} ({_num(t.llm_calls_per_signal)}/signal, "
        f"{_num(t.llm_calls_per_trade)}/trade) · tokens {t.tokens} ({_num(t.tokens_per_signal, 0)}/signal, "
        f"{_num(t.tokens_per_trade, 0)}/trade)",
        f"overruled by confidence {t.overruled_by_confidence} · abandoned {t.abandoned}, of which would have won "
        f"{t.abandoned_would_have_won}",
    ]
    return "\n".join(lines)
