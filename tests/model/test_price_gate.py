"""The price-move gates (issue 21), through real Temporal, PostgreSQL and the fake llm-proxy: a
close that moved less than the trader's setting is counted `gated` and not sent to the model; it
uses no reanalysis, never delays an end, never hides a later close; a position's stop and target
checks still run on a gated close. With SIGNAL_MONITOR_RECORD_HISTORIES set, the runs' histories are
kept (tests/histories/: the patch's "after" side, see tests/test_replay.py)."""

from __future__ import annotations

import uuid
from decimal import Decimal as D
from functools import partial

from fakes.llm_proxy import Answer, ManageAnswer
from tests.helpers.monitor import monitor_stack, monitor_state
from tests.helpers.positions import candle, entered_signal, position_rows, result_of, start_position, view
from tests.helpers.support import analyses, eventually, insert_signal, kline
from workflows.common.price_gate import gated
from workflows.monitor.workflow import SignalMonitorWorkflow
from workflows.position.workflow import PositionManagerWorkflow


def test_the_gate_rule():
    assert gated(None, "100", "100.01") is None  # off
    assert gated(0.5, None, "100") is None and gated(0.5, "0", "100") is None  # no reference: ask
    assert gated(0.5, "100", "100.49") is not None and gated(0.5, "100", "99.51") is not None
    assert gated(0.5, "100", "100.5") is None and gated(0.5, "100", "99.4") is None
    assert "0.490%" in (gated(D("0.5"), D(100), D("100.49")) or "")


async def _settled(handle, analysed: int, gated_closes: int):
    state = await monitor_state(handle)
    c = state.counts
    assert (
        c.analysed == analysed and c.gated == gated_closes and not state.analysing and state.pending_candle is None
    ), c
    return state


async def test_gated_closes_use_no_reanalysis_and_never_delay_the_limit(client, database_url, db):
    row = await insert_signal(db, max_reanalyses=2)  # price 43250.12
    await db.execute("UPDATE traders SET min_price_move_pct = 0.5 WHERE id = $1", uuid.UUID(row.trader_id))
    async with monitor_stack(client, database_url) as m:
        m.proxy.script(row.signal_id, Answer.wait(55), Answer.wait(60), Answer.wait(61))
        handle = await m.start(row.signal_id)
        await eventually(partial(_settled, handle, 1, 0))
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 1, close="43300.50"))  # +0.12%
        await eventually(partial(_settled, handle, 1, 1))
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 2, close="43500.00"))  # +0.58%
        await eventually(partial(_settled, handle, 2, 1))
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 3, close="43510.00"))  # +0.02%
        state = await eventually(partial(_settled, handle, 2, 2))
        assert state.reanalyses == 1  # the gated closes used none
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 4, close="43000.00"))  # -1.15%
        result = await handle.result()
    assert result.status == "expired" and "reanalysis limit" in result.reason, result
    rows = await analyses(db, row.signal_id)
    assert [r["analysis_number"] for r in rows] == [0, 1, 2]
    assert len(m.proxy.requests_for(row.signal_id)) == 3  # the two gated closes were never sent


async def _processed(handle, n: int):
    state = await view(handle)
    assert state.decisions >= n and state.queued == 0, state
    return state


async def test_a_gated_position_close_still_gets_its_stop_check(client, database_url, db):
    row = await entered_signal(db, stop_loss=95, take_profits=[110], management_min_move_pct=1.0)
    async with monitor_stack(client, database_url) as m:
        m.proxy.script_position(row.signal_id, ManageAnswer.hold())
        handle = await start_position(client, row, m.task_queue, entry_price=D(100))
        await eventually(partial(_processed, handle, 0))
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 100, 100.4, 99.8, 100.3))
        await eventually(partial(_processed, handle, 1))  # 0.25 % from the entry: gated
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 2, 100.3, 101.6, 100.2, 101.5))
        await eventually(partial(_processed, handle, 2))  # 1.45 %: the model is asked
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 3, 101.5, 101.7, 101.4, 101.6))
        await eventually(partial(_processed, handle, 3))  # 0.1 % from the last asked close: gated
        # Gated too (0.1 %), yet its low crosses the stop: the deterministic check closes it.
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 4, 101.6, 101.7, 94, 101.5))
        result = await result_of(handle)
    assert result.status == "closed" and result.reason.startswith("stop_loss"), result
    decisions = (await position_rows(db, row.signal_id))["decisions"]
    assert [d["action"] for d in decisions] == ["hold", "hold", "hold", "close"]
    assert decisions[0]["reasoning"].startswith("gated: ") and decisions[2]["reasoning"].startswith("gated: ")
    assert not decisions[1]["reasoning"].startswith("gated")
    sent = [r for r in m.proxy.requests_for(row.signal_id) if r.body["operation"] == "manage-position"]
    assert len(sent) == 1 and sent[0].params["marketPrice"] == 101.5
