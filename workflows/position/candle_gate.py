"""Which `candle_closed` signals a position manager takes: the shared candle gate (decoding,
plausibility, foreign/open, closes from the future: `common.candle_gate`) and what is the position's own:
only closes after the candle that decided the entry, each once, in order. Pure: it reads and
updates the position's state model, nothing else."""

from __future__ import annotations

from collections.abc import Callable

from workflows.common import candle_gate as gate
from workflows.common.candle_gate import RECENT_CANDLES_KEPT, Verdict
from workflows.common.candles import Kline
from workflows.common.timefmt import datetime_to_ms
from workflows.position.models import PositionContext, PositionState, PositionStatus

# Closes waiting for the main loop; beyond this the oldest is dropped (counted as superseded).
QUEUE_MAX = 500


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
    if (verdict := gate.foreign_or_open(k, symbol, interval)) is not None:
        return verdict
    # The deciding candle (and anything before it) priced the entry already; a position started by
    # hand without one manages the closes after its start.
    if (after_t is not None and k.t <= after_t) or (after_t is None and opened_ms is not None and k.T <= opened_ms):
        return Verdict.STALE
    if check_future and gate.from_the_future(k, interval, now_ms):
        return Verdict.FUTURE
    if k.t in seen_t:
        return Verdict.DUPLICATE
    if last_taken_t is not None and k.t < last_taken_t:
        return Verdict.STALE
    return Verdict.TAKE


def verdict(s: PositionState, ctx: PositionContext, k: Kline, now_ms: int, *, check_future: bool = True) -> Verdict:
    """`classify` against the position's state: closes taken or waiting are seen already."""
    return classify(
        k,
        symbol=ctx.symbol,
        interval=ctx.interval,
        after_t=s.after_t,
        opened_ms=datetime_to_ms(s.opened_at) if s.opened_at else None,
        last_taken_t=s.last_taken_t,
        seen_t=s.recent_t + [q.t for q in s.queue],
        now_ms=now_ms,
        check_future=check_future,
    )


def receive(
    s: PositionState, early: list[Kline], args: tuple[object, ...], now_ms: int, refuse_future: Callable[[], bool]
) -> str | None:
    """One `candle_closed` signal, whatever its inputs: counted, then filed, or kept in `early`
    until the position is open (or known not to open). Returns why it was ignored when that is
    worth a warning."""
    decoded = gate.decode_counted(s.counts, args)
    if not isinstance(decoded, Kline):
        return decoded
    if s.context is None or s.status == PositionStatus.OPENING:
        early.append(decoded)
        return None
    return file(s, s.context, decoded, now_ms, refuse_future)


def file(
    s: PositionState, ctx: PositionContext, k: Kline, now_ms: int, refuse_future: Callable[[], bool]
) -> str | None:
    """Classify a decoded kline and queue it (in open-time order) or count why not. Only an open
    position takes closes. `refuse_future` says whether the rule refusing closes from the future
    applies (the workflow's patch check, asked only where such a close arrives). Returns why it
    was ignored when that is worth a warning."""
    if s.status != PositionStatus.OPEN:
        s.counts.stale += 1
        return None
    found, note = gate.judged(lambda check: verdict(s, ctx, k, now_ms, check_future=check), k, refuse_future)
    if found is not Verdict.TAKE:
        gate.count_refused(s.counts, found)
        return note
    s.queue.append(k)
    s.queue.sort(key=lambda q: q.t)
    if len(s.queue) > QUEUE_MAX:
        s.queue.pop(0)
        s.counts.superseded += 1
    return note


def take(s: PositionState, k: Kline) -> None:
    """The close `k` is being managed: it is the de-duplication point if it is the newest."""
    s.last_taken_t = max(k.t, s.last_taken_t or k.t)
    if k.t not in s.recent_t:
        s.recent_t.append(k.t)
        del s.recent_t[:-RECENT_CANDLES_KEPT]
