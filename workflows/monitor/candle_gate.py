"""Which closes the monitor takes, and what it does with each: the shared gate (`common.candle_gate`:
decoding, plausibility, foreign/open, closes from the future) and the monitor's own rules against the
signal and its de-duplication state (`classify`), applied by `admit`. Pure: it reads and updates the
monitor's state model, nothing else."""

from __future__ import annotations

from collections.abc import Callable

from workflows.common import candle_gate as gate
from workflows.common.candle_gate import RECENT_CANDLES_KEPT, Verdict
from workflows.common.candles import Kline, candle_open_containing
from workflows.common.timefmt import datetime_to_ms
from workflows.monitor.models import MonitorState, SignalContext

SKIPPED_KEPT = 50


def classify(state: MonitorState, ctx: SignalContext, k: Kline, now_ms: int, *, check_future: bool = True) -> Verdict:
    """The verdict on a decoded kline. `check_future=False` is the rule before closes from the
    future were refused (kept for histories recorded before it)."""
    if (verdict := gate.foreign_or_open(k, ctx.symbol, ctx.interval)) is not None:
        return verdict
    if state.result is not None:
        return Verdict.STALE
    signal_ms = datetime_to_ms(ctx.signal_time)
    # Closed before the signal was raised: the first analysis already saw it.
    if k.T <= signal_ms:
        return Verdict.STALE
    signal_candle = candle_open_containing(ctx.interval, signal_ms)
    if signal_candle is not None and k.t < signal_candle:
        return Verdict.STALE
    if check_future and gate.from_the_future(k, ctx.interval, now_ms):
        return Verdict.FUTURE
    pending = state.pending
    if k.t in state.recent_t or (pending is not None and k.t == pending.t):
        return Verdict.DUPLICATE
    if state.last_taken_t is not None and k.t < state.last_taken_t:
        return Verdict.BEHIND
    if pending is not None and k.t < pending.t:
        return Verdict.SUPERSEDED
    return Verdict.TAKE


def admit(state: MonitorState, k: Kline, verdict: Verdict) -> None:
    """Apply a verdict: count it and update the de-duplication state."""
    if verdict is Verdict.TAKE:
        if state.pending is not None:
            skip(state, state.pending.t)
        state.pending = k
        remember(state, k.t)
    elif verdict is Verdict.SUPERSEDED:
        skip(state, k.t)
        remember(state, k.t)
    else:
        gate.count_refused(state.counts, verdict)
        if verdict is Verdict.BEHIND:
            remember(state, k.t)


def take(state: MonitorState, k: Kline) -> None:
    """The analysis of `k` begins: it becomes the de-duplication point if it is the newest."""
    if state.last_taken_t is None or k.t > state.last_taken_t:
        state.last_taken_t = k.t
    remember(state, k.t)


def remember(state: MonitorState, t: int) -> None:
    if t not in state.recent_t:
        state.recent_t.append(t)
        del state.recent_t[:-RECENT_CANDLES_KEPT]


def skip(state: MonitorState, t: int) -> None:
    state.counts.skipped += 1
    state.skipped_t.append(t)
    del state.skipped_t[:-SKIPPED_KEPT]


def receive(
    state: MonitorState, args: tuple[object, ...], now_ms: int, refuse_future: Callable[[], bool]
) -> str | None:
    """One `candle_closed` signal, whatever its inputs: counted, then filed (or kept until the
    signal is loaded). Returns why it was ignored when that is worth a warning."""
    decoded = gate.decode_counted(state.counts, args)
    if not isinstance(decoded, Kline):
        return decoded
    if state.context is None:
        state.early.append(decoded)
        return None
    return file(state, state.context, decoded, now_ms, refuse_future)


def file(
    state: MonitorState, ctx: SignalContext, k: Kline, now_ms: int, refuse_future: Callable[[], bool]
) -> str | None:
    """Classify and admit a decoded kline. `refuse_future` says whether the rule refusing closes
    from the future applies (it is the workflow's patch check, asked only when it matters)."""
    verdict, note = gate.judged(lambda check: classify(state, ctx, k, now_ms, check_future=check), k, refuse_future)
    admit(state, k, verdict)
    return note
