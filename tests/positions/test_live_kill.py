"""The worker SIGKILLed between sending the entry and recording its answer: the next worker finds
the `pending` row, waits out recvWindow, adopts the order. Exactly one order on the exchange, and
the rows agree with it. Real `signal-monitor worker` processes; the retry comes after the killed
attempt's start-to-close timeout (30 s), hence slow."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import pytest

from activities.live.client_ids import client_order_id
from fakes.llm_proxy import FakeLlmProxy
from tests.helpers.live import live_exchange, make_live
from tests.helpers.monitor import TEST_KEY
from tests.helpers.positions import entered_signal, position_rows, signal_candle_t, start_position, view
from tests.helpers.processes import worker_process
from tests.helpers.restarts import worker_env
from tests.helpers.support import eventually


async def _open(handle):
    state = await view(handle)
    assert state.status == "open", state
    return state


@pytest.mark.slow
async def test_worker_killed_between_sending_the_entry_and_recording_it(client, database_url, db, temporal_address):
    row = await entered_signal(db, stop_loss=95.0, take_profits=[120.0])
    async with live_exchange() as account, FakeLlmProxy(api_key=TEST_KEY) as proxy:
        await make_live(db, row, account)
        env = worker_env(
            temporal_address, database_url, proxy,
            SIGNAL_MONITOR_LIVE_TRADING="on",
            SIGNAL_MONITOR_EXCHANGE_KEYS_FILE=str(account.keys_file),
            SIGNAL_MONITOR_EXCHANGE_URL=account.exchange.base_url,
            SIGNAL_MONITOR_EXCHANGE_RECV_WINDOW_MS="2000",
        )  # fmt: skip
        # The exchange takes the entry, and its answer is slow: the worker dies before it comes.
        account.exchange.faults.lose_answer.append(("/order", "late"))
        account.exchange.faults.late_seconds = 4
        cid = client_order_id(f"{row.signal_id}:{signal_candle_t(row)}:open")
        async with worker_process(env) as first:
            assert "live trading is ON for 1 exchange account(s)" in first.output()
            handle = await start_position(client, row, env["SIGNAL_MONITOR_TASK_QUEUE"], entry_price=D(100))
            for _ in range(300):
                if account.orders():
                    break
                await asyncio.sleep(0.02)
            assert [o.client_order_id for o in account.orders()] == [cid]
            first.kill()
        assert await db.fetchval("SELECT status FROM orders WHERE id = $1", cid) == "pending"
        async with worker_process(env) as second:
            opened = await eventually(lambda: _open(handle), timeout=60)
            assert opened.quantity == D("9.99")
            await handle.signal("candle_closed", {})  # junk: counted and ignored
            await asyncio.sleep(0.2)
            assert second.proc.returncode is None
        listed = [(o.client_order_id, o.side, o.type, o.status) for o in account.orders()]
        rows = await position_rows(db, row.signal_id)
        await handle.terminate("test over")  # the position stays open; nothing manages it after the test
    assert [x[1:] for x in listed] == [
        ("BUY", "MARKET", "FILLED"),
        ("SELL", "LIMIT_MAKER", "NEW"),  # the OCO: target and stop
        ("SELL", "STOP_LOSS_LIMIT", "NEW"),
    ]
    status = {o["id"]: o["status"] for o in rows["orders"]}
    assert [status.get(x[0]) for x in listed] == ["closed", "open", "open"] and len(status) == 3
    assert rows["positions"][0]["contracts"] == D("9.99") and rows["positions"][0]["mode"] == "live"
