"""The bench's same-work floor (bench/same_work_floor.py) does the work it is compared for: one
`analyze-signal` call and one `signal_analyses` row per new candle, a repeated close ignored, in
the plain form and in the profile's `queue upsert local` form, against a real Temporal server,
PostgreSQL and the fake llm-proxy."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from temporalio.worker import Worker

from activities.database import create_pool
from bench.same_work_floor import (
    ANALYSIS_WORKFLOW,
    LLM_QUEUE_SUFFIX,
    Activities,
    Owner,
    SameWorkAnalysisWorkflow,
    SameWorkPositionWorkflow,
)
from fakes.llm_proxy import Answer, FakeLlmProxy, always
from tests.helpers.support import analyses, eventually, insert_signal, kline


@pytest.mark.parametrize("variant", ["", "queue upsert local"])
async def test_one_call_and_one_row_per_new_candle(client, database_url, db, variant):
    row = await insert_signal(db, interval="1m")
    queue = f"same-work-{uuid.uuid4().hex[:8]}"
    pool = await create_pool(database_url, 2)
    async with FakeLlmProxy(api_key="k", default=always(Answer.wait(60))) as proxy, httpx.AsyncClient() as http:
        acts = Activities(http, pool, proxy.url, "k")
        main = Worker(
            client,
            task_queue=queue,
            workflows=[SameWorkAnalysisWorkflow, SameWorkPositionWorkflow],
            activities=[acts.analyse, acts.manage, acts.ask, acts.store],
        )
        llm = Worker(client, task_queue=queue + LLM_QUEUE_SUFFIX, activities=[acts.analyse, acts.manage, acts.ask])
        try:
            async with main, llm:
                owner = Owner(row.signal_id, row.trader_id, row.user_id, row.symbol, {"instructions": "x"}, "", variant)
                handle = await client.start_workflow(
                    ANALYSIS_WORKFLOW,
                    owner,
                    id=f"samework-{uuid.uuid4()}",
                    task_queue=queue,
                    execution_timeout=timedelta(minutes=2),
                )
                for n in (1, 1, 2):
                    await handle.signal("candle_closed", kline(row, n))

                async def two_rows() -> None:
                    stored = await analyses(db, row.signal_id)
                    assert len(stored) == 2, stored

                await eventually(two_rows)
                await handle.terminate()
        finally:
            await pool.close()
    asked = [r.params.get("candle", {}).get("openTime") for r in proxy.requests]
    assert asked == [kline(row, 1)["t"], kline(row, 2)["t"]]
