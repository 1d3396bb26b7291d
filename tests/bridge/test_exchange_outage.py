"""Binance unreachable for a few seconds: the bridge retries with capped, jittered exponential
backoff (a handful of attempts, not a storm), then reconnects, backfills from REST what closed
meanwhile, and the monitor goes on with nothing analysed twice."""

from __future__ import annotations

import asyncio

from fakes.binance import FakeBinance
from fakes.llm_proxy import Answer
from tests.helpers.bridge import (
    analysed_candles,
    assert_each_once,
    assert_fake_rules_kept,
    bridge_config,
    replay_start,
    running_bridge,
)
from tests.helpers.monitor import monitor_stack
from tests.helpers.support import eventually, insert_signal

KEY = ("DOGEUSDT", "1m")
OUTAGE_S = 4.0


async def test_exchange_outage_backs_off_then_recovers(client, database_url, db):
    start = replay_start()  # the fake replays from here, never past the wall clock
    row = await insert_signal(db, symbol=KEY[0], interval=KEY[1], timestamp=start, max_reanalyses=100)
    first = await FakeBinance(start=start, speed=30, auto_series=True).start()
    second = None
    try:
        async with monitor_stack(client, database_url) as m:
            m.proxy.script(row.signal_id, *[Answer.wait(55) for _ in range(100)])
            handle = await m.start(row.signal_id)
            cfg = bridge_config(first, m.task_queue, reconnect_initial=0.2, reconnect_max=1.6)
            async with running_bridge(client, cfg) as stats:

                async def analysed(n):
                    times = await analysed_candles(db, row.signal_id)
                    assert len(times) >= n
                    return times

                before = await eventually(lambda: analysed(1), timeout=30)
                await first.stop()  # the exchange is gone: connections closed, new ones refused
                failures = stats.connect_failures
                await asyncio.sleep(OUTAGE_S)
                attempts = stats.connect_failures - failures
                # Binance is back on the same address, with the same clock and history.
                second = FakeBinance(port=first.port, speed=30, auto_series=True)
                second.clock, second.market = first.clock, first.market
                await second.start()

                async def recovered():
                    assert stats.connections_open == 1 and stats.backfilled >= 1
                    times = await analysed_candles(db, row.signal_id)
                    assert max(times) > max(before) + 60_000 * int(OUTAGE_S * 30 / 60)
                    return times

                await eventually(recovered, timeout=30, interval=0.2)
                snap, counts = stats.snapshot(), stats.counters()
            await handle.terminate("test over")
            times = await analysed_candles(db, row.signal_id)
    finally:
        await first.stop()
        if second is not None:
            await second.stop()

    # 0.2 s doubling to a 1.6 s cap with equal jitter: at most ~7 attempts in 4 s (a retry
    # loop without backoff would make hundreds).
    assert 2 <= attempts <= 8, attempts
    assert counts["reconnects"] >= 1
    assert_each_once(times)
    assert_fake_rules_kept(second)
    print(
        f"\nexchange outage: {OUTAGE_S:.0f} s down, {attempts} connection attempts, backfilled={snap['backfilled']} "
        f"forwarded={snap['closes_forwarded']} latency ms={snap['signal_latency_ms']}"
    )
