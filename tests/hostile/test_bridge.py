"""A frozen bridge replica is fenced (issue 26, case 8): two replicas in shared mode, one a real
`signal-monitor bridge` process, SIGSTOPped. Its idle session would keep its advisory locks for as
long as it stays frozen; the other replica sees it stopped beating, terminates its session
(`pg_terminate_backend`), takes its buckets within `STALE_STEPS` plus a couple of ownership steps,
and delivers every close of the frozen replica's streams since the freeze, not only the newest."""

from __future__ import annotations

import signal
import time

import pytest

from signal_bridge.buckets import bucket_of
from signal_bridge.ownership import STALE_STEPS
from tests.helpers.bridge import analysed_candles, bucket_holders, forwarded_since, forwarded_times, victim_and_survivor
from tests.helpers.support import eventually

CHECK_S = 0.5
STALE_S = STALE_STEPS * CHECK_S

pytestmark = pytest.mark.slow  # about 25 s: a freeze, a fencing and a takeover in real time


async def test_a_sigstopped_replica_is_fenced_and_its_streams_lose_no_close(client, database_url, db, temporal_address):
    # speed 30: a 1m candle every 2 s, so the frozen replica's gap holds several closes.
    async with victim_and_survivor(
        client, db, database_url, temporal_address, speed=30, check_seconds=CHECK_S, closes=500
    ) as t:
        survivor, victim_pid, rows = t.survivor, t.victim_pid, t.rows
        frozen_streams = [s for s in t.symbols if bucket_of((s, "1m"), 16) in t.holders[victim_pid]]
        t.victim.send_signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        before = {r.symbol: max(await analysed_candles(db, r.signal_id)) for r in rows}

        async def fenced_and_taken_over():
            assert survivor.buckets_owned == 16 and survivor.replicas_fenced >= 1
            holders = await bucket_holders(db, t.group)
            assert victim_pid not in holders
            assert not await db.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", victim_pid)

        await eventually(fenced_and_taken_over, timeout=40, interval=0.1)
        takeover_s = survivor.ownership_changed_at - frozen_at

        since = {s: before[s] for s in frozen_streams}
        await eventually(lambda: forwarded_since(survivor, since, 6), timeout=60, interval=0.3)
        delivered = {s: set(forwarded_times(survivor, s, "1m")) for s in frozen_streams}
        survivor_backfilled = survivor.backfilled
        # The frozen replica may have sent a close just before the freeze (analysed after it).
        by_row = {r.symbol: r for r in rows}
        analysed = {s: set(await analysed_candles(db, by_row[s].signal_id)) for s in frozen_streams}

    fake = t.fake
    assert takeover_s < STALE_S + 6 * CHECK_S + 2, takeover_s
    lost = {}
    for s in frozen_streams:
        last = max(delivered[s])
        market = [c.t for c in fake.market.closed[(s, "1m")] if before[s] < c.t <= last]
        lost[s] = sorted(set(market) - delivered[s] - analysed[s])
        assert len(market) >= 6
    assert not any(lost.values()), f"closes of the frozen replica's streams never delivered: {lost} {before}"
    closes = sum(len([c for c in fake.market.closed[(s, "1m")] if before[s] < c.t <= max(delivered[s])]) for s in lost)
    print(
        f"\nfenced a SIGSTOPped replica: takeover {takeover_s:.2f} s (stale after {STALE_S} s); "
        f"{closes} closes of its streams since the freeze, {survivor_backfilled} from REST; lost=0"
    )
