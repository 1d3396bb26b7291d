"""The bridge routes closes to running position managers as it does to monitors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from fakes.binance import FakeBinance
from tests.helpers.bridge import bridge_config, running_bridge
from tests.helpers.monitor import monitor_stack
from tests.helpers.positions import entered_signal, position_rows, start_position
from tests.helpers.support import eventually, signal_status


async def test_position_is_managed_on_closes_from_the_bridge(client, database_url, db):
    row = await entered_signal(db, symbol="BTCUSDT", interval="1m", entry=43000.0, stop_loss=None, take_profits=[])
    # A fast replay of the last minutes that never runs ahead of the wall clock (a position refuses
    # closes from the future); the position manages the closes after the replay's first minute.
    start = datetime.now(UTC) - timedelta(minutes=5)
    entry_t = int(start.timestamp() * 1000) // 60_000 * 60_000
    fast = FakeBinance(speed=30, auto_series=True, start=start)
    async with fast as fake, monitor_stack(client, database_url) as m:
        async with running_bridge(client, bridge_config(fake, m.task_queue)) as stats:
            handle = await start_position(client, row, m.task_queue, entry_price=D(43000), entry_candle_t=entry_t)

            async def watched():
                assert stats.streams_watched == 1 and fake.subscribers("btcusdt@kline_1m")

            await eventually(watched, timeout=30)
            # The fake llm-proxy's default: hold, hold, then close.
            result = await asyncio.wait_for(handle.result(), timeout=90)
    assert result.status == "closed" and result.reason.startswith("close_action"), result
    rows = await position_rows(db, row.signal_id)
    assert [d["action"] for d in rows["decisions"]] == ["hold", "hold", "close"]
    assert len({d["candle_open_time"] for d in rows["decisions"]}) == 3
    assert await signal_status(db, row.signal_id) == "closed"
