"""Fault suite, bad data in the platform's tables: a signal whose trader is gone (before the monitor
starts, or deleted while it is monitored), an unknown interval, a symbol that cannot be Binance's,
and a signal row deleted under a running monitor. Each monitor ends with a reason that says what
was wrong, nothing is entered for a trader who is gone, and the three checks hold."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import WorkflowFailureError

from fakes.llm_proxy import Answer
from tests.helpers.fault_checks import Expectation, assert_three_checks
from tests.helpers.monitor import monitor_stack
from tests.helpers.support import eventually, insert_signal, kline, signal_status
from workflows.monitor.workflow import SignalMonitorWorkflow


async def _analysed(handle, n: int) -> None:
    state = await handle.query(SignalMonitorWorkflow.state)
    assert state.counts.analysed == n and not state.analysing, state.counts


async def test_bad_data_ends_each_monitor_with_its_reason(client, database_url, db):
    orphan = await insert_signal(db, with_trader=False)
    odd_interval = await insert_signal(db, interval="7m")
    odd_symbol = await insert_signal(db, symbol="btc/usdt!")
    deleted_trader = await insert_signal(db, interval="1m", max_reanalyses=10)
    deleted_signal = await insert_signal(db, interval="1m", max_reanalyses=10)
    async with monitor_stack(client, database_url) as m:
        m.proxy.script(deleted_trader.signal_id, Answer.wait(50), Answer.enter(95))
        m.proxy.script(deleted_signal.signal_id, Answer.wait(50), Answer.wait(52))
        ends = [await m.start(r.signal_id) for r in (orphan, odd_interval, odd_symbol)]
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in ends)), 30)

        handle = await m.start(deleted_trader.signal_id)
        gone = await m.start(deleted_signal.signal_id)
        await asyncio.gather(
            eventually(lambda: _analysed(handle, 1), timeout=30), eventually(lambda: _analysed(gone, 1), timeout=30)
        )
        await db.execute("DELETE FROM traders WHERE id = $1", uuid.UUID(deleted_trader.trader_id))
        await db.execute("DELETE FROM signals WHERE id = $1", uuid.UUID(deleted_signal.signal_id))
        close = kline(deleted_trader, 1)
        await handle.signal(SignalMonitorWorkflow.candle_closed, close)
        await gone.signal(SignalMonitorWorkflow.candle_closed, kline(deleted_signal, 1))
        ended = await asyncio.wait_for(handle.result(), 30)
        try:
            await asyncio.wait_for(gone.result(), 30)
            raise AssertionError("a monitor whose signal row vanished went on")
        except WorkflowFailureError as err:
            vanished = str(err.cause)
        fig = await assert_three_checks(
            client,
            db,
            "bad data: trader missing or deleted, unknown interval, invalid symbol, signal deleted",
            [Expectation(r.signal_id, set(), initial=False) for r in (orphan, odd_interval, odd_symbol)]
            + [Expectation(deleted_trader.signal_id, {close["t"]})],
        )
    reasons = [r.reason for r in results]
    assert [r.status for r in results] == ["failed"] * 3, reasons
    assert f"trader {orphan.trader_id} not found" in reasons[0]
    assert "unknown interval '7m'" in reasons[1] and "invalid symbol" in reasons[2]
    assert ended.status == "failed" and ended.reason == (
        f"trader {deleted_trader.trader_id} was deleted while the signal was monitored"
    )
    assert ended.order_intent_id is None
    assert await signal_status(db, deleted_trader.signal_id) == "failed"
    assert (
        await db.fetchval("SELECT count(*) FROM order_intents WHERE signal_id = $1::uuid", deleted_trader.signal_id)
        == 0
    )
    # The analysis made after the deletion is kept: it happened, and was paid for.
    assert (
        await db.fetchval("SELECT count(*) FROM signal_analyses WHERE signal_id = $1::uuid", deleted_trader.signal_id)
        == 2
    )
    assert vanished == f"SignalNotFound: signal {deleted_signal.signal_id} not found: deleted while it was monitored"
    assert fig.analyses_stored == 2 and fig.lost == 0 and fig.duplicates == 0
