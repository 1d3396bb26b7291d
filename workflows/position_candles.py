"""Which `candle_closed` signals a position manager takes: the monitor's acceptance rules, for the
position's symbol and management interval, after the candle that decided the entry."""

from __future__ import annotations

from typing import Literal

from workflows.candles import Kline

Verdict = Literal["accept", "foreign", "open", "stale", "duplicate"]


def classify(
    k: Kline,
    *,
    symbol: str,
    interval: str,
    after_t: int | None,
    opened_ms: int | None,
    last_taken_t: int | None,
    seen_t: list[int],
) -> Verdict:
    if k.s.upper() != symbol or k.i != interval:
        return "foreign"
    if not k.x:
        return "open"
    # The deciding candle (and anything before it) priced the entry already; a position started by
    # hand without one manages the closes after its start.
    if (after_t is not None and k.t <= after_t) or (after_t is None and opened_ms is not None and k.T <= opened_ms):
        return "stale"
    if k.t in seen_t:
        return "duplicate"
    if last_taken_t is not None and k.t < last_taken_t:
        return "stale"
    return "accept"
