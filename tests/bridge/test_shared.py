"""Shared mode (SIGNAL_BRIDGE_MODE=shared): bridge replicas divide the streams through
PostgreSQL advisory locks. Three replicas: every stream sent by exactly one, every close reaches
each monitor once (the workflows count no duplicate). A replica SIGKILLed (the real CLI in a
subprocess): the survivor takes its streams within seconds and no close is lost (the takeover's
REST backfill brings the close that fell in the gap)."""

from __future__ import annotations

import time
import uuid

import pytest

from fakes.binance import FakeBinance
from tests.helpers.bridge import (
    analysed_candles,
    assert_each_once,
    assert_fake_rules_kept,
    balanced,
    bucket_holders,
    forwarded_since,
    forwarded_times,
    kill,
    replay_start,
    running_bridge,
    shared_config,
    signals_received,
    symbols_spread_over,
    victim_and_survivor,
    waiting_monitors,
)
from tests.helpers.monitor import monitor_stack
from tests.helpers.support import eventually
from workflows.monitor.workflow import SignalMonitorWorkflow

IV = 60_000


async def test_three_replicas_divide_the_streams_each_close_sent_once(client, database_url, db):
    start = replay_start()  # the fake replays from here, never past the wall clock
    group = f"g-{uuid.uuid4().hex[:8]}"
    # speed 20: a 1m candle every 3 s.
    async with FakeBinance(start=start, speed=20, auto_series=True) as fake, monitor_stack(client, database_url) as m:
        cfg = shared_config(fake, m.task_queue, database_url, group)
        async with running_bridge(client, cfg) as a, running_bridge(client, cfg) as b, running_bridge(client, cfg) as c:
            replicas = [a, b, c]
            holders = await balanced(db, group, 3)
            symbols = symbols_spread_over(holders, per_holder=2)
            # One stream with two monitors: one close, two signals, one each.
            rows, handles = await waiting_monitors(db, m, [*symbols, symbols[0]], 100)

            async def three_closes_analysed_each():
                for row in rows:
                    assert len(await analysed_candles(db, row.signal_id)) >= 3

            await eventually(three_closes_analysed_each, timeout=90, interval=0.5)
            states = [await h.query(SignalMonitorWorkflow.state) for h in handles]
            senders = {s: {i for i, r in enumerate(replicas) if forwarded_times(r, s, "1m")} for s in symbols}
            # The balance never moved while monitors ran: no handoff, no backfill duplicate.
            assert await bucket_holders(db, group) == holders
        for h in handles:
            await h.terminate("test over")

    assert all(len(who) == 1 for who in senders.values()), senders
    assert {i for who in senders.values() for i in who} == {0, 1, 2}, "every replica sends its share"
    for row, state in zip(rows, states, strict=True):
        assert state.counts.duplicate == 0, (row.symbol, state.counts)
        assert_each_once(await analysed_candles(db, row.signal_id))
    # What the replicas sent is what the monitors' histories hold, each close once per monitor.
    sent = [r.signals_sent for r in replicas]  # final: the replicas have stopped and drained
    got = [await signals_received(client, h.id) for h in handles]
    assert all(max(g.values()) == 1 for g in got), got
    assert sum(sent) == sum(g.total() for g in got), (sent, [g.total() for g in got])
    assert_fake_rules_kept(fake)
    print(f"\nshared x3: signals sent per replica {sent}, streams per replica {[r.streams_watched for r in replicas]}")


@pytest.mark.slow  # ~20-30 s (tests/README: `pytest -m "not slow"` for a quick loop)
async def test_killed_replica_streams_taken_over_no_close_lost(client, database_url, db, temporal_address):
    # speed 10: a 1m candle every 6 s, longer than a takeover: every close must be analysed.
    async with victim_and_survivor(
        client, db, database_url, temporal_address, speed=10, check_seconds=1.0, closes=100
    ) as t:
        survivor, symbols, rows = t.survivor, t.symbols, t.rows
        first = {row.symbol: min(await analysed_candles(db, row.signal_id)) for row in rows}
        kill(t.victim)
        killed_at = time.monotonic()

        async def took_over():
            assert survivor.buckets_owned == 16 and survivor.streams_watched == len(symbols)

        await eventually(took_over, timeout=30, interval=0.1)
        takeover_s = survivor.ownership_changed_at - killed_at

        await eventually(lambda: forwarded_since(survivor, first, 4), timeout=60, interval=0.3)
        last = {s: max(forwarded_times(survivor, s, "1m")) for s in symbols}
        analysed = {}

        async def all_analysed():
            for row in rows:
                analysed[row.symbol] = await analysed_candles(db, row.signal_id)
                assert last[row.symbol] in analysed[row.symbol]

        await eventually(all_analysed, timeout=30, interval=0.3)
        backfilled = survivor.backfilled

    fake = t.fake
    assert takeover_s < 30, takeover_s
    lost = {}
    for s in symbols:
        market = [c.t for c in fake.market.closed[(s, "1m")] if first[s] <= c.t <= last[s]]
        lost[s] = sorted(set(market) - set(analysed[s]))
        assert_each_once(analysed[s])
    assert not any(lost.values()), f"closes never analysed: {lost}"
    assert backfilled >= 1  # the taken-over streams' gap came from REST
    assert_fake_rules_kept(fake)
    print(f"\nshared takeover: {takeover_s:.2f} s after SIGKILL; backfilled={backfilled}; lost=0")
