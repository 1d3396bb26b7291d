"""How a monitor ends: the status and reason of every end, in one table. Pure."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

from market.intervals import is_valid_interval
from workflows.common.candles import is_valid_symbol
from workflows.monitor.models import EndStatus, MonitorDecision, SignalContext

# The statuses `record_analysis` writes.
RecordStatus = Literal["monitoring", "in_position", "expired"]
MAX_CONSECUTIVE_FAILURES = 5
MAX_REANALYSES_CEILING = 1000
# Seconds between looks for the platform's initial analysis; doubled after each look, until the grace runs out.
PLATFORM_LOOK_FIRST_WAIT = 10.0


class End(NamedTuple):
    """An end the monitor decides, written by `finish_signal`."""

    status: EndStatus
    reason: str


class AnalysisOutcome(NamedTuple):
    """What one recorded analysis does to the signal; `reason` is None while monitoring goes on."""

    new_status: RecordStatus
    reason: str | None


def after_analysis(decision: MonitorDecision, number: int, max_reanalyses: int) -> AnalysisOutcome:
    if decision == "enter":
        return AnalysisOutcome("in_position", f"entered at analysis #{number}")
    if decision == "abandon":
        return AnalysisOutcome("expired", f"abandoned by the model at analysis #{number}")
    if number >= max_reanalyses:
        return AnalysisOutcome("expired", f"reanalysis limit reached ({max_reanalyses})")
    return AnalysisOutcome("monitoring", None)


def deadline_of(ctx: SignalContext) -> datetime | None:
    """The end of `max_monitoring_duration`, None when it is not a usable time (non-finite or
    non-positive duration, or past datetime's range: '9000 years')."""
    seconds = ctx.max_monitoring_seconds
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    try:
        return ctx.signal_time + timedelta(seconds=seconds)
    except OverflowError:
        return None


def platform_grace_end(ctx: SignalContext) -> datetime:
    """Until when the monitor looks for the platform's own initial analysis."""
    return ctx.signal_time + timedelta(seconds=ctx.platform_grace_seconds)


def platform_wait(grace_end: datetime, now: datetime, looks: int) -> float | None:
    """Seconds to wait before the next look for the platform's initial analysis after `looks`
    empty looks past the first (the wait doubles each time, and never outlasts the grace); None
    once the grace has run out."""
    remaining = (grace_end - now).total_seconds()
    if remaining <= 0:
        return None
    return min(PLATFORM_LOOK_FIRST_WAIT * 2**looks, remaining)


def context_problem(ctx: SignalContext) -> str | None:
    """What makes a loaded signal unmonitorable (it then ends `failed` with this reason)."""
    if not ctx.trader_found:
        return f"trader {ctx.trader_id} not found"
    if not is_valid_interval(ctx.interval):
        return f"unknown interval {ctx.interval!r}"
    if not is_valid_symbol(ctx.symbol):
        return f"invalid symbol {ctx.symbol!r}"
    if deadline_of(ctx) is None:
        return f"max_monitoring_duration of {ctx.max_monitoring_seconds} s from {ctx.signal_time} is not a usable time"
    return None


def invalid(problem: str) -> End:
    return End("failed", problem)


def deadline_passed(*, before_start: bool) -> End:
    if before_start:
        return End("expired", "max_monitoring_duration had passed before monitoring started")
    return End("expired", "max_monitoring_duration passed with no decision")


def abandoned_by_operator(reason: str) -> End:
    return End("expired", f"abandoned by operator: {reason}")


def limit_lowered() -> End:
    return End("expired", "reanalysis limit reached (lowered by operator)")


def too_many_failures(failures: int, message: str) -> End:
    return End("failed", f"{failures} consecutive analyses failed: {message[:200]}")


def cancelled() -> End:
    return End("cancelled", "cancelled by operator")


def as_stored(wanted: End, stored: str | None) -> tuple[str, str]:
    """The end the database actually holds: an earlier end (e.g. `in_position`) is never overwritten."""
    if stored is not None and stored != wanted.status:
        return stored, f"signal was already {stored}"
    return wanted.status, wanted.reason


def recorded_end(stored: str, wanted: AnalysisOutcome, stored_reason: str | None) -> tuple[str, str]:
    """The end after an analysis found the signal ended, by this analysis or under the monitor
    (an operator's cancel won the race, the trader was deleted)."""
    if stored != wanted.new_status and stored_reason:
        return stored, stored_reason
    return stored, wanted.reason or f"signal is {stored}"
