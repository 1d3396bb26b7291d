"""Operator commands for positions: `positions` (list), `close <signal> --reason ...`, and
`trader resume <trader id>` (lifts the consecutive-loss pause). Same exit codes as the monitor's
commands: 0 done, 1 not found / refused, 2 usage. A position is named by its signal's uuid, or by
`signal-<uuid>` / `position-<uuid>`."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import Callable
from typing import TextIO

import asyncpg
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import FailureError

from cli.lifecycle import PositionFacts
from cli.operator import Refused, UsageError, _status_name, described, listed, matching, print_table
from cli.text import plain, signed
from workflows.common import names
from workflows.common import search_attributes as sa
from workflows.position.models import PositionManagerInput, PositionResult, PositionStatus, PositionView


def position_workflow_id_of(raw: str) -> str:
    text = raw.strip()
    for prefix in ("position-", "signal-"):
        text = text.removeprefix(prefix)
    try:
        return names.position_workflow_id_for(str(uuid.UUID(text)))
    except ValueError:
        raise UsageError(f"{raw!r} is neither a signal uuid nor position-<uuid> / signal-<uuid>") from None


def _position_id_arg(raw: str) -> str:
    try:
        return position_workflow_id_of(raw)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_position_commands(
    sub: argparse._SubParsersAction,
    operator_entry: Callable[[argparse.Namespace], int],
    trader_entry: Callable[[argparse.Namespace], int],
) -> None:
    p = sub.add_parser("positions", help="managed positions, newest first, filtered like `list`")
    p.add_argument("--symbol", help="e.g. BTCUSDT")
    p.add_argument("--interval", help="management interval, e.g. 15m")
    p.add_argument("--trader", help="trader id")
    p.add_argument("--status", help="position status: " + ", ".join(s.value for s in PositionStatus))
    p.add_argument("--running", action="store_true", help="only running workflows")
    p.add_argument("--limit", type=int, default=50, help="at most this many rows (default 50)")
    p.set_defaults(func=operator_entry, skip_teardown=True, operator=_positions)

    p = sub.add_parser("close", help="close a position now (at the last close price), with a reason")
    p.add_argument(
        "target", metavar="signal", type=_position_id_arg, help="signal uuid, signal-<uuid> or position-<uuid>"
    )
    p.add_argument("--reason", required=True, help="why (kept in the position's close_reason)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the position to close")
    p.set_defaults(func=operator_entry, skip_teardown=True, operator=_close)

    p = sub.add_parser("trader", help="trader commands (DATABASE_URL)")
    tsub = p.add_subparsers(dest="trader_command", required=True)
    r = tsub.add_parser("resume", help="lift a trader's pause (max_consecutive_losses): new signals are monitored")
    r.add_argument("trader_id")
    r.set_defaults(func=trader_entry)


def position_columns(p: PositionFacts | None) -> tuple[str, ...]:
    """SIDE, ENTRY (the entry fill), SIZE, STOP, TARGETS, P&L, EXIT, REASON of one position."""
    if p is None:
        return ("-",) * 8
    if p.status == "open":
        pnl = f"{signed(p.unrealized_pnl)} unrealized (last {plain(p.last_price)})"
    else:
        pnl = f"{signed(p.realized_pnl)} realized"
    return (
        p.side,
        plain(p.entry_price),
        plain(p.size) if p.open_size in (p.size, 0) else f"{plain(p.open_size)}/{plain(p.size)}",
        plain(p.stop_loss),
        ",".join(map(plain, p.take_profits)) or "-",
        pnl,
        plain(p.exit_price),
        p.close_reason or "-",
    )


async def _positions(args: argparse.Namespace, client: Client, out: TextIO) -> None:
    query, found, facts = await matching(args, client, names.POSITION_WORKFLOW_TYPE, sa.POSITION_STATUS, "position-")
    rows = []
    for wf in found:
        f = (facts or {}).get(wf.id.removeprefix("position-"))
        position = f.position if f is not None else None
        row = listed(wf, sa.POSITION_STATUS)
        status = position.status if position is not None and row[2] in ("-", "opening") else row[2]
        status = _unmanaged(wf, status)
        rows.append((row[0], row[1], status, *row[3:5], *position_columns(position), *row[5:]))
    if not rows:
        print(f"no positions match ({query})", file=out)
        return
    header = (
        "WORKFLOW ID", "EXECUTION", "POSITION", "SYMBOL", "INTERVAL", "SIDE", "ENTRY", "SIZE", "STOP", "TARGETS",
        "P&L", "EXIT", "REASON", "TRADER", "STARTED",
    )  # fmt: skip
    print_table(header, rows, out, "position")
    if facts is None:
        print("(set DATABASE_URL, or run next to `signal-monitor dev`, for entry, size, P&L and exit)", file=out)


UNMANAGED = "unmanaged"


def _unmanaged(wf: WorkflowExecution, status: object) -> object:
    """A position still open (or opening) whose workflow ended around its code is managed by
    nobody: no stop is checked. Shown as `unmanaged` (`close` takes it over and closes it)."""
    if wf.status != WorkflowExecutionStatus.RUNNING and status in (PositionStatus.OPEN, PositionStatus.OPENING):
        return UNMANAGED
    return status


async def _close(args: argparse.Namespace, client: Client, out: TextIO) -> None:
    wid = position_workflow_id_of(args.target)
    if not args.reason.strip():
        raise UsageError("--reason must not be empty")
    handle, desc = await described(client, wid, PositionResult, "position")
    if desc.status != WorkflowExecutionStatus.RUNNING:
        handle = await _take_over(client, wid, desc)
    try:
        result = await asyncio.wait_for(
            handle.execute_update(names.CLOSE_UPDATE, {"reason": args.reason}, result_type=PositionResult),
            args.timeout,
        )
    except TimeoutError:
        raise Refused(f"{wid} did not answer within {args.timeout:.0f} s (is a worker polling?)") from None
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise Refused(f"close refused: {cause.message if isinstance(cause, FailureError) else cause}") from None
    print(
        f"{wid}: {result.status}: {result.reason}; exit {plain(result.exit_price)}, realized P&L "
        f"{signed(result.realized_pnl)} (fees {plain(result.fees_paid)})",
        file=out,
    )


async def _take_over(client: Client, wid: str, desc: WorkflowExecutionDescription) -> WorkflowHandle:
    """A position whose workflow ended around its code (terminated, failed, timed out, cancelled)
    may still be open in the database, managed by nobody: a new run takes the open row over (never
    opens one) so that the close goes through the one way positions close. One that ended through
    its own code is closed already: refused."""
    position_status = desc.typed_search_attributes.get(sa.POSITION_STATUS)
    if desc.status in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.CONTINUED_AS_NEW) or (
        position_status not in (None, PositionStatus.OPEN.value, PositionStatus.OPENING.value)
    ):
        raise Refused(f"{wid} has already ended ({_status_name(desc.status)})")
    signal_id = wid.removeprefix("position-")
    handle = await client.start_workflow(
        names.POSITION_WORKFLOW_TYPE,
        PositionManagerInput(signal_id=signal_id, take_over_only=True),
        id=wid,
        task_queue=desc.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        result_type=PositionResult,
    )
    view = await _taken_over(handle)
    if view is None:
        result = await handle.result()
        raise Refused(f"{wid} ({_status_name(desc.status)}): {result.reason}")
    return handle


async def _taken_over(handle: WorkflowHandle, timeout: float = 30.0) -> PositionView | None:
    """The new run's state once it holds the position, None once it ended without one."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        desc = await handle.describe()
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return None
        try:
            state = await handle.query(names.STATE_QUERY, result_type=PositionView)
        except WorkflowQueryFailedError:
            state = None
        if state is not None and state.status == PositionStatus.OPEN:
            return state
        await asyncio.sleep(0.2)
    raise Refused(f"{handle.id}: the new run did not take the position over within {timeout:.0f} s")


async def resume_trader(database_url: str, trader_id: str, out: TextIO) -> None:
    try:
        tid = uuid.UUID(trader_id)
    except ValueError:
        raise UsageError(f"{trader_id!r} is not a trader uuid") from None
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            """UPDATE traders t SET paused = false, paused_reason = NULL, paused_at = NULL, consecutive_losses = 0,
                   updated_at = now()
               FROM (SELECT id, paused, paused_reason FROM traders WHERE id = $1 FOR UPDATE) before
               WHERE t.id = before.id
               RETURNING before.paused AS was_paused, before.paused_reason AS was_reason""",
            tid,
        )
    finally:
        await conn.close()
    if row is None:
        raise Refused(f"trader {tid} not found")
    if row["was_paused"]:
        print(f"trader {tid}: resumed (was paused: {row['was_reason']})", file=out)
    else:
        print(f"trader {tid}: was not paused; consecutive losses reset", file=out)


def run_resume(database_url: str, trader_id: str, out: TextIO, err: TextIO) -> int:
    try:
        asyncio.run(resume_trader(database_url, trader_id, out))
    except UsageError as exc:
        print(f"error: {exc}", file=err)
        return 2
    except Refused as exc:
        print(f"error: {exc}", file=err)
        return 1
    return 0
