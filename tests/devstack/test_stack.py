"""The README's first command: `signal-monitor dev` brings up the whole stack from nothing (its
own Temporal dev server and UI, embedded PostgreSQL, worker, intake, bridge on the local Binance
replay, the llm-proxy stand-in), monitors a demo signal to a decision and stops cleanly, printing
the console the README's quick start shows (devstack/sample_output.py writes that sample)."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.sample_output import README, drift, read_block, readme_form
from fakes import free_port
from tests.helpers.processes import dev_env, dev_stack


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory of its own, as a newcomer's checkout (the stack's state goes to ./.dev-state).
    Not under pytest's tmp root: embedded PostgreSQL runs as its own user and must traverse every
    parent, and another pytest session on the machine resets that root to 0700."""
    path = Path(tempfile.mkdtemp(prefix="signal-monitor-dev-test-")).resolve()
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_dev_runs_a_demo_signal_to_a_decision_and_the_ui_link_works(workdir):
    temporal_port, ui_port = free_port(), free_port()
    env = dev_env()
    lines: list[str] = []
    ui_status = None
    scraped: dict[str, str] = {}
    async with dev_stack(
        env, workdir, "--until-decided", "--speed", "60", temporal_port=temporal_port, ui_port=ui_port
    ) as proc:
        assert proc.stdout is not None  # stdout=PIPE
        async with asyncio.timeout(150):
            while line := (await proc.stdout.readline()).decode():
                lines.append(line)
                link = re.search(r"Temporal UI: (http://\S+)", line)
                if link:
                    url = link.group(1)
                    ui_status = await asyncio.to_thread(_http_status, url)
                if "metrics (Prometheus):" in line:
                    for name, url in re.findall(r"(worker|intake|bridge) (http://\S+/metrics)", line):
                        scraped[name] = await asyncio.to_thread(_http_text, url, EXPECTED_METRIC[name])
            code = await proc.wait()
    output = "".join(lines)
    assert code == 0, output
    assert ui_status == 200, output
    assert re.search(
        rf"Temporal UI: http://localhost:{ui_port}/namespaces/default/workflows/signal-[0-9a-f-]{{36}}", output
    )
    assert "monitor started by the intake" in output
    # A candle by both ends, with the close the analysis read.
    assert re.search(r"analysis #1 on candle \d{4}-\d\d-\d\d \d\d:\d\d–\d\d:\d\d UTC \(close [0-9.]+\)", output), output
    assert "stale" not in output or "stale (closed no later than" in output, output
    assert "monitor ended: signal is in_position" in output, output
    assert "position opened (paper): long" in output, output
    assert re.search(
        r"position closed \(\w+: .*\): exit fill at [0-9.]+, realized P&L [-+]?[0-9.]+ after fees [0-9.]+", output
    ), output
    # The default stand-in is the model backend's rule (fakes/model), labelled as no model.
    assert "decides by a documented rule: a rule, NOT a model" in output and "E-" not in output, output
    # `dev` prints each process's Prometheus endpoint, and each answers with its metrics.
    assert sorted(scraped) == ["bridge", "intake", "worker"], output
    assert "signal_monitor_intake_listening" in scraped["intake"]
    assert "signal_monitor_bridge_streams_watched" in scraped["bridge"]
    assert "temporal_" in scraped["worker"]
    for part in ("bridge", "intake", "worker", "temporal", "PostgreSQL"):
        assert f"stopped {part}" in output, output
    # The README's sample: the same lines as this console, times and numbers aside (this run is
    # at --speed 60 and lands on whichever candle the machine's load allows).
    printed = readme_form(lines, temporal_port=temporal_port, ui_port=ui_port, scratch=workdir)
    problems = drift(printed, read_block(README.read_text()))
    assert not problems, "\n".join(
        ["the README's sample output drifted: `python -m devstack.sample_output`", *problems]
    )


# A metric each process exports once it is at work (the intake's once it listens).
EXPECTED_METRIC = {
    "worker": "temporal_",
    "intake": "signal_monitor_intake_listening",
    "bridge": "signal_monitor_bridge_streams_watched",
}


def _http_text(url: str, expected: str) -> str:
    # The processes have just started: their endpoints and metrics may need a moment.
    text = ""
    for _ in range(100):
        try:
            text = urllib.request.urlopen(url, timeout=10).read().decode()
        except OSError:
            text = ""
        if expected in text:
            break
        time.sleep(0.2)
    return text


def _http_status(url: str) -> int:
    return urllib.request.urlopen(url, timeout=10).status
