"""`signal-monitor dev` as a newcomer uses it: commands in the same directory reach the stack with
nothing configured (add-signal, history), a second `dev --fresh` refuses before touching the data,
SIGTERM stops every part (checked by pid), and a part that cannot start says so itself."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from fakes import free_port
from tests.helpers.processes import BIN, dev_env, dev_stack, stop_dev_stack


async def _run(env: dict[str, str], cwd: Path, *args: str, timeout: float = 90) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "signal-monitor"), *args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


def _stack_pids(state: Path) -> dict[str, int]:
    """Every process of the stack: its children (pids.json) and PostgreSQL (postmaster.pid)."""
    pids = {row["name"]: row["pid"] for row in json.loads((state / "pids.json").read_text())}
    pids["postgres"] = int((state / "postgres" / "postmaster.pid").read_text().split()[0])
    return pids


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _snapshot(state: Path) -> dict[str, tuple[int, float]]:
    """Each file's inode (a deleted and recreated file gets a new one) and, for PostgreSQL's
    PG_VERSION, which nothing rewrites, its mtime too. The live stack keeps writing temporal.db and
    its log, so their mtimes move on their own."""
    snap = {p: ((state / p).stat().st_ino, 0.0) for p in ("temporal.db", "logs/temporal.log")}
    version = (state / "postgres/PG_VERSION").stat()
    snap["postgres/PG_VERSION"] = (version.st_ino, version.st_mtime)
    return snap


async def test_commands_reach_the_stack_a_second_dev_refuses_and_sigterm_leaves_nothing(tmp_path):
    temporal_port, ui_port = free_port(), free_port()
    env, state = dev_env(), tmp_path / ".dev-state"
    async with dev_stack(env, tmp_path, "--speed", "60", temporal_port=temporal_port, ui_port=ui_port) as dev:
        lines: list[str] = []

        async def read_until(pattern: str, timeout: float) -> re.Match:
            async with asyncio.timeout(timeout):
                while True:
                    for line in lines:
                        if found := re.search(pattern, line):
                            return found
                    line = (await dev.stdout.readline()).decode()  # type: ignore[union-attr]
                    assert line, "".join(lines)
                    lines.append(line)

        await read_until(r"monitor ended: signal is in_position", 150)
        assert re.search(r"database URL: postgresql://\S+", "".join(lines)), lines
        assert re.search(r"replay 1m: BTCUSDT: .*~43000", "".join(lines)), lines
        demo_price = float(re.search(r"demo signal \S+: BTCUSDT 1m at ([0-9.]+)", "".join(lines)).group(1))  # type: ignore[union-attr]
        assert 30_000 < demo_price < 60_000

        # A second stack, --fresh even, refuses at once and deletes nothing.
        before = _snapshot(state)
        code, out, err = await _run(env, tmp_path, "dev", "--fresh", "--temporal-port", str(free_port()), timeout=30)
        assert code == 1 and "another `signal-monitor dev` is running" in err and f"pid {dev.pid}" in err, (out, err)
        assert _snapshot(state) == before

        # Nothing configured: the commands find the stack through .dev-state/stack.json.
        code, out, err = await _run(env, tmp_path, "add-signal", "ETHUSDT", "1m")
        assert code == 0, (out, err)
        assert f"Temporal UI: http://localhost:{ui_port}/namespaces/default/workflows/signal-" in out
        assert "monitor started by the intake" in out, out
        signal_id = re.search(r"^signal ([0-9a-f-]{36})$", out, re.M).group(1)  # type: ignore[union-attr]
        assert 1000 < float(re.search(r"ETHUSDT 1m at ([0-9.]+)", out).group(1)) < 4000  # type: ignore[union-attr]

        async def analysed_twice() -> str:
            deadline = time.monotonic() + 120
            while True:
                code, out, err = await _run(env, tmp_path, "history", signal_id)
                assert code == 0, err
                if len(re.findall(r"^\d+  \d{4}-", out, re.M)) >= 2:
                    return out
                assert time.monotonic() < deadline, out
                await asyncio.sleep(2)

        history = await analysed_twice()
        assert "ETHUSDT 1m" in history and "wait -> continue" in history
        await read_until(rf"ETHUSDT 1m signal {signal_id[:8]}: analysis #1", 30)  # the console follows it too

        pids = _stack_pids(state)
        assert set(pids) == {"temporal", "worker", "intake", "bridge", "postgres"}
        assert all(_alive(p) for p in pids.values()), pids
        code, rest = await stop_dev_stack(dev, signal.SIGTERM)
    assert code == 0, rest
    assert "SIGTERM received: stopping the stack" in rest
    for part in ("bridge", "intake", "worker", "temporal", "PostgreSQL"):
        assert f"stopped {part}" in rest, rest
    alive = {
        name: pid for name, pid in pids.items() if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
    }
    assert not alive, alive
    assert not (state / "stack.json").exists()
    assert (state / "temporal.db").exists() and (state / "postgres" / "PG_VERSION").exists()  # the data stays


async def test_a_part_that_cannot_start_prints_its_own_error_and_commands_ignore_a_dead_stack(tmp_path):
    env = dev_env()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ui_port = taken.getsockname()[1]
        code, out, err = await _run(
            env, tmp_path, "dev", "--temporal-port", str(free_port()), "--ui-port", str(ui_port), timeout=60
        )
    assert code == 1 and f"error: Temporal UI: port {ui_port} is taken" in err, (out, err)
    # A stack.json left behind by a killed stack (no lock held) is never trusted.
    state = tmp_path / ".dev-state"
    (state / "stack.json").write_text(json.dumps({"pid": os.getpid(), "temporal_address": "127.0.0.1:1"}))
    from devstack.state import read_running

    assert read_running(state) is None


async def test_sighup_stops_the_stack_like_ctrl_c(tmp_path):
    env, state = dev_env(), tmp_path / ".dev-state"
    async with dev_stack(env, tmp_path, "--speed", "60", temporal_port=free_port(), ui_port=free_port()) as dev:
        async with asyncio.timeout(120):
            while "monitor started by the intake" not in (line := (await dev.stdout.readline()).decode()):  # type: ignore[union-attr]
                assert line
        pids = _stack_pids(state)
        code, rest = await stop_dev_stack(dev, signal.SIGHUP)
    assert code == 0 and "SIGHUP received" in rest and "stopped PostgreSQL" in rest, rest
    assert not [p for p in pids.values() if _alive(p)], pids


@pytest.mark.slow  # ~20-30 s (tests/README: `pytest -m "not slow"` for a quick loop)
async def test_after_a_restart_a_running_monitor_keeps_getting_closes_it_accepts(tmp_path):
    """The replay clock continues where it stopped (.dev-state/replay.json) instead of starting
    again in the past, where every close would be older than the monitor's last one."""
    env, ports = dev_env(), ["--temporal-port", str(free_port()), "--ui-port", str(free_port())]

    async def start_dev() -> asyncio.subprocess.Process:
        dev = await asyncio.create_subprocess_exec(
            str(BIN / "signal-monitor"),
            "dev",
            "--speed",
            "60",
            *ports,
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        async with asyncio.timeout(120):
            while "monitor started by the intake" not in (line := (await dev.stdout.readline()).decode()):  # type: ignore[union-attr]
                assert line
        return dev

    async def stop_dev(dev: asyncio.subprocess.Process) -> str:
        dev.send_signal(signal.SIGTERM)
        async with asyncio.timeout(90):
            rest = (await dev.stdout.read()).decode()  # type: ignore[union-attr]
            assert await dev.wait() == 0, rest
        return rest

    async def analyses(signal_id: str) -> int:
        code, out, err = await _run(env, tmp_path, "history", signal_id, "--json")
        assert code == 0, err
        return len(json.loads(out)["analyses"])

    async def more_than(signal_id: str, n: int, timeout: float) -> int:
        # Generous deadlines: a whole stack (re)starting on a busy 2-core machine is slow.
        deadline = time.monotonic() + timeout
        while (count := await analyses(signal_id)) <= n:
            assert time.monotonic() < deadline, f"still {count} analyses"
            await asyncio.sleep(1)
        return count

    dev = await start_dev()
    try:
        # Never enters (78 < 99) and never hits its limit: it stays monitored across the restart.
        code, out, err = await _run(
            env, tmp_path, "add-signal", "SOLUSDT", "1m", "--min-confidence", "99", "--max-reanalyses", "500"
        )
        assert code == 0, (out, err)
        signal_id = re.search(r"^signal ([0-9a-f-]{36})$", out, re.M).group(1)  # type: ignore[union-attr]
        await more_than(signal_id, 2, 180)
    finally:
        if dev.returncode is None:
            await stop_dev(dev)
    saved = json.loads((tmp_path / ".dev-state" / "replay.json").read_text())
    assert saved["clock_ms"] <= time.time() * 1000 and "SOLUSDT" in saved["last_closes"]

    dev = await start_dev()
    try:
        # Closes keep coming and are analysed: twice more, at least, after the restart.
        first = await analyses(signal_id)
        await more_than(signal_id, first + 1, 180)
        code, out, err = await _run(env, tmp_path, "status", signal_id, "--json")
        state = json.loads(out)["state"]
        # Still monitored; at --speed 60 a close arrives every second, so the query may land
        # during an analysis (`analyzing`): a full run under load once did.
        assert state["status"] in ("monitoring", "analyzing") and state["counts"]["stale"] <= 3, state
    finally:
        await stop_dev(dev)
