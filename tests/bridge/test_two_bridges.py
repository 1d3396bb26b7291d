"""Two bridges at once (e.g. during a deploy): both forward every close, the workflow's own
de-duplication makes each candle analysed exactly once."""

from __future__ import annotations

from fakes.binance import FakeBinance
from fakes.llm_proxy import Answer
from tests.helpers import bridge as bs
from tests.helpers.monitor import monitor_stack
from tests.helpers.support import eventually, insert_signal
from workflows.monitor.workflow import SignalMonitorWorkflow


async def test_two_bridges_each_candle_analysed_once(client, database_url, db):
    start = bs.replay_start()  # the fake replays from here, never past the wall clock
    row = await insert_signal(db, symbol="SOLUSDT", interval="1m", timestamp=start, max_reanalyses=100)
    # Pings every second, 2 s to answer: the bridges' connections live on their pongs.
    async with (
        FakeBinance(start=start, speed=30, auto_series=True, ping_interval=1.0, ping_timeout=2.0) as fake,
        monitor_stack(client, database_url) as m,
    ):
        m.proxy.script(row.signal_id, *[Answer.wait(55) for _ in range(100)])
        handle = await m.start(row.signal_id)
        cfg = bs.bridge_config(fake, m.task_queue)
        async with bs.running_bridge(client, cfg) as a, bs.running_bridge(client, cfg) as b:

            async def both_delivered_several():
                common = set(bs.forwarded_times(a, "SOLUSDT", "1m")) & set(bs.forwarded_times(b, "SOLUSDT", "1m"))
                assert len(common) >= 4 and a.signals_sent >= 4 and b.signals_sent >= 4
                return common

            await eventually(both_delivered_several, timeout=60, interval=0.2)

            async def workflow_saw_duplicates():
                state = await handle.query(SignalMonitorWorkflow.state)
                assert state.counts.duplicate >= 3
                return state

            state = await eventually(workflow_saw_duplicates, timeout=20)

            async def several_analysed():
                # A loaded machine analyses fewer closes (only the newest waiting one is taken): wait.
                assert len(await bs.analysed_candles(db, row.signal_id)) >= 3

            await eventually(several_analysed, timeout=60, interval=0.5)
        await handle.terminate("test over")
        times = await bs.analysed_candles(db, row.signal_id)

    bs.assert_each_once(times)
    assert len(times) >= 3
    bs.assert_fake_rules_kept(fake)
    assert fake.stats.connections_opened == 2
    assert a.reconnects == 0 and b.reconnects == 0
    print(
        f"\ntwo bridges: A forwarded={a.closes_forwarded} B forwarded={b.closes_forwarded} "
        f"analysed={len(times)} workflow counts={state.counts.model_dump()} "
        f"latency A={a.latency_summary()} B={b.latency_summary()}"
    )
