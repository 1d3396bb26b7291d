"""Which candles a monitor analyses: each closed candle of its own symbol and interval once,
never a duplicate, a stale, an open or a foreign one; the newest of a burst; bad payloads counted."""

from __future__ import annotations

import asyncio

from fakes.llm_proxy import Answer
from tests.helpers.monitor import idle_monitor, monitor_stack, monitor_state
from tests.helpers.support import analyses, eventually, insert_signal, kline
from workflows.monitor.workflow import SignalMonitorWorkflow


async def test_duplicates_stale_open_and_foreign_candles_are_counted_not_analysed(client, database_url, db):
    row = await insert_signal(db, symbol="BTCUSDT", interval="15m", max_reanalyses=10)
    async with monitor_stack(client, database_url) as m:
        handle = await m.start(row.signal_id)
        await eventually(lambda: idle_monitor(handle, 1))
        c1 = kline(row, 1)
        for _ in range(3):  # the same close three times (rotation overlap, two bridges...)
            await handle.signal(SignalMonitorWorkflow.candle_closed, c1)
        await eventually(lambda: idle_monitor(handle, 2))
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 2, closed=False))  # still open
        # other symbol, same interval
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 2, symbol="ETHUSDT"))
        # same symbol, other interval
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 2, interval="5m"))
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 0))  # closed before the signal: stale
        await handle.signal(SignalMonitorWorkflow.candle_closed, c1)  # late duplicate
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 2))
        state = await eventually(lambda: idle_monitor(handle, 3))

    c = state.counts
    assert (c.duplicate, c.open, c.foreign, c.stale) == (3, 1, 2, 1), c
    assert c.received == 9 and c.malformed == 0
    rows = await analyses(db, row.signal_id)
    assert [r["analysis_number"] for r in rows] == [0, 1, 2]
    assert [int(r["candle_open_time"].timestamp() * 1000) for r in rows[1:]] == [kline(row, 1)["t"], kline(row, 2)["t"]]
    assert len(m.proxy.requests_for(row.signal_id)) == 3


async def test_burst_during_an_analysis_analyses_only_the_newest(client, database_url, db):
    row = await insert_signal(db, interval="1m", max_reanalyses=10)
    async with monitor_stack(client, database_url) as m:
        m.proxy.script(row.signal_id, Answer.wait(50), Answer.delay(1.5, Answer.wait(50)))
        handle = await m.start(row.signal_id)
        await eventually(lambda: idle_monitor(handle, 1))
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 1))
        await eventually(lambda: _analysing(handle))
        # Arrive while candle 1 is being analysed, and out of order.
        for n in (3, 2, 5, 4):
            await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, n))
        state = await eventually(lambda: idle_monitor(handle, 3))

    assert state.counts.skipped == 3, state.counts
    assert sorted(state.skipped_candles) == sorted(kline(row, n)["t"] for n in (2, 3, 4))
    rows = await analyses(db, row.signal_id)
    assert [int(r["candle_open_time"].timestamp() * 1000) for r in rows[1:]] == [kline(row, 1)["t"], kline(row, 5)["t"]]


async def _analysing(handle) -> None:
    assert (await monitor_state(handle)).analysing


async def test_malformed_payloads_are_counted_and_the_monitor_keeps_going(client, database_url, db):
    row = await insert_signal(db, max_reanalyses=10)
    async with monitor_stack(client, database_url) as m:
        handle = await m.start(row.signal_id)
        await eventually(lambda: idle_monitor(handle, 1))
        good = kline(row, 1)
        bad_payloads = [
            {k: v for k, v in good.items() if k != "T"},  # missing field
            {**good, "t": str(good["t"])},  # a string where a number belongs
            {**good, "c": "not-a-price"},
            {**good, "x": "true"},  # a string where a bool belongs
            "BTCUSDT closed",
            None,
            [good],
        ]
        for payload in bad_payloads:
            await handle.signal(SignalMonitorWorkflow.candle_closed, payload)
        await handle.signal(SignalMonitorWorkflow.candle_closed, good)
        state = await eventually(lambda: idle_monitor(handle, 2))
    assert state.counts.malformed == len(bad_payloads)
    assert len(await analyses(db, row.signal_id)) == 2


async def test_candles_sent_before_the_signal_is_loaded_are_kept(client, database_url, db):
    row = await insert_signal(db, max_reanalyses=10)
    async with monitor_stack(client, database_url) as m:
        handle = await m.start(row.signal_id)
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 1))
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 1))
        state = await eventually(lambda: idle_monitor(handle, 2))
    assert state.counts.duplicate == 1
    assert len(await analyses(db, row.signal_id)) == 2


async def test_two_monitors_on_one_symbol_different_intervals_get_only_their_own(client, database_url, db):
    a = await insert_signal(db, symbol="SOLUSDT", interval="1m", max_reanalyses=10)
    b = await insert_signal(db, symbol="SOLUSDT", interval="5m", max_reanalyses=10)
    async with monitor_stack(client, database_url) as m:
        ha, hb = await m.start(a.signal_id), await m.start(b.signal_id)
        await asyncio.gather(eventually(lambda: idle_monitor(ha, 1)), eventually(lambda: idle_monitor(hb, 1)))
        # The earlier monitor's fault: closes matched by interval only. Send each close to both.
        for candle in (kline(a, 1), kline(b, 1)):
            await ha.signal(SignalMonitorWorkflow.candle_closed, candle)
            await hb.signal(SignalMonitorWorkflow.candle_closed, candle)
        sa_state = await eventually(lambda: idle_monitor(ha, 2))
        sb_state = await eventually(lambda: idle_monitor(hb, 2))
    assert sa_state.counts.foreign == 1 and sb_state.counts.foreign == 1
