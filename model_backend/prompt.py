"""The versioned prompt of each operation: pure functions from the activity's input and the
candles to chat messages. The rendered messages are hashed (sha256) and the hash recorded with the
answer, so a row says exactly which text a decision came from (and the backtest cache keys on it).

Bump PROMPT_VERSION whenever the rendered text changes shape: rows and backtest reports compare
decisions by it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from model_backend.indicators import Bar, snapshot
from model_backend.market import candle_table, higher_timeframe, price_digits
from workflows.monitor.models import AnalyzeSignalInput
from workflows.position.models import ManagePositionInput

PROMPT_VERSION = "candles-v1"
# About 8k tokens in at most (the budget); a character is ~0.3 token for these tables.
MAX_PROMPT_CHARS = 24_000
MAX_REASONING_CHARS = 300  # of each previous decision shown back to the model

ANALYSIS_SYSTEM = """You are a disciplined crypto trading analyst. A screener flagged a trading signal; \
you decide, at the close of each candle, whether to enter now (enter_trade), keep watching (wait), \
or drop it (bad_setup). You see only the data below: the candles are the market up to the analysed \
close (the last row, i=0); nothing after it exists yet. Indicators were computed in code from \
those candles. Enter only with a concrete plan: for a long, stopLoss < entry < every takeProfit; for a \
short, the mirror; entry near the last close; a reward-to-risk of at least {min_rr}. Answer with one \
JSON object only, no prose and no code fence, with exactly these keys: decision ("enter_trade" | \
"wait" | "bad_setup"), confidence (0-100), reasoning (short text), keyLevels {{side ("long" | "short" | \
null), entry, stopLoss (numbers or null), takeProfit, support, resistance (lists of numbers)}}, \
tradePlan {{setup, execution, invalidation (texts), riskReward (number or null)}}."""

MANAGEMENT_SYSTEM = """You are a disciplined crypto trading risk manager. A position is open; at the \
close of each candle you choose one action: hold, adjust_sl (move the stop), adjust_tp (new \
take-profits), reduce (close a fraction 0 < reduceAmount < 1), or close. You see only the data below: \
the candles are the market up to this close (the last row, i=0); nothing after it exists yet. \
Indicators were computed in code. A long's stop stays below the market price and its take-profits \
above it (the mirror for a short). Answer with one JSON object only, no prose and no code fence, \
with exactly these keys: action, confidence (0-100), reasoning (short text), actionDetails \
{{newStopLoss (number or null), newTakeProfit (list of numbers), reduceAmount (number or null)}}, \
riskAssessment {{marketRisk, positionRisk (texts)}}."""


@dataclass(frozen=True)
class Rendered:
    messages: list[dict[str, str]]
    prompt_version: str
    sha256: str
    chars: int
    # The indicators shown (computed once: the row's `technical_indicators`, the answer's ATR check).
    indicators: dict[str, Any] = field(default_factory=dict)

    @property
    def approx_tokens(self) -> int:
        return self.chars * 3 // 10


def messages_sha256(messages: Sequence[dict[str, str]]) -> str:
    text = json.dumps(list(messages), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _rendered(system: str, user: str, indicators: dict[str, Any]) -> Rendered:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return Rendered(messages, PROMPT_VERSION, messages_sha256(messages), len(system) + len(user), indicators)


def _iso(when: datetime | None) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if when else "n/a"


def _hidden(when: datetime | None) -> str:
    return "(time hidden)"


def _g(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _strategy(strategy: Any) -> str:
    if (
        isinstance(strategy, dict)
        and isinstance(strategy.get("instructions"), str)
        and strategy["instructions"].strip()
    ):
        return strategy["instructions"].strip()[:2000]
    if strategy in (None, {}, ""):
        return "(none given)"
    return json.dumps(strategy, sort_keys=True, default=str)[:2000]


def _indicators(values: dict[str, Any]) -> str:
    return json.dumps(values, separators=(", ", ": ")).replace("null", "n/a")


def _pct(frm: float | None, to: float) -> str:
    if not frm:
        return "n/a"
    return f"{(to - frm) / frm * 100:+.2f}%"


def _market_block(
    bars: Sequence[Bar], interval: str, digits: int, masked: bool = False
) -> tuple[list[str], dict[str, Any]]:
    if not bars:
        return ["Candles: none available from the exchange for this window (no indicators)."], {}
    values = snapshot(bars, digits)
    htf = higher_timeframe(bars, digits)
    return [
        f"Indicators at the analysed close (from the {len(bars)} candles below): {_indicators(values)}",
        f"Higher timeframe (bars of {htf.get('candles_per_bar', '?')} x {interval}): {json.dumps(htf)}",
        f"Candles ({interval}, oldest first; i=0 is the analysed candle"
        + ("; times hidden):" if masked else "; time = its open, UTC):"),
        candle_table(bars, digits, masked=masked),
    ], values


def analysis_prompt(input: AnalyzeSignalInput, bars: Sequence[Bar], min_rr: float, masked: bool = False) -> Rendered:
    """`masked`: times hidden (the caller has hidden the symbol and rescaled the prices)."""
    ctx = input.context
    iso = _hidden if masked else _iso
    last = bars[-1].c if bars else (ctx.price or 0.0)
    digits = price_digits(last)
    price = float(input.candle.c) if input.candle is not None else (ctx.price or last)
    # A close time is the last millisecond of the candle: shown as the minute it ends on.
    when = input.candle.close_time() + timedelta(milliseconds=1) if input.candle is not None else ctx.signal_time
    by_open = {b.t: b.c for b in bars}
    lines = [
        f"Operation: analyze-signal, analysis #{input.analysis_number} (reanalyses allowed: {input.max_reanalyses}).",
        f"Symbol {ctx.symbol}, interval {ctx.interval}. Analysed close: {iso(when)}, price {price:.{digits}f}.",
        f"Signal: price {_g(ctx.price, digits)} at {iso(ctx.signal_time)}, "
        f"change {ctx.change_percent if ctx.change_percent is not None else 'n/a'}%, "
        f"volume {ctx.volume if ctx.volume is not None else 'n/a'}, "
        f"indicator_data {json.dumps(ctx.indicator_data, default=str)[:600]}.",
        f"Trader's strategy: {_strategy(ctx.strategy)}",
    ]
    if input.previous_decisions:
        lines.append("Previous decisions (oldest first; price move since each to the analysed close):")
        for d in input.previous_decisions[-5:]:
            at = by_open.get(d.candleOpenTime) if d.candleOpenTime is not None else ctx.price
            reasoning = " ".join(d.reasoning.split())[:MAX_REASONING_CHARS]
            lines.append(f"- {d.decision} {d.confidence:g}% (move since: {_pct(at, price)}): {reasoning}")
    else:
        lines.append("Previous decisions: none.")
    market, values = _market_block(bars, ctx.interval, digits, masked)
    return _rendered(ANALYSIS_SYSTEM.format(min_rr=min_rr), "\n".join([*lines, *market]), values)


def _d(value: Decimal | None, digits: int) -> str:
    return "none" if value is None else f"{float(value):.{digits}f}"


def management_prompt(
    input: ManagePositionInput, bars: Sequence[Bar], held_seconds: float | None, masked: bool = False
) -> Rendered:
    ctx = input.context
    iso = _hidden if masked else _iso
    digits = price_digits(float(input.market_price))
    held = f"{held_seconds / 60:.0f} min" if held_seconds is not None else "n/a"
    lines = [
        "Operation: manage-position.",
        f"Symbol {ctx.symbol}, interval {ctx.interval}. "
        f"This close: {iso(input.candle.close_time() + timedelta(milliseconds=1))}, "
        f"market price {_d(input.market_price, digits)}.",
        f"Position: {ctx.side}, entry {_d(input.entry_price, digits)}, size {input.position_size}, "
        f"P&L {float(input.current_pnl):.4f} ({float(input.current_pnl_pct):+.2f}%), "
        f"stop {_d(input.current_sl, digits)}, take-profits "
        f"{', '.join(_d(t, digits) for t in input.current_tp) or 'none'}, held {held}.",
        f"Trader's strategy: {_strategy(ctx.strategy)}",
    ]
    if input.previous_decisions:
        lines.append("Previous management decisions (oldest first):")
        for d in input.previous_decisions[-5:]:
            reasoning = " ".join(d.reasoning.split())[:MAX_REASONING_CHARS]
            conf = f" {d.confidence:g}%" if d.confidence is not None else ""
            lines.append(f"- {d.action}{conf}: {reasoning}")
    else:
        lines.append("Previous management decisions: none.")
    market, values = _market_block(bars, ctx.interval, digits, masked)
    return _rendered(MANAGEMENT_SYSTEM, "\n".join([*lines, *market]), values)


def reask(rendered: Rendered, answer_text: str, errors: Sequence[str]) -> list[dict[str, str]]:
    """The one re-ask: the same messages, the unusable answer, and what was wrong with it."""
    return [
        *rendered.messages,
        {"role": "assistant", "content": answer_text[:4000]},
        {
            "role": "user",
            "content": "That answer cannot be used: "
            + "; ".join(errors)[:1500]
            + ". Answer again with one JSON object only, exactly as specified.",
        },
    ]
