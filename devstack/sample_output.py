"""The README's sample output, taken from a real run of the README's first command.

`python -m devstack.sample_output` runs `signal-monitor dev --until-decided --fresh` (the offline
stack) in a scratch directory and rewrites the block between the README's sample-output markers
with its console, normalised only where a run differs from the next: uuids, the stack's own ports
(the Temporal server and UI as their defaults 7233 and 8233, the local stand-ins' as `<port>`), the
scratch directory (`…`), the venv's scripts (`.venv/bin/`, as from the repository's root) and the
clock. Times become `<T>` (the first time the console names) and `<T+Nm>` relative to it, so the
sample keeps its order of events without claiming a date. Prices, sizes and counts stay as that run
printed them. `--check` compares instead of writing (exit 1 when the README has drifted).

The drift test (tests/devstack/test_stack.py) compares a test run's console with the README's block
through `drift`: both sides loosened further (every time `<T>`, every number `<n>`, the command
without its path, the closes-count lines by their start), since which candle the demo lands on,
and so its prices and counts, depends on the machine's load. What it catches is a line the stack
prints that the README does not show, or one the README shows that the stack no longer prints."""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN = "<!-- sample-output:begin: `python -m devstack.sample_output` writes this block from a real run -->"
END = "<!-- sample-output:end -->"
COMMAND = ("dev", "--until-decided", "--fresh")
DEFAULT_TEMPORAL_PORT, DEFAULT_UI_PORT = 7233, 8233
# Lines whose presence depends on timing alone, explained in the README beside the sample: a
# console may show them or not.
OPTIONAL = (re.compile(r"^\[dev\] replay clock caught up with the wall clock"),)

_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_LOCAL_PORT = re.compile(r"\b(127\.0\.0\.1|localhost):(\d{2,5})\b")
_STATE_PATH = re.compile(r"(?<![\w.…/])/[^\s'\"`()?=@:]*?/(?=\.dev-state\b)")
# A time the console names: "2026-12-07 14:16 UTC", "14:16 UTC", or a candle by both its ends,
# "2026-12-07 14:15–14:16 UTC"; each time in it becomes <T...>.
_CLOCK = r"(?:\d{4}-\d\d-\d\d[ T])?\d\d:\d\d(?::\d\d)?"
_TIME_EXPR = re.compile(rf"\b{_CLOCK}(?:\s*[–-]\s*{_CLOCK})?(?=\s*UTC\b|Z\b)")
_TIME = re.compile(r"(?:\d{4}-\d\d-\d\d[ T])?(\d\d):(\d\d)(?::\d\d)?")
# How the console tells a user to run a command again: the venv's script by its path, or the bare
# name with an activated venv. Compared without the path.
_COMMAND_PATH = re.compile(r"[^\s`'\"(]*/(?=signal-monitor\b)")
# Lines whose words depend on the run itself, compared by the part each of these matches: which
# kinds of closes a monitor happened to set aside, and how the demo position ends (the model's
# `close`, or its stop or target when the candle the demo lands on reaches one first).
VARYING = (
    re.compile(r"^\[dev\] (?:candle )?closes received <n>"),
    re.compile(r"^\[dev\] managed candle [^:]*:"),
    re.compile(r"^\[dev\] position closed \("),
)
_RELATIVE = re.compile(r"<T(?:[+-]\d+m)?>")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")  # a P&L prints with its sign


def readme_form(
    console: Iterable[str],
    *,
    temporal_port: int,
    ui_port: int,
    scratch: Path | None = None,
    scripts: Path | None = None,
) -> list[str]:
    """The console as the README shows it (see the module's docstring for what is normalised).
    `scripts`: the venv's bin folder the stack ran from, shown as the README's `.venv/bin`."""
    scripts = scripts if scripts is not None else Path(sys.executable).parent
    lines = [line.rstrip() for line in console if line.strip()]
    base: int | None = None

    def relative(match: re.Match[str]) -> str:
        nonlocal base
        minute = int(match.group(1)) * 60 + int(match.group(2))
        if base is None:
            base = minute
        offset = (minute - base + 720) % 1440 - 720  # nearest: a demo never spans 12 hours
        return "<T>" if offset == 0 else f"<T{offset:+d}m>"

    def port(match: re.Match[str]) -> str:
        host, number = match.group(1), int(match.group(2))
        if number == temporal_port:
            return f"{host}:{DEFAULT_TEMPORAL_PORT}"
        if number == ui_port:
            return f"{host}:{DEFAULT_UI_PORT}"
        return f"{host}:<port>"

    out = []
    for line in lines:
        line = line.replace(str(scripts) + "/", ".venv/bin/")
        if scratch is not None:
            line = line.replace(str(scratch) + "/", "…/")
        line = _STATE_PATH.sub("…/", line)
        line = _UUID.sub("<uuid>", line)
        line = _LOCAL_PORT.sub(port, line)
        line = _TIME_EXPR.sub(lambda m: _TIME.sub(relative, m.group(0)), line)
        out.append(line)
    return out


def loose(line: str) -> str:
    """What the drift test compares: the README form with every time, number and path to the
    command alike, and a line whose words vary by run (VARYING) by its start."""
    line = _NUMBER.sub("<n>", _RELATIVE.sub("<T>", _COMMAND_PATH.sub("", line)))
    for pattern in VARYING:
        if match := pattern.match(line):
            return match.group(0)
    return line


def drift(printed: Iterable[str], shown: Iterable[str]) -> list[str]:
    """How the README's block (`shown`) differs from a console in README form (`printed`): one
    message per line the stack printed that the README lacks, or the README has that the stack did
    not print; empty when they agree."""
    printed_set = {loose(line) for line in printed}
    shown_set = {loose(line) for line in shown}
    problems = []
    for line in sorted(printed_set - shown_set):
        if not any(p.search(line) for p in OPTIONAL):
            problems.append(f"printed by the stack, missing from the README's sample: {line}")
    for line in sorted(shown_set - printed_set):
        if not any(p.search(line) for p in OPTIONAL):
            problems.append(f"in the README's sample, not printed by the stack: {line}")
    return problems


def read_block(readme: str) -> list[str]:
    """The sample block's console lines (the fenced code inside the markers)."""
    start, end = readme.index(BEGIN), readme.index(END)
    body = readme[start + len(BEGIN) : end].strip().splitlines()
    return [line for line in body if line.strip() and not line.startswith("```")]


def write_block(readme: str, lines: list[str]) -> str:
    start, end = readme.index(BEGIN), readme.index(END)
    block = "\n".join([BEGIN, "```text", *lines, "```", ""])
    return readme[:start] + block + readme[end:]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _offline_env() -> dict[str, str]:
    """This environment without the project's settings: the stack a newcomer runs, offline,
    whatever this shell points at (a real llm-proxy, a database, another stack's state)."""
    prefixes = ("TEMPORAL_", "SIGNAL_MONITOR_", "SIGNAL_BRIDGE_", "LLM_PROXY_", "BINANCE_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes) and k != "DATABASE_URL"}


def run_dev(timeout: float = 300) -> list[str]:
    """Run the README's first command to its end in a scratch directory; its console in README form."""
    temporal_port, ui_port = _free_port(), _free_port()
    program = Path(sys.executable).parent / "signal-monitor"
    with tempfile.TemporaryDirectory(prefix="signal-monitor-sample-") as scratch:
        done = subprocess.run(
            [str(program), *COMMAND, "--temporal-port", str(temporal_port), "--ui-port", str(ui_port)],
            cwd=scratch,
            env=_offline_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"signal-monitor {' '.join(COMMAND)} exited {done.returncode}:\n{done.stdout}")
        return readme_form(
            done.stdout.splitlines(), temporal_port=temporal_port, ui_port=ui_port, scratch=Path(scratch).resolve()
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.sample_output",
        description="Run `signal-monitor dev --until-decided --fresh` and write its console into the README's sample block.",
    )
    parser.add_argument("--readme", type=Path, default=README, help="default: the repository's README.md")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when the README has drifted")
    args = parser.parse_args(argv)
    lines = run_dev()
    text = args.readme.read_text()
    if args.check:
        problems = drift(lines, read_block(text))
        for problem in problems:
            print(problem)
        print("README sample: " + ("drifted" if problems else "agrees with the stack"))
        return 1 if problems else 0
    args.readme.write_text(write_block(text, lines))
    print("\n".join(lines))
    print(f"written to {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
