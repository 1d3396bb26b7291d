"""`python -m bench.faults`: the whole fault suite (tests/faults/) -- the fast cases of the normal
test command, then the long ones (marker `long`, left out of the normal run) -- then bench/FAULTS.md,
one table row per case from the figures of its three checks (tests/helpers/fault_checks.py).

Options: `--only EXPR` (a pytest -k expression), `--fast-only`, `--long-only`, `--output PATH`.
Exits non-zero when a row fails or a case never reached its checks."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RECORD_ENV = "SIGNAL_MONITOR_FAULTS_RECORD"  # tests/helpers/fault_checks.py
SUITE = "tests/faults"
HEADER = "| case | closes in | analyses stored | duplicates | lost | stuck | result |"


@dataclass
class Outcome:
    test: str  # pytest node id
    outcome: str  # passed | failed | error | skipped
    seconds: float
    message: str = ""


@dataclass
class Run:
    name: str
    paths: list[str]
    markexpr: str
    outcomes: list[Outcome] = field(default_factory=list)
    exit_code: int = 0
    seconds: float = 0.0
    log: str = ""


def _node_id(case: ET.Element) -> str:
    module = case.get("classname", "")
    path = module.replace(".", "/") + ".py"
    return f"{path}::{case.get('name')}"


def run_pytest(run: Run, record: Path, only: str | None, log_dir: Path) -> None:
    xml = log_dir / f"{run.name}.xml"
    log = log_dir / f"{run.name}.log"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-s",
        "-p",
        "no:cacheprovider",
        "-o",
        "junit_family=xunit1",
        f"--junitxml={xml}",
        "-m",
        run.markexpr,
        *run.paths,
    ]
    if only:
        cmd += ["-k", only]
    env = dict(os.environ, **{RECORD_ENV: str(record)})
    print(f"[faults] {run.name}: {' '.join(cmd[1:])}", flush=True)
    started = time.monotonic()
    with log.open("wb") as out:
        run.exit_code = subprocess.call(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    run.seconds = time.monotonic() - started
    run.log = str(log)
    if xml.exists():
        for case in ET.parse(xml).getroot().iter("testcase"):
            outcome, message = "passed", ""
            for kind in ("failure", "error", "skipped"):
                el = case.find(kind)
                if el is not None:
                    outcome = {"failure": "failed"}.get(kind, kind)
                    message = (el.get("message") or "").splitlines()[0][:300] if el.get("message") else ""
                    break
            run.outcomes.append(Outcome(_node_id(case), outcome, float(case.get("time") or 0), message))
    print(
        f"[faults] {run.name}: exit {run.exit_code} in {run.seconds:.0f} s "
        f"({sum(o.outcome == 'passed' for o in run.outcomes)}/{len(run.outcomes)} passed; log {log})",
        flush=True,
    )


def machine() -> str:
    model = ""
    with open("/proc/cpuinfo") as cpu:
        for line in cpu:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    temporal = Path(sys.executable).parent / "temporal"
    try:
        version = subprocess.run(
            [str(temporal), "--version"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except OSError:
        version = "temporal CLI not found"
    return (
        f"{os.cpu_count()} cores ({model or platform.machine()}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, {version}"
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _timing(o: Outcome) -> str:
    path, _, name = o.test.partition("::")
    return f"{Path(path).stem}::{name} {o.seconds:.0f} s"


def write_report(
    output: Path, runs: list[Run], rows: list[dict], argv: list[str], started: datetime.datetime, seconds: float
) -> bool:
    outcomes = {o.test: o for run in runs for o in run.outcomes}
    recorded = {row.get("test", "") for row in rows}
    lines = [
        "# Fault suite",
        "",
        f"`python -m bench.faults{(' ' + ' '.join(argv)) if argv else ''}`, run {started:%Y-%m-%d %H:%M} UTC, "
        f"took {seconds / 60:.1f} min; machine: {machine()}.",
        "",
        "Cases are `tests/faults/`: the fast ones are in the README's test command, the long ones "
        "(`tests/faults/test_long_*.py`, marker `long`) only here; all run on real parts (Temporal dev server, PostgreSQL 18, "
        "`signal-monitor worker`/`bridge` processes, FakeBinance, fake llm-proxy). Every case ends with "
        "the three checks of `tests/helpers/fault_checks.py`: every close analysed exactly once (closes in vs. "
        "`signal_analyses`), no workflow stuck, no signal status disagreeing with its workflow. *closes in* "
        "counts the closes each monitor was fed while it listened; a close missing because a newer one was "
        "analysed instead (the product analyses only a stream's newest close after an outage or during an "
        "analysis) is superseded, not lost, within what the case allows; *analyses stored* includes each "
        "monitor's first analysis (no candle).",
        "",
        HEADER,
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    ok = True
    notes: list[str] = []
    for row in rows:
        test = outcomes.get(row.get("test", ""))
        passed = bool(row["ok"]) and (test is None or test.outcome == "passed")
        ok &= passed
        lines.append(
            f"| {_cell(row['case'])} | {row['closes_in']} | {row['analyses_stored']} | {row['duplicates']} | "
            f"{row['lost']} | {row['stuck']} | {'PASS' if passed else 'FAIL'} |"
        )
        if not row["ok"]:
            notes.append(f"- FAIL {row['case']}: {'; '.join(row['problems'])[:500]}")
        elif test is not None and test.outcome != "passed":
            notes.append(f"- FAIL {row['case']}: the checks held, then the test {test.outcome}: {test.message}")
        if row.get("superseded"):
            n = row["superseded"]
            notes.append(f"- {row['case']}: {n} close{'s' if n != 1 else ''} superseded by a newer analysed close")
    for run in runs:
        for o in run.outcomes:
            # (A test that passed without checking, e.g. one proving the checks catch a loss, is no case.)
            if o.test not in recorded and o.outcome in ("failed", "error"):
                ok = False
                notes.append(f"- FAIL `{o.test}` never reached its checks: pytest {o.outcome}: {o.message}")
        if not run.outcomes and run.exit_code not in (0, 5):
            ok = False
            notes.append(f"- FAIL {run.name} run: pytest exited {run.exit_code} without results (log {run.log})")
    if not rows:
        ok = False
        notes.append("- FAIL no case reached its checks")
    lines += ["", *notes] if notes else []
    lines += [
        "",
        "Per run: "
        + "; ".join(f"{run.name} {run.seconds:.0f} s ({', '.join(_timing(o) for o in run.outcomes)})" for run in runs)
        + ".",
    ]
    output.write_text("\n".join(lines) + "\n")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.faults",
        description=("Runs the fault suite (tests/faults/, the long cases too) and writes bench/FAULTS.md."),
    )
    parser.add_argument("--only", metavar="EXPR", help="only the cases a pytest -k expression selects")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--fast-only", action="store_true", help="only the fast cases (pytest -m 'not long' tests/faults)"
    )
    group.add_argument("--long-only", action="store_true", help="only the long cases (pytest -m long tests/faults)")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "FAULTS.md", help="default: bench/FAULTS.md")
    args = parser.parse_args(argv)
    argv = list(argv if argv is not None else sys.argv[1:])

    runs = []
    if not args.long_only:
        runs.append(Run("fast", [SUITE], "not long"))
    if not args.fast_only:
        runs.append(Run("long", [SUITE], "long"))
    started, t0 = datetime.datetime.now(datetime.UTC), time.monotonic()
    log_dir = Path(tempfile.mkdtemp(prefix="signal-monitor-faults-"))
    record = log_dir / "figures.jsonl"
    record.touch()
    for run in runs:
        run_pytest(run, record, args.only, log_dir)
    rows = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
    ok = write_report(args.output, runs, rows, argv, started, time.monotonic() - t0)
    print(args.output.read_text())
    print(f"[faults] {'PASS' if ok else 'FAIL'}: {args.output} written; logs in {log_dir}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
