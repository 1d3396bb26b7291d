"""Which `candle_closed` signals a position manager takes: the monitor's candle gate (decoding,
plausibility, foreign/open, closes from the future: `candle_gate`) and what is the position's own:
only closes after the candle that decided the entry, each once, in order."""

from __future__ import annotations

from workflows.candle_gate import Verdict, foreign_or_open, from_the_future
from workflows.candles import Kline


def classify(
    k: Kline,
    *,
    symbol: str,
    interval: str,
    after_t: int | None,
    opened_ms: int | None,
    last_taken_t: int | None,
    seen_t: list[int],
    now_ms: int,
    check_future: bool = True,
) -> Verdict:
    """TAKE, or why not. `check_future=False` is the rule before closes from the future were
    refused (kept for histories recorded before it)."""
    if (verdict := foreign_or_open(k, symbol, interval)) is not None:
        return verdict
    # The deciding candle (and anything before it) priced the entry already; a position started by
    # hand without one manages the closes after its start.
    if (after_t is not None and k.t <= after_t) or (after_t is None and opened_ms is not None and k.T <= opened_ms):
        return Verdict.STALE
    if check_future and from_the_future(k, interval, now_ms):
        return Verdict.FUTURE
    if k.t in seen_t:
        return Verdict.DUPLICATE
    if last_taken_t is not None and k.t < last_taken_t:
        return Verdict.STALE
    return Verdict.TAKE
