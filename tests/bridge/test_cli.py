"""`signal-monitor bridge` as operators run it: configuration from the environment, Prometheus
metrics on SIGNAL_MONITOR_METRICS_ADDRESS, a clean exit on SIGTERM, a clear error on bad config."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import tempfile
import uuid

import httpx
import pytest

from fakes import free_port
from fakes.binance import FakeBinance
from tests.helpers.bridge import bridge_env, kill, start_bridge_process
from tests.helpers.support import eventually


async def test_cli_serves_metrics_and_stops_on_sigterm(temporal_address):
    port = free_port()
    async with FakeBinance() as fake:
        env = bridge_env(
            fake, f"tq-{uuid.uuid4().hex[:8]}", temporal_address, SIGNAL_MONITOR_METRICS_ADDRESS=f"127.0.0.1:{port}"
        )
        with tempfile.NamedTemporaryFile(prefix="bridge-", suffix=".log", delete=False) as fh:
            log_path = fh.name
        proc = start_bridge_process(env, log_path)
        try:

            async def scraped():
                assert proc.poll() is None, open(log_path).read()[-2000:]
                try:
                    async with httpx.AsyncClient() as http:
                        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                except httpx.HTTPError as exc:
                    raise AssertionError(repr(exc)) from None
                assert "signal_monitor_bridge_streams_watched" in text
                assert "signal_monitor_bridge_closes_forwarded" in text
                return text

            text = await eventually(scraped, timeout=30, interval=0.3)
            proc.send_signal(signal.SIGTERM)
            for _ in range(100):
                if proc.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            assert proc.returncode == 0, open(log_path).read()[-2000:]
        finally:
            kill(proc)
    log = open(log_path).read()
    assert "bridge.stopped" in log
    assert "sk-" not in log and "sk-" not in text


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("SIGNAL_BRIDGE_STREAMS_PER_CONNECTION", "5000", ["SIGNAL_BRIDGE_STREAMS_PER_CONNECTION must be <= 1024"]),
        ("SIGNAL_BRIDGE_REFRESH_SECONDS", "soon", ["SIGNAL_BRIDGE_REFRESH_SECONDS must be a number", "soon"]),
    ],
)
def test_cli_rejects_bad_configuration(name: str, value: str, said: list[str]):
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "bridge"],
        capture_output=True,
        text=True,
        env={"PATH": "", name: value},
        timeout=60,
    )
    assert out.returncode == 2 and all(s in out.stderr for s in said), out.stderr


def test_cli_passes_its_arguments_to_the_bridge():
    """`signal-monitor bridge config` and `--help` reach the bridge's own parser (no `--` needed)."""
    env = {"PATH": "", "BINANCE_WS_URL": "wss://example.invalid:9443"}
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "bridge", "config"], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0 and "ws_url=wss://example.invalid:9443" in out.stdout, out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "bridge", "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0 and "usage: signal-monitor bridge" in out.stdout and "config" in out.stdout


def test_cli_shared_mode_needs_database_url_and_never_prints_it():
    env = {"PATH": "", "SIGNAL_BRIDGE_MODE": "shared"}
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "bridge", "config"], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 2 and "DATABASE_URL" in out.stderr, out.stderr
    env["DATABASE_URL"] = "postgresql://bridge:s3cret-pw@db.invalid:5432/app"
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "bridge", "config"], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0 and "mode=shared" in out.stdout and "database_url=(set)" in out.stdout, out.stderr
    assert "s3cret" not in out.stdout + out.stderr
    env["SIGNAL_BRIDGE_MODE"] = "sharded"
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "bridge"], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 2 and "redundant, shared" in out.stderr and "s3cret" not in out.stderr
