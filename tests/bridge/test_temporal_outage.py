"""Losing Temporal for a while loses no close: the bridge reaches Temporal through a TCP relay
the test cuts for a few seconds; the closes of the outage are retried until delivered or
superseded by a newer close of the same stream, and nothing is analysed twice."""

from __future__ import annotations

import pytest

from fakes.binance import FakeBinance
from fakes.llm_proxy import Answer
from tests.helpers.bridge import (
    analysed_candles,
    assert_each_once,
    assert_fake_rules_kept,
    bridge_config,
    forwarded_times,
    relayed_client,
    replay_start,
    running_bridge,
)
from tests.helpers.monitor import monitor_stack
from tests.helpers.support import eventually, insert_signal

KEY = ("ADAUSDT", "1m")


@pytest.mark.slow  # ~20-30 s (tests/README: `pytest -m "not slow"` for a quick loop)
async def test_closes_survive_a_temporal_outage(client, database_url, db, temporal_address):
    start = replay_start()  # the fake replays from here, never past the wall clock
    row = await insert_signal(db, symbol=KEY[0], interval=KEY[1], timestamp=start, max_reanalyses=100)
    async with (
        relayed_client(client, temporal_address) as (relay, bridge_client),
        FakeBinance(start=start, speed=30, auto_series=True) as fake,
        monitor_stack(client, database_url) as m,
    ):
        m.proxy.script(row.signal_id, *[Answer.wait(55) for _ in range(100)])
        handle = await m.start(row.signal_id)
        cfg = bridge_config(fake, m.task_queue, signal_timeout=1.0, retry_initial=0.5, retry_max=1.0)
        async with running_bridge(bridge_client, cfg) as stats:

            async def analysed(n):
                times = await analysed_candles(db, row.signal_id)
                assert len(times) >= n
                return times

            await eventually(lambda: analysed(1), timeout=30)
            relay.cut()
            forwarded_before = len(forwarded_times(stats, *KEY))

            async def closes_during_outage():
                assert len(forwarded_times(stats, *KEY)) >= forwarded_before + 2
                assert stats.signal_failures >= 2
                # The retry path ran while Temporal was still away (else a live close after the
                # outage can supersede the failed one before its first retry).
                assert stats.signals_retried >= 1

            await eventually(closes_during_outage, timeout=30)
            during = forwarded_times(stats, *KEY)[forwarded_before:]
            relay.down = False

            async def newest_of_outage_analysed():
                times = await analysed_candles(db, row.signal_id)
                assert max(during) in times or max(times) > max(during)
                return times

            times = await eventually(newest_of_outage_analysed, timeout=30, interval=0.3)
            # Delivered or superseded: nothing left waiting.
            await eventually(lambda: _true(stats.signals_retried >= 1 and stats.delivery_backlog == 0), timeout=60)
            snap, counts = stats.snapshot(), stats.counters()
        await handle.terminate("test over")
        times = await analysed_candles(db, row.signal_id)

    assert_each_once(times)
    assert counts["signals_superseded"] >= 1  # older closes of the outage gave way to the newest
    assert_fake_rules_kept(fake)
    print(
        f"\ntemporal outage: closes during outage={len(during)} failures={snap['signal_failures']} "
        f"retried={snap['signals_retried']} superseded={snap['signals_superseded']} "
        f"visibility errors={snap['visibility_errors']} latency ms={snap['signal_latency_ms']}"
    )


async def _true(condition: bool) -> None:
    assert condition
