"""The bare floor: the least Temporal can do for one candle close.

`BareFloorWorkflow` receives the monitor's own `candle_closed` payload (Binance's kline `k`),
de-duplicates it by open time in a set and runs one no-op activity, nothing else: no database,
no search attributes, no llm-proxy. Every benchmark figure is a ratio against it, measured in
the same run on the same Temporal server, with the worker in the same process shape (a
subprocess of its own, same `max_cached_workflows`).

`python -m bench.floor` runs its worker (env: TEMPORAL_ADDRESS, BENCH_FLOOR_TASK_QUEUE,
SIGNAL_MONITOR_MAX_CACHED_WORKFLOWS, and BENCH_FLOOR_EAGER=0 for the *queued floor*: the no-op then
goes through the task queue as the monitor's analysis does on its `<queue>-llm` queue, instead of
coming back in the workflow task's own completion). Each finished no-op prints `done <workflow id> <t>` on
stdout: that is how the bench knows a burst is over without polling the server under load."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.worker import Worker

from bench.closes import new_close_time

FLOOR_WORKFLOW = "BareFloorWorkflow"
NOOP_ACTIVITY = "floor_noop"


@activity.defn(name=NOOP_ACTIVITY)
async def floor_noop(t: int) -> None:
    # The only work: tell the bench it ran (one buffered line on a pipe).
    sys.stdout.write(f"done {activity.info().workflow_id} {t}\n")
    sys.stdout.flush()


@workflow.defn(name=FLOOR_WORKFLOW)
class BareFloorWorkflow:
    def __init__(self) -> None:
        self._seen: set[int] = set()
        self._queue: list[int] = []

    @workflow.run
    async def run(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self._queue))
            t = self._queue.pop(0)
            await workflow.execute_activity(floor_noop, t, start_to_close_timeout=timedelta(seconds=30))

    @workflow.signal(name="candle_closed")
    def candle_closed(self, payload: Any) -> None:
        t = new_close_time(self._seen, payload)
        if t is not None:
            self._queue.append(t)


async def _main() -> None:
    from runtime.config import Settings
    from runtime.lifecycle import stop_on_signals
    from runtime.temporal_client import connect_client

    client = await connect_client()
    stop = stop_on_signals()
    worker = Worker(
        client,
        task_queue=os.environ["BENCH_FLOOR_TASK_QUEUE"],
        workflows=[BareFloorWorkflow],
        activities=[floor_noop],
        max_cached_workflows=Settings.from_env().max_cached_workflows,
        graceful_shutdown_timeout=timedelta(seconds=2),
        disable_eager_activity_execution=os.environ.get("BENCH_FLOOR_EAGER", "1") == "0",
    )
    async with worker:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(_main())
    sys.stdout.flush()
    os._exit(0)  # sdk-python#300: the SDK can crash at interpreter teardown
