"""Reading a Prometheus endpoint, and the worker and intake run as processes with theirs on, for
the tests of what they export (tests/test_metrics.py, tests/test_operator_metrics.py)."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import httpx

from fakes import free_port
from fakes.llm_proxy import FakeLlmProxy
from tests.helpers.monitor import TEST_KEY
from tests.helpers.processes import Process, project_process
from tests.helpers.servers import create_database
from tests.helpers.support import eventually


async def scrape(address: str) -> str:
    try:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://{address}/metrics", timeout=5)
    except httpx.TransportError as exc:  # not listening yet: `eventually` tries again
        raise AssertionError(f"{address}: {exc!r}") from None
    assert response.status_code == 200
    return response.text


def value(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of `name` whose labels include `labels` (0 when none)."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? ([-+\w.]+)$", line)
        if not match or match.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(match.group(4))
    return total


@dataclass
class MeteredStack:
    url: str  # the database's, to check no scrape or log shows it
    db: asyncpg.Connection
    proxy: FakeLlmProxy
    queue: str
    worker: Process
    intake: Process
    worker_metrics: str
    intake_metrics: str


@asynccontextmanager
async def metered_worker_and_intake(
    postgres_server, temporal_address: str, *, common: dict[str, str], intake: dict[str, str]
) -> AsyncIterator[MeteredStack]:
    """A fresh database, a fake LLM proxy, and a worker and an intake (both with `common` in their
    environment, the intake also with `intake`) whose metrics endpoints already answer."""
    url = await create_database(postgres_server)
    db = await asyncpg.connect(url)
    queue = f"tq-metrics-{uuid.uuid4().hex[:8]}"
    worker_metrics, intake_metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    proxy = await FakeLlmProxy(api_key=TEST_KEY).start()
    base = {
        **os.environ,
        "DATABASE_URL": url,
        "TEMPORAL_ADDRESS": temporal_address,
        "TEMPORAL_NAMESPACE": "default",
        "SIGNAL_MONITOR_TASK_QUEUE": queue,
        **common,
    }
    worker_env = {
        **base,
        "LLM_PROXY_URL": proxy.url,
        "LLM_PROXY_KEY": TEST_KEY,
        "SIGNAL_MONITOR_METRICS_ADDRESS": worker_metrics,
        "SIGNAL_MONITOR_RUNNING_REFRESH_SECONDS": "0.5",
    }
    intake_env = {**base, "SIGNAL_MONITOR_METRICS_ADDRESS": intake_metrics, **intake}
    try:
        async with (
            project_process(["worker"], worker_env, stop_cleanly=True) as worker_process,
            project_process(["intake"], intake_env, stop_cleanly=True) as intake_process,
        ):
            await eventually(lambda: scrape(intake_metrics), timeout=60, interval=0.3)
            await eventually(lambda: scrape(worker_metrics), timeout=60, interval=0.3)
            yield MeteredStack(url, db, proxy, queue, worker_process, intake_process, worker_metrics, intake_metrics)
    finally:
        await proxy.stop()
        await db.close()
