"""`max_monitoring_duration` is a durable timer: on Temporal's time-skipping test server a day of
waiting passes in a moment, and the monitor expires the signal with that reason."""

from __future__ import annotations

from datetime import timedelta

from fakes.llm_proxy import Answer
from tests.helpers.monitor import monitor_stack
from tests.helpers.support import analyses, insert_signal, signal_status


async def test_duration_passes_with_no_decision_and_the_signal_expires(skipping_env, database_url, db):
    row = await insert_signal(db, interval="4h", max_monitoring_duration=timedelta(hours=24), max_reanalyses=5)
    async with monitor_stack(skipping_env.client, database_url) as m:
        m.proxy.script(row.signal_id, Answer.wait(60))
        handle = await m.start(row.signal_id)
        # Waiting on the result lets the test server skip time: no candle ever comes.
        result = await handle.result()
        now = await skipping_env.get_current_time()
    assert result.status == "expired", result
    assert "max_monitoring_duration" in result.reason
    assert result.analyses == 1
    assert now - row.timestamp >= timedelta(hours=24)
    assert await signal_status(db, row.signal_id) == "expired"
    assert len(await analyses(db, row.signal_id)) == 1
