"""A bridge killed mid-stream (SIGKILL, the real CLI in a subprocess) and started again: the
close missed while it was down comes from REST, nothing is analysed twice, REST's 429 +
Retry-After is obeyed."""

from __future__ import annotations

import logging
import tempfile

from fakes.binance import FakeBinance
from fakes.llm_proxy import Answer
from tests.helpers import bridge as bs
from tests.helpers.monitor import monitor_stack
from tests.helpers.support import eventually, insert_signal
from workflows.monitor.workflow import SignalMonitorWorkflow

log = logging.getLogger("tests.bridge")
IV = 60_000


async def test_killed_bridge_restarts_and_backfills_the_missed_close(client, database_url, db, temporal_address):
    start = bs.replay_start()  # the fake replays from here, never past the wall clock
    row = await insert_signal(db, symbol="ETHUSDT", interval="1m", timestamp=start, max_reanalyses=100)
    # speed 20: a 1m candle every 3 s.
    async with FakeBinance(start=start, speed=20, auto_series=True) as fake, monitor_stack(client, database_url) as m:
        m.proxy.script(row.signal_id, *[Answer.wait(50 + i % 10) for i in range(100)])
        handle = await m.start(row.signal_id)
        with tempfile.NamedTemporaryFile(prefix="bridge-", suffix=".log", delete=False) as fh:
            log_path = fh.name
        proc = bs.start_bridge_process(bs.bridge_env(fake, m.task_queue, temporal_address), log_path)
        try:

            async def two_candles_analysed():
                assert proc.poll() is None, open(log_path).read()[-3000:]
                times = await bs.analysed_candles(db, row.signal_id)
                assert len(times) >= 2
                return times

            before = await eventually(two_candles_analysed, timeout=60, interval=0.2)
        finally:
            bs.kill(proc)
        last_seen = max(before)
        closed = fake.market.closed[("ETHUSDT", "1m")]

        async def closes_missed():
            assert closed[-1].t >= last_seen + 2 * IV  # at least two closes while nobody listened

        await eventually(closes_missed, timeout=30)
        # The restarted bridge's first REST call is rate limited: it must wait, not hammer.
        fake.rest_rate_limit(times=1, retry_after=1)
        async with bs.running_bridge(client, bs.bridge_config(fake, m.task_queue)) as stats:

            async def backfilled():
                assert stats.backfilled >= 1
                return [t for _, _, t, src in stats.recent_forwards if src == "rest"]

            rest_times = await eventually(backfilled, timeout=30)
            missed = rest_times[0]
            assert missed > last_seen
            # Only closed candles are forwarded: never the still-open last row.
            assert missed in {c.t for c in closed}

            async def missed_close_analysed_then_live():
                times = await bs.analysed_candles(db, row.signal_id)
                assert missed in times
                assert max(times) > missed  # and the live stream goes on after it
                return times

            times = await eventually(missed_close_analysed_then_live, timeout=30, interval=0.2)
            snap = stats.snapshot()
        state = await handle.query(SignalMonitorWorkflow.state)
        await handle.terminate("test over")

    bs.assert_each_once(times)
    assert snap["rest_rate_limited"] == 1
    bs.assert_fake_rules_kept(fake)
    print(
        f"\nbridge restart: analysed before kill={len(before)} last={last_seen} backfilled t={missed} "
        f"(+{(missed - last_seen) // IV} candles) forwarded={snap['closes_forwarded']} "
        f"backfilled={snap['backfilled']} duplicates dropped={snap['duplicates_dropped']} "
        f"latency ms={snap['signal_latency_ms']} workflow counts={state.counts.model_dump()}"
    )
