"""Each replayed symbol sits at its own plausible level, and the demo's replay clock never runs
ahead of the wall clock (pure: no server)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from fakes.binance.exchange import Clock
from fakes.binance.levels import default_level, price_level, tick_size
from fakes.binance.recorded import rebased_tracks, recorded_levels

LEVELS = {"BTCUSDT": 43000, "ETHUSDT": 2300, "SOLUSDT": 100, "ADAUSDT": 0.5, "DOGEUSDT": 0.08, "XRPUSDT": 0.6}


def test_well_known_symbols_replay_near_their_typical_level_with_sensible_ticks():
    for symbol, level in LEVELS.items():
        found = price_level(symbol, recorded_levels())
        assert found.source == "typical" and float(found.price) == level
        assert "not a live price" in found.label(symbol)
        closes = [Decimal(track[-1].c) for _, track in zip(range(50), rebased_tracks(str(found.price)), strict=False)]
        assert all(level * 0.8 < float(c) < level * 1.2 for c in closes), (symbol, closes[:5])
        # At least ~5 significant digits, never 20 (the old 0.3417983299999... prices).
        digits = len(str(closes[-1]).replace(".", "").lstrip("0"))
        assert 4 <= digits <= 8, closes[-1]


def test_a_symbol_the_shipped_frames_have_keeps_its_recorded_level_and_unknown_ones_a_stable_default():
    recorded = recorded_levels()
    assert recorded["FTMUSDT"] == "0.34064000"
    assert price_level("ftmusdt", recorded).source == "recorded"
    unknown = price_level("ZZZUSDT", recorded)
    assert unknown.source == "default" and unknown.price == default_level("ZZZUSDT")
    assert Decimal("0.1") <= unknown.price <= Decimal("100")
    assert price_level("ZZZUSDT").price == unknown.price != price_level("YYYUSDT").price
    assert tick_size(Decimal("43000")) == Decimal("0.01") and tick_size(Decimal("0.08")) == Decimal("0.0000001")


async def test_the_demo_clock_starts_in_the_past_runs_fast_then_follows_the_wall_clock():
    wall = int(time.time() * 1000)
    clock = Clock(600, wall - 60_000, follow_wall_clock=True)  # one virtual minute behind, x600
    assert clock.now_ms() < wall and not clock.caught_up()
    await clock.sleep_until(wall - 30_000)  # 30 virtual seconds at x600: about 0.05 s
    assert time.time() * 1000 - wall < 1000
    await asyncio.sleep(0.15)
    assert clock.caught_up()
    for _ in range(5):
        assert clock.now_ms() <= time.time() * 1000
        await asyncio.sleep(0.02)
    started = time.monotonic()
    await clock.sleep_until(clock.now_ms() + 300)  # now at real time: 300 ms take 300 ms
    assert time.monotonic() - started >= 0.28


def test_the_test_clock_still_runs_ahead_when_asked():
    clock = Clock(60)
    assert not clock.follow_wall_clock and not clock.caught_up()
