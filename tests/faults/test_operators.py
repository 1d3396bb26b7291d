"""Fault suite, operators: what people type by hand with the stock `temporal` CLI. Malformed
`candle_closed` signals and invalid Updates change nothing; a cancel during an analysis stores
no analysis and leaves the signal `cancelled`; a cancel of a monitor that already ended changes nothing. (tests/monitor/test_operator_updates.py and test_candles.py check each validator's
wording and counts; here every case ends with the three checks.)"""

from __future__ import annotations

import asyncio
from functools import partial

from temporalio.client import WorkflowExecutionStatus

from fakes.llm_proxy import Answer
from tests.helpers.fault_checks import Expectation, assert_three_checks, measure
from tests.helpers.monitor import idle_monitor, monitor_stack, monitor_state
from tests.helpers.processes import as_json, command_env, temporal_cli
from tests.helpers.support import async_update, eventually, insert_signal, kline, signal_status
from workflows.monitor.workflow import SignalMonitorWorkflow


async def test_operators_by_hand(client, database_url, db, temporal_address):
    env = command_env(temporal_address)
    bad_row = await insert_signal(db, interval="1m", max_reanalyses=10)
    cancel_row = await insert_signal(db, interval="1m", max_reanalyses=10)
    ended_row = await insert_signal(db, interval="1m", max_reanalyses=10)
    async with monitor_stack(client, database_url) as m:
        m.proxy.script(bad_row.signal_id, Answer.wait(50), Answer.wait(51))
        # The close's analysis takes long enough for an operator to cancel in the middle of it.
        m.proxy.script(cancel_row.signal_id, Answer.wait(50), Answer.delay(30, Answer.enter(95)))
        m.proxy.script(ended_row.signal_id, Answer.wait(50))
        bad, cancel, ended = [await m.start(r.signal_id) for r in (bad_row, cancel_row, ended_row)]
        await asyncio.gather(*(eventually(partial(idle_monitor, h, 1), timeout=30) for h in (bad, cancel, ended)))

        async def signal(workflow_id: str, payload) -> None:
            await temporal_cli(
                env,
                "workflow",
                "signal",
                "--workflow-id",
                workflow_id,
                "--name",
                "candle_closed",
                "--input",
                as_json(payload),
            )

        # Bad payloads sent by hand: missing fields, a wrong symbol, a string where a number belongs.
        good = kline(bad_row, 2)
        missing = {k: v for k, v in good.items() if k not in ("t", "T")}
        wrong_symbol = dict(good, s="ETHUSDT")
        string_number = dict(kline(bad_row, 3), t="soon")
        payload: object
        for payload in (missing, wrong_symbol, string_number, "candle", 42, None, []):
            await signal(bad_row.workflow_id, payload)
        # Invalid Updates: refused by the validators, nothing changes.
        for name, value in (
            ("set_limit", "ten"),
            ("set_limit", -1),
            ("set_limit", 10_001),
            ("abandon", ""),
            ("abandon", {"why": "x"}),
            ("reanalyze", None),
        ):
            args = ["workflow", "update", "execute", "--workflow-id", bad_row.workflow_id, "--name", name]
            if value is not None:
                args += ["--input", as_json(value)]
            refused = await temporal_cli(env, *args, check=False)
            assert refused.returncode != 0, (name, value, refused.stdout)
        state = await idle_monitor(bad, 1)
        assert state.counts.malformed == 6 and state.counts.foreign == 1, state.counts
        assert state.max_reanalyses == 10
        await signal(bad_row.workflow_id, good)
        await eventually(lambda: idle_monitor(bad, 2), timeout=30)

        # Cancel during an analysis.
        await cancel.signal(SignalMonitorWorkflow.candle_closed, kline(cancel_row, 2))
        await eventually(lambda: _analysing(cancel), timeout=30)
        await m.proxy.wait_for_requests(2, timeout=30, signal_id=cancel_row.signal_id)
        await temporal_cli(env, "workflow", "cancel", "--workflow-id", cancel_row.workflow_id)
        await eventually(lambda: _status(cancel, WorkflowExecutionStatus.CANCELED), timeout=30)

        # Cancel of a monitor that has already ended: the server accepts the request and nothing changes.
        result = await ended.execute_update(async_update(SignalMonitorWorkflow.abandon), "operator: setup gone")
        assert result.status == "expired"
        await eventually(lambda: _status(ended, WorkflowExecutionStatus.COMPLETED), timeout=30)
        await temporal_cli(env, "workflow", "cancel", "--workflow-id", ended_row.workflow_id, check=False)

        expected = [
            Expectation(bad_row.signal_id, {good["t"]}),
            Expectation(cancel_row.signal_id, set()),  # cancelled before its answer: not analysed
            Expectation(ended_row.signal_id, set()),
        ]
        await assert_three_checks(client, db, "operators: bad signals, invalid updates, cancels", expected)
    assert await signal_status(db, cancel_row.signal_id) == "cancelled"
    assert await signal_status(db, ended_row.signal_id) == "expired"
    assert (await ended.describe()).status == WorkflowExecutionStatus.COMPLETED


async def _analysing(handle) -> None:
    assert (await monitor_state(handle)).analysing


async def _status(handle, status) -> None:
    assert (await handle.describe()).status == status


async def test_the_checks_catch_a_lost_close(client, database_url, db):
    """The checker itself can fail: a close the monitor never received counts as lost, a monitor
    still analysing counts as stuck."""
    row = await insert_signal(db, interval="1m", max_reanalyses=10)
    async with monitor_stack(client, database_url) as m:
        m.proxy.script(row.signal_id, Answer.wait(50), Answer.delay(30, Answer.wait(51)))
        handle = await m.start(row.signal_id)
        await eventually(lambda: idle_monitor(handle, 1), timeout=30)
        never_sent = kline(row, 3)["t"]
        fig = await measure(client, db, "checker", [Expectation(row.signal_id, {never_sent})])
        assert fig.lost == 1 and fig.stuck == 0 and not fig.ok
        await handle.signal(SignalMonitorWorkflow.candle_closed, kline(row, 2))
        await eventually(lambda: _analysing(handle), timeout=30)
        fig = await measure(client, db, "checker", [Expectation(row.signal_id, {kline(row, 2)["t"]})])
        assert fig.stuck == 1 and fig.lost == 1 and not fig.ok
        await handle.cancel()
