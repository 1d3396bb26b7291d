"""More than 1024 watched streams: the bridge opens a second connection (Binance's per-connection
cap), subscribes in paced batches, and follows monitors as they come and go. The 1,025 monitors
are real running workflows with their search attributes set at start, on a task queue without a
worker (a worker would make 1,025 LLM analyses: not what this test is about)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

from temporalio.api.batch.v1 import BatchOperationTermination
from temporalio.api.workflowservice.v1 import StartBatchOperationRequest
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from fakes.binance import FakeBinance
from fakes.binance.exchange import kline_frame
from tests.helpers.bridge import assert_fake_rules_kept, bridge_config, running_bridge
from tests.helpers.support import eventually
from workflows.common import search_attributes as sa
from workflows.common.names import WORKFLOW_TYPE

N = 1025


def _symbol(i: int) -> str:
    return f"S{i:04d}USDT"


async def test_more_than_1024_streams_open_two_connections(client):
    task_queue = f"tq-noworker-{uuid.uuid4().hex[:8]}"
    sem = asyncio.Semaphore(64)

    async def start(i: int):
        async with sem:
            return await client.start_workflow(
                WORKFLOW_TYPE,
                {"signal_id": str(uuid.uuid4())},
                id=f"shard-test-{task_queue}-{i}",
                task_queue=task_queue,
                execution_timeout=timedelta(minutes=3),
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(sa.SIGNAL_SYMBOL, _symbol(i)),
                        SearchAttributePair(sa.SIGNAL_INTERVAL, "1m"),
                    ]
                ),
            )

    t0 = time.monotonic()
    handles = await asyncio.gather(*(start(i) for i in range(N)))
    started_s = time.monotonic() - t0
    try:
        async with FakeBinance(speed=1) as fake:
            # (No REST backfill: 1,025 REST calls are not what this test is about.)
            cfg = bridge_config(fake, task_queue, backfill_on_start=False, backfill_new_streams=False)
            async with running_bridge(client, cfg) as stats:

                async def two_connections_carry_all():
                    assert stats.streams_watched == N
                    sizes = sorted(len(c.streams) for c in fake.connections)
                    assert sizes == [1, 1024], sizes
                    assert stats.connections_open == 2

                await eventually(two_connections_carry_all, timeout=60, interval=0.25)
                # Batched: 1024 streams took a handful of SUBSCRIBE messages, not 1024.
                assert fake.stats.subscribe_requests <= 8
                # Which monitor rides alone on the second connection depends on the order
                # visibility showed them in.
                lone_conn = min(fake.connections, key=lambda c: len(c.streams))
                lone = int(next(iter(lone_conn.streams))[1:5])
                other = next(i for i in range(N) if i != lone)
                # A close on each connection reaches its monitor.
                now = fake.clock.now_ms() // 60_000 * 60_000
                for i in (lone, other):
                    k = {
                        "t": now - 60_000,
                        "T": now - 1,
                        "s": _symbol(i),
                        "i": "1m",
                        "f": -1,
                        "L": -1,
                        "o": "1.0",
                        "c": "1.0",
                        "h": "1.0",
                        "l": "1.0",
                        "v": "0",
                        "n": 0,
                        "x": True,
                        "q": "0",
                        "V": "0",
                        "Q": "0",
                        "B": "0",
                    }
                    await fake.publish(kline_frame(k, now + 300))

                async def delivered():
                    assert stats.signals_sent == 2 and stats.signal_failures == 0

                await eventually(delivered, timeout=20)
                # Monitors end: their streams are unsubscribed, an emptied connection is closed.
                await asyncio.gather(*(h.terminate("test") for h in (handles[lone], handles[other])))

                async def followed():
                    assert stats.streams_watched == N - 2
                    assert [len(c.streams) for c in fake.connections] == [N - 2]

                await eventually(followed, timeout=30, interval=0.25)
                assert fake.stats.unsubscribe_requests >= 1
            assert_fake_rules_kept(fake)
            print(
                f"\nshards: {N} monitors started in {started_s:.1f} s; connections opened="
                f"{fake.stats.connections_opened} max streams on one={fake.stats.max_streams_on_a_connection} "
                f"control messages={fake.stats.control_messages}"
            )
    finally:
        await client.workflow_service.start_batch_operation(
            StartBatchOperationRequest(
                namespace=client.namespace,
                job_id=str(uuid.uuid4()),
                reason="test over",
                visibility_query=f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'",
                termination_operation=BatchOperationTermination(),
            )
        )
