"""A live candle series: real recorded tracks replayed on fresh open times, on the fake's
(possibly compressed) clock, the way Binance emits them: a few `x:false` updates while the
candle is open, the `x:true` close a little after `T`, sometimes a late `x:false` after that."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from market.intervals import interval_ms

from .exchange import LiveCandle, kline_frame
from .recorded import Snapshot, rebased_tracks

if TYPE_CHECKING:
    from .server import FakeBinance

log = logging.getLogger("fakes.binance")


@dataclass(frozen=True)
class SeriesOptions:
    updates_per_candle: int = 2
    close_lag_ms: int = 300  # virtual ms after T: Binance is seen 0.2-2.5 s late
    late_update_every: int = 3  # every Nth candle, an x:false of it arrives after its close
    history: int = 5  # closed candles REST knows before the series starts
    start_price: str | None = None


def _spread(updates: tuple[Snapshot, ...], n: int) -> list[Snapshot]:
    if len(updates) <= n:
        return list(updates)
    step = len(updates) / n
    return [updates[int(i * step)] for i in range(n)]


class _Cursor:
    """Where a series stands: its value source, next open time and trade id."""

    def __init__(self, fake: FakeBinance, symbol: str, interval: str, opts: SeriesOptions) -> None:
        self.iv = iv = interval_ms(interval)  # UnknownInterval (a ValueError) for 1M: no fixed length
        self.tracks = rebased_tracks(opts.start_price or fake.start_price(symbol))
        self.trade_id = 1_000_000
        self.t = fake.clock.now_ms() // iv * iv - opts.history * iv
        # REST history before the first live candle, there as soon as the series exists
        # (a bridge restarting now can backfill from it).
        for _ in range(opts.history):
            track = next(self.tracks)
            fake.market.close(LiveCandle(symbol, interval, self.t, self.t + iv - 1, track[-1], self.trade_id))
            self.trade_id += track[-1].n
            self.t += iv


def start_cursor(fake: FakeBinance, symbol: str, interval: str, opts: SeriesOptions) -> _Cursor:
    return _Cursor(fake, symbol, interval, opts)


async def run_series(fake: FakeBinance, symbol: str, interval: str, opts: SeriesOptions, cursor: _Cursor) -> None:
    clock, market, faults, key = fake.clock, fake.market, fake.faults, (symbol, interval)
    iv, tracks, trade_id, t = cursor.iv, cursor.tracks, cursor.trade_id, cursor.t
    index = 0
    while True:
        index += 1
        track = next(tracks)
        T = t + iv - 1
        if faults.take_gap(key):
            # An exchange outage: this candle exists nowhere, REST included.
            log.info("fake: gap %s %s t=%d", symbol, interval, t)
            await clock.sleep_until(T + opts.close_lag_ms)
            t += iv
            continue
        updates = _spread(track[:-1] or track[-1:], opts.updates_per_candle)
        candle = LiveCandle(symbol, interval, t, T, updates[0], trade_id)
        market.set_open(candle)
        for j, snap in enumerate(updates):
            await clock.sleep_until(t + (j + 1) * iv // (len(updates) + 1))
            candle.snap = snap
            await fake.publish(kline_frame(candle.k(False), clock.now_ms()))
        candle.snap = track[-1]
        await clock.sleep_until(T + opts.close_lag_ms)
        market.close(candle)
        closed_k = candle.k(True)
        if faults.take_drop(key):
            fake.stats.closes_dropped += 1
        else:
            late = faults.take_late(key)
            copies = 2 if faults.take_duplicate(key) else 1
            fake.stats.closes_duplicated += copies - 1
            if late:
                fake.stats.closes_delayed += 1
                fake.spawn(_publish_later(fake, closed_k, late, copies))
            else:
                for _ in range(copies):
                    await fake.publish(kline_frame(closed_k, clock.now_ms()))
                    fake.stats.closes_sent += 1
        if opts.late_update_every and index % opts.late_update_every == 0:
            # Real traffic: an x:false for the old candle after its T (and after its close).
            # Its event time is past T; it is still not a close.
            await fake.publish(kline_frame(candle.k(False), clock.now_ms()))
            fake.stats.late_updates_sent += 1
        trade_id += track[-1].n
        t += iv


async def _publish_later(fake: FakeBinance, k: dict, delay: float, copies: int) -> None:
    await asyncio.sleep(delay)
    for _ in range(copies):
        await fake.publish(kline_frame(k, fake.clock.now_ms()))
        fake.stats.closes_sent += 1
