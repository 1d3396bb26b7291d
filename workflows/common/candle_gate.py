"""The candle gate both workflows share: which `candle_closed` payloads are believed at all. Pure.

A payload is first decoded (`decode_counted`): too large, not a kline, or a kline that could not be
real (see `Kline`) is refused before it touches state. The rules every receiver applies to a decoded
kline (not this stream's, not closed, from the future) and their counting are here; each workflow's
own `candle_gate` classifies against its state and applies the verdict."""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum

from pydantic import ValidationError

from market.intervals import INTERVAL_MS
from workflows.common.candles import Kline, interval_length_ms
from workflows.common.models import CandleCounts
from workflows.common.timefmt import utc_text

# A real kline object is about 350 bytes of JSON; anything much larger is not one, and keeping it
# would let one sender push the monitor toward the history size limit.
MAX_CANDLE_PAYLOAD_BYTES = 8 * 1024
# Bounded memory of open times seen, to tell a repeated candle (duplicate) from an old one (stale):
# the monitor's and the position's.
RECENT_CANDLES_KEPT = 64


class Verdict(StrEnum):
    TAKE = "take"  # the newest close: it waits for the next analysis (superseding any waiting one)
    SUPERSEDED = "skipped"  # newer than the last analysis, older than the close already waiting
    DUPLICATE = "duplicate"
    STALE = "stale"
    BEHIND = "behind"  # stale too: older than the last analysed close (remembered, so a copy is a duplicate)
    FOREIGN = "foreign"
    OPEN = "open"
    FUTURE = "future"


class Refused(StrEnum):
    OVERSIZED = "oversized"
    MALFORMED = "malformed"


def encoded_size(args: tuple[object, ...]) -> int:
    """Bytes of the payloads as JSON (what the sender put on the wire, near enough)."""
    try:
        return len(json.dumps(list(args), separators=(",", ":"), default=str).encode())
    except (TypeError, ValueError):  # pragma: no cover - decoded JSON always encodes again
        return MAX_CANDLE_PAYLOAD_BYTES + 1


def decode(args: tuple[object, ...]) -> Kline | tuple[Refused, str]:
    """Exactly one payload, no larger than the bound, that is a kline that could be real."""
    size = encoded_size(args)
    if size > MAX_CANDLE_PAYLOAD_BYTES:
        return Refused.OVERSIZED, f"{size} bytes (more than {MAX_CANDLE_PAYLOAD_BYTES})"
    if len(args) != 1:
        return Refused.MALFORMED, f"expected one kline object, got {len(args)} inputs"
    try:
        return Kline.model_validate(args[0])
    except ValidationError as exc:
        return Refused.MALFORMED, "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'kline'}: {e['msg']}" for e in exc.errors()[:5]
        )


def decode_counted(counts: CandleCounts, args: tuple[object, ...]) -> Kline | str:
    """One `candle_closed` signal's inputs, counted: the kline, or why they were refused."""
    counts.received += 1
    decoded = decode(args)
    if isinstance(decoded, Kline):
        return decoded
    refused, why = decoded
    if refused is Refused.OVERSIZED:
        counts.oversized += 1
    else:
        counts.malformed += 1
    return f"ignored {refused} candle_closed payload: {why}"


def foreign_or_open(k: Kline, symbol: str, interval: str) -> Verdict | None:
    """Not this stream's close, or not a close at all (the rules every receiver shares)."""
    if k.s.upper() != symbol or k.i != interval:
        return Verdict.FOREIGN
    if not k.x:
        return Verdict.OPEN
    return None


def from_the_future(k: Kline, interval: str, now_ms: int) -> bool:
    """Opening later than now plus one interval: no real close can, and taking it would make
    every real close after it stale."""
    return k.t > now_ms + _interval_ms(interval, now_ms)


def count_refused(counts: CandleCounts, verdict: Verdict) -> None:
    """A close not taken, counted under its verdict (BEHIND is stale too)."""
    if verdict in (Verdict.STALE, Verdict.BEHIND):
        counts.stale += 1
    elif verdict is Verdict.DUPLICATE:
        counts.duplicate += 1
    elif verdict is Verdict.FOREIGN:
        counts.foreign += 1
    elif verdict is Verdict.OPEN:
        counts.open += 1
    elif verdict is Verdict.FUTURE:
        counts.future += 1


def _interval_ms(interval: str, at_ms: int) -> int:
    return interval_length_ms(interval, at_ms) or INTERVAL_MS["1d"] or 86_400_000


def judged(
    verdict_of: Callable[[bool], Verdict], k: Kline, refuse_future: Callable[[], bool]
) -> tuple[Verdict, str | None]:
    """The verdict on `k` under the rule refusing closes from the future, for both workflows:
    `verdict_of(check_future)`; the patch check `refuse_future` is asked only for such a close
    (where it is off, the close is judged as before the rule). With the note worth a warning."""
    verdict = verdict_of(True)
    if verdict is not Verdict.FUTURE:
        return verdict, None
    if refuse_future():
        return verdict, f"ignored a close from the future (open {utc_text(k.t)})"
    return verdict_of(False), None
