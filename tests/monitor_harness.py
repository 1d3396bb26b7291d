"""A worker running in this process against the session's Temporal server, PostgreSQL and a
fresh fake llm-proxy: one per test, on its own task queue, so tests never share pollers."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from typing import AsyncIterator, Optional

from temporalio.client import Client, WorkflowHandle

from fakes.llm_proxy import FakeLlmProxy
from workers.config import Settings
from workers.starting import start_monitor
from workers.worker import run_worker

TEST_KEY = "sk-test-" + uuid.uuid4().hex


def make_settings(database_url: str, proxy_url: str, task_queue: str, **overrides) -> Settings:
    values = dict(
        database_url=database_url,
        llm_proxy_url=proxy_url,
        llm_proxy_key=TEST_KEY,
        task_queue=task_queue,
        llm_max_concurrent=8,
        llm_max_per_second=None,
        llm_queue_max_per_second=None,
        llm_timeout_seconds=5.0,
        max_cached_workflows=100,
        db_pool_size=4,
    )
    values.update(overrides)
    return Settings(**values)


@dataclass
class Monitor:
    client: Client
    proxy: FakeLlmProxy
    settings: Settings

    @property
    def task_queue(self) -> str:
        return self.settings.task_queue

    async def start(self, signal_id: str) -> WorkflowHandle:
        outcome = await start_monitor(self.client, signal_id, self.task_queue)
        return outcome.handle


@contextlib.asynccontextmanager
async def running_worker(client: Client, settings: Settings) -> AsyncIterator[None]:
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop=stop, client=client, ready=ready))
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()  # raises the worker's start-up error
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@contextlib.asynccontextmanager
async def monitor_stack(
    client: Client, database_url: str, proxy: Optional[FakeLlmProxy] = None, **overrides
) -> AsyncIterator[Monitor]:
    own_proxy = proxy is None
    proxy = proxy or FakeLlmProxy(api_key=TEST_KEY)
    if own_proxy:
        await proxy.start()
    settings = make_settings(database_url, proxy.url, f"tq-{uuid.uuid4().hex[:10]}", **overrides)
    try:
        async with running_worker(client, settings):
            yield Monitor(client, proxy, settings)
    finally:
        if own_proxy:
            await proxy.stop()
