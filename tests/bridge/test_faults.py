"""The fake's injected faults through the whole bridge: a duplicate close is dropped, a late
close still counts, a close that never comes is fetched from REST, and a candle missing on the
exchange itself is logged as a gap, never invented. Each candle is analysed once."""

from __future__ import annotations

from datetime import UTC, datetime

from fakes.binance import FakeBinance
from fakes.llm_proxy import Answer
from tests.helpers import bridge as bs
from tests.helpers.monitor import monitor_stack
from tests.helpers.support import eventually, insert_signal

KEY = ("XRPUSDT", "1m")


async def test_duplicate_late_dropped_and_missing_candles(client, database_url, db):
    row = await insert_signal(db, symbol=KEY[0], interval=KEY[1], timestamp=datetime.now(UTC), max_reanalyses=100)
    async with FakeBinance(speed=30, auto_series=True) as fake, monitor_stack(client, database_url) as m:
        m.proxy.script(row.signal_id, *[Answer.wait(55) for _ in range(100)])
        handle = await m.start(row.signal_id)
        cfg = bs.bridge_config(fake, m.task_queue, missing_close_grace=0.3)
        async with bs.running_bridge(client, cfg) as stats:

            async def check(condition):
                assert condition()

            await eventually(lambda: check(lambda: stats.closes_forwarded >= 1), timeout=30)
            fake.duplicate_next_close(*KEY)
            await eventually(lambda: check(lambda: stats.duplicates_dropped >= 1), timeout=20)
            fake.delay_next_close(*KEY, seconds=0.4)
            await eventually(lambda: check(lambda: fake.stats.closes_delayed >= 1), timeout=20)
            fake.drop_next_close(*KEY)
            await eventually(
                lambda: check(lambda: stats.backfilled >= 1 and stats.missing_closes_detected >= 1), timeout=20
            )
            fake.exchange_gap(*KEY)
            await eventually(lambda: check(lambda: stats.exchange_gaps == 1), timeout=20)
            n = stats.closes_forwarded
            await eventually(lambda: check(lambda: stats.closes_forwarded >= n + 2), timeout=20)
            snap, counts = stats.snapshot(), stats.counters()
        await handle.terminate("test over")
        times = await bs.analysed_candles(db, row.signal_id)

    fwd = sorted(bs.forwarded_times(stats, *KEY))
    assert len(fwd) == len(set(fwd))
    exchange = [c.t for c in fake.market.closed[KEY] if fwd[0] <= c.t <= fwd[-1]]
    # Every candle the exchange has was forwarded (the dropped one from REST), except older
    # missed closes REST superseded with a newer one (counted: a monitor only wants the newest);
    # the gap candle exists nowhere and was not invented.
    lost = sorted(set(exchange) - set(fwd))
    assert set(fwd) <= set(exchange)
    assert len(lost) == counts["backfill_missed_candles"] <= 1, (list(stats.recent_forwards), exchange)
    gaps = [t for t in range(fwd[0], fwd[-1], 60_000) if t not in exchange]
    assert len(gaps) == 1
    rest = [t for s, i, t, src in stats.recent_forwards if (s, i) == KEY and src == "rest"]
    assert rest and set(rest) <= set(exchange)
    assert fake.stats.closes_dropped == 1 and fake.stats.closes_duplicated == 1
    bs.assert_each_once(times)
    assert set(times) <= set(fwd)
    bs.assert_fake_rules_kept(fake)
    print(
        f"\nfaults: forwarded={snap['closes_forwarded']} duplicates dropped={snap['duplicates_dropped']} "
        f"missing detected={snap['missing_closes_detected']} backfilled={snap['backfilled']} "
        f"superseded missed={snap['backfill_missed_candles']} exchange gaps={snap['exchange_gaps']} latency ms={snap['signal_latency_ms']}"
    )
