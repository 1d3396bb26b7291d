"""`backtest --concurrency N`: a backtest against a real model is latency-bound (seconds a call), and
one time-skipping server feeds its signals in series. Signals are independent (each has its own
monitor and position), so they are dealt round-robin to N groups, each run on its own time-skipping
server (the same PostgreSQL server, a database each) at the same time, and the outcomes merged into
one report. Caveat: a trader's `max_consecutive_losses` pause counts within a group only. The call
cap is shared out between the groups (its total stays the cap)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

from backtest.engine import run_backtest
from backtest.model_run import ModelRun
from backtest.report import Report, build_report
from backtest.sandbox import Sandbox, quiet_runtime, start_time_skipping
from backtest.spec import BacktestSpec, ProxyTarget


def groups(spec: BacktestSpec, n: int) -> list[BacktestSpec]:
    """Round-robin by signal time; the cap split so that the parts add up to it."""
    ordered = sorted(spec.signals, key=lambda s: s.time_ms)
    parts = [ordered[i::n] for i in range(n)]
    parts = [p for p in parts if p]
    specs = []
    for i, part in enumerate(parts):
        cap = None
        if spec.max_calls is not None:
            cap = spec.max_calls // len(parts) + (1 if i < spec.max_calls % len(parts) else 0)
        specs.append(dataclasses.replace(spec, signals=part, max_calls=cap))
    return specs


def merge(reports: list[Report]) -> Report:
    first = reports[0].run
    stopped = "; ".join(r.run.stopped for r in reports if r.run.stopped) or None
    run = first.model_copy(
        update={
            "last_close_ms": max(r.run.last_close_ms for r in reports),
            "stopped": stopped,
            "max_calls": sum(r.run.max_calls for r in reports if r.run.max_calls is not None)
            if first.max_calls is not None
            else None,
            "late_events": sum(r.run.late_events for r in reports),
            "max_late_seconds": max(r.run.max_late_seconds for r in reports),
        }
    )
    return build_report(run, [o for r in reports for o in r.signals])


async def run_concurrent(
    box: Sandbox,
    spec: BacktestSpec,
    proxy: ProxyTarget,
    concurrency: int,
    progress: Callable[[str], None] | None = None,
    model: ModelRun | None = None,
    quiet: bool = True,
) -> Report:
    if concurrency <= 1 or len(spec.signals) <= 1:
        return await run_backtest(box, spec, proxy, progress=progress, model=model)
    parts = groups(spec, concurrency)
    extra = [await start_time_skipping(quiet_runtime() if quiet else None) for _ in parts[1:]]
    boxes = [box, *(Sandbox(env=env, postgres=box.postgres) for env in extra)]
    try:
        reports = await asyncio.gather(
            *(
                run_backtest(b, part, proxy, progress=progress, model=model)
                for b, part in zip(boxes, parts, strict=True)
            )
        )
    finally:
        for env in extra:
            await env.shutdown()
    return merge(list(reports))
