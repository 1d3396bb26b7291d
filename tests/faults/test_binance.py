"""Fault suite, Binance: one bridge and one worker through every way the exchange misbehaves, one
after another on a live stream (1m candles, 30x compressed): an abrupt disconnect, `serverShutdown`
then 1001, a bare 1001, a 1008 close, a duplicate close, a late close, a dropped close (fetched from
REST, which first answers 429), frames with wrong types. A second monitor watches a symbol Binance
does not list. Every close the exchange made while its monitor listened is analysed exactly once.
(tests/bridge/test_rotation.py, test_faults.py and test_exchange_outage.py check
the bridge's own bookkeeping of each fault.)"""

from __future__ import annotations

import asyncio
import json
from functools import partial

import pytest

from fakes.binance import FakeBinance
from fakes.llm_proxy import Answer, always
from tests.helpers.bridge import assert_fake_rules_kept, bridge_config, replay_start, running_bridge, unique_symbol
from tests.helpers.fault_checks import Expectation, assert_three_checks, closes_between, kline_floor
from tests.helpers.monitor import monitor_stack
from tests.helpers.support import eventually, insert_signal
from workflows.monitor.workflow import SignalMonitorWorkflow

INTERVAL = "1m"


def wrong_type_frames(symbol: str, t: int) -> list[str]:
    stream = f"{symbol.lower()}@kline_{INTERVAL}"
    k = {
        "t": t,
        "T": t + 59_999,
        "s": symbol,
        "i": INTERVAL,
        "o": "1",
        "c": "1",
        "h": "1",
        "l": "1",
        "v": "1",
        "n": 1,
        "x": True,
        "q": "1",
        "V": "1",
        "Q": "1",
        "B": "0",
        "f": 1,
        "L": 2,
    }
    bad = [dict(k, t=str(t)), dict(k, x="yes"), dict(k, T=None), dict(k, s=123), dict(k, i=60)]
    frames = [json.dumps({"stream": stream, "data": {"e": "kline", "E": t, "s": symbol, "k": b}}) for b in bad]
    frames += [
        json.dumps({"stream": stream, "data": {"e": "kline", "E": t, "s": symbol, "k": [1, 2, 3]}}),
        json.dumps({"stream": stream, "data": "kline"}),
        json.dumps([stream]),
        "not json at all {",
        json.dumps({"result": "unexpected", "id": "x"}),
    ]
    return frames


@pytest.mark.slow  # ~20-30 s (tests/README: `pytest -m "not slow"` for a quick loop)
async def test_every_binance_fault_then_each_close_analysed_once(client, database_url, db):
    start = replay_start()  # the fake replays from here, never past the wall clock
    symbol = unique_symbol("F")
    unlisted = unique_symbol("NOLIST")
    key = (symbol, INTERVAL)
    row = await insert_signal(db, symbol=symbol, interval=INTERVAL, timestamp=start, max_reanalyses=1000)
    lonely = await insert_signal(db, symbol=unlisted, interval=INTERVAL, timestamp=start)
    # auto_series off: only `symbol` trades; `unlisted` has no stream data and REST says "Invalid symbol."
    async with FakeBinance(start=start, speed=30, shutdown_grace=0.3) as fake, monitor_stack(client, database_url) as m:
        fake.start_series(*key)
        m.proxy.default = always(Answer.wait(55))
        handle = await m.start(row.signal_id)
        await m.start(lonely.signal_id)
        cfg = bridge_config(fake, m.task_queue, missing_close_grace=0.5)
        async with running_bridge(client, cfg) as stats:

            async def closes_forwarded(n: int) -> None:
                assert stats.closes_forwarded >= n, stats.snapshot()

            async def progress(steps: int = 1) -> None:
                await eventually(partial(closes_forwarded, stats.closes_forwarded + steps), timeout=30)

            async def reconnected(connects: int) -> None:
                assert stats.connects > connects and stats.connections_open >= 1

            await progress()
            for fault in ("abrupt", "shutdown", "1001", "1008"):
                connects = stats.connects
                if fault == "abrupt":
                    assert await fake.disconnect_all() >= 1
                elif fault == "shutdown":
                    assert await fake.rotate_all(announce=True) >= 1
                elif fault == "1001":
                    assert await fake.rotate_all(announce=False) >= 1
                else:
                    await asyncio.gather(*(c.close(1008, "Invalid request") for c in list(fake.connections)))
                await eventually(partial(reconnected, connects), timeout=30)
                await progress()
            fake.duplicate_next_close(*key)
            await progress()
            fake.delay_next_close(*key, seconds=0.4)
            await progress()
            # The dropped close is fetched from REST after its 429, or superseded by a newer close
            # that arrived over the WebSocket during the Retry-After pause; either way it is counted.
            backfilled, missed = stats.backfilled, stats.backfill_missed_candles
            fake.rest_rate_limit(times=1, retry_after=1.0)
            fake.drop_next_close(*key)
            await eventually(
                lambda: _true(
                    stats.rest_rate_limited >= 1
                    and (stats.backfilled > backfilled or stats.backfill_missed_candles > missed)
                ),
                timeout=30,
            )
            newest = fake.market.closed[key][-1].t
            for frame in wrong_type_frames(symbol, newest + 60_000):
                await fake.send_raw(frame, f"{symbol.lower()}@kline_{INTERVAL}")
            await progress(2)
            # The exchange stops here; the bridge catches up with what it made.
            fake.series_tasks.pop(key).cancel()
            await asyncio.sleep(1.0)
            await eventually(lambda: _true(stats.delivery_backlog == 0), timeout=30)
            made = [c.t for c in fake.market.closed[key]]
            closes = closes_between(made, after_ms=kline_floor(row.timestamp))
            skipped = (await handle.query(SignalMonitorWorkflow.state)).counts.skipped
            allowed = stats.backfill_missed_candles + stats.signals_superseded + skipped
            fig = await assert_three_checks(
                client,
                db,
                "binance: disconnect, serverShutdown, 1001, 1008, duplicate, late, dropped + REST 429, "
                "wrong types, unlisted symbol",
                [Expectation(row.signal_id, closes, superseded_allowed=allowed), Expectation(lonely.signal_id, set())],
                timeout=60,
            )
            snap, counts = stats.snapshot(), stats.counters()
    assert fig.closes_in >= 10
    assert counts["duplicates_dropped"] >= 1 and counts["backfilled"] >= 1 and counts["rest_rate_limited"] >= 1
    assert counts["server_shutdowns"] >= 1 and counts["malformed_frames"] >= 5
    assert fake.stats.closes_dropped == 1 and fake.stats.closes_duplicated == 1
    assert_fake_rules_kept(fake)
    print(
        f"\nbinance faults: {fig.summary()} bridge={ {k: snap[k] for k in ('reconnects', 'rotations', 'backfilled', 'backfill_missed_candles', 'signals_superseded', 'malformed_frames')} }"
    )


async def _true(condition: bool) -> None:
    assert condition
