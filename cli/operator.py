"""Operator commands of `signal-monitor`: status, list, cancel, abandon, reanalyze, set-limit.

Thin wrappers over the Temporal client (the same calls the stock `temporal` CLI makes). Exit codes:
0 done, 1 not found / refused / no answer (the workflow's own message is printed), 2 usage.
A signal is named by its uuid or by its workflow id `signal-<uuid>`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import os
import re
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TextIO, cast

from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ApplicationError, CancelledError, FailureError
from temporalio.service import RPCError, RPCStatusCode

from cli.lifecycle import SignalFacts, monitor_statuses_for, signal_facts
from cli.text import candle_span, closes_text, plain, signed
from intake.monitor_identity import same_signal, started_for
from market.intervals import INTERVAL_MS
from runtime.config import Settings
from runtime.exits import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from workflows.common import names
from workflows.common import search_attributes as sa
from workflows.common.timefmt import utc_text
from workflows.monitor.models import AnalysisRecord, MonitorResult, MonitorStatus, MonitorView

# What `MonitorStatus` can hold: the monitor's statuses and the platform's end statuses it mirrors.
MONITOR_STATUSES = tuple(status.value for status in MonitorStatus)
INTERVALS = tuple(k for k in INTERVAL_MS)
# One operator command: its arguments, the connected client, where it prints.
Operator = Callable[[argparse.Namespace, Client, TextIO], Awaitable[None]]
_FILTER_VALUE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


class UsageError(Exception):
    pass


class ClosedPipeQuiet(io.TextIOBase):
    """Output that stops quietly once its reader has gone (EPIPE): the command still finishes
    and exits with its own code, and nothing is printed about the pipe."""

    def __init__(self, inner: TextIO):
        self._inner = inner
        self.reader_gone = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                self._inner.write(text)
            except BrokenPipeError:
                self._gone()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._inner.flush()
            except BrokenPipeError:
                self._gone()

    def _gone(self) -> None:
        self.reader_gone = True
        # The interpreter flushes stdout once more at exit: let that go to /dev/null, quietly.
        silence_closed_pipe(self._inner)


def silence_closed_pipe(stream: TextIO) -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # not a real file (a test's StringIO): nothing will flush it at exit


class Refused(Exception):
    """Not found, rejected by a validator, or no answer: exit 1 with this message."""


def workflow_id_of(raw: str) -> str:
    text = raw.strip()
    if text.startswith("signal-"):
        text = text[len("signal-") :]
    try:
        return names.workflow_id_for(str(uuid.UUID(text)))
    except ValueError:
        raise UsageError(f"{raw!r} is neither a signal uuid nor a workflow id signal-<uuid>") from None


# --- argument parsing ----------------------------------------------------------------------------


def positive_seconds(raw: str) -> float:
    """A timeout: a finite number of seconds above zero (argparse makes anything else exit 2)."""
    value = _seconds_value(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {raw!r}")
    return value


def wait_seconds(raw: str) -> float:
    """`cancel --wait`: 0 means do not wait; negative is a usage error."""
    value = _seconds_value(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (do not wait) or a positive number of seconds, got {raw!r}")
    return value


def _seconds_value(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {raw!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, got {raw!r}")
    return value


def add_commands(sub: argparse._SubParsersAction, entry: Callable[[argparse.Namespace], int]) -> None:
    """Registers the operator subcommands; `entry` runs one (connects, then `run`)."""
    p = sub.add_parser("status", help="a monitor's status, counts, last decision and history")
    p.add_argument("signal", help="signal uuid or workflow id signal-<uuid>")
    p.add_argument("--json", action="store_true", help="print the state (or result) as JSON")
    p.add_argument("--timeout", type=positive_seconds, default=10.0, help="seconds to wait for the state query")
    p.set_defaults(func=entry, skip_teardown=True, operator=_status)

    p = sub.add_parser("list", help="monitors, newest first, filtered by their search attributes")
    p.add_argument("--symbol", help="e.g. BTCUSDT")
    p.add_argument("--interval", choices=INTERVALS, metavar="INTERVAL", help="e.g. 15m (" + ", ".join(INTERVALS) + ")")
    p.add_argument("--trader", help="trader id")
    p.add_argument("--status", choices=MONITOR_STATUSES, help="monitor status")
    p.add_argument("--running", action="store_true", help="only running workflows")
    p.add_argument("--limit", type=int, default=50, help="at most this many rows (default 50)")
    p.set_defaults(func=entry, skip_teardown=True, operator=_list)

    p = _signal_command(sub, entry, _cancel, "cancel", "cancel a monitor: the signal becomes `cancelled`")
    p.add_argument("--wait", type=wait_seconds, default=30.0, help="seconds to wait for the end (0: do not wait)")

    p = _signal_command(
        sub, entry, _abandon, "abandon", "stop monitoring now: the signal becomes `expired` with a reason"
    )
    p.add_argument("--reason", required=True, help="why (shown in the signal's monitor_reason)")
    _answer_timeout(p, 60.0)

    p = _signal_command(sub, entry, _reanalyze, "reanalyze", "analyse the newest candle that has no analysis yet, now")
    _answer_timeout(p, 120.0, "seconds to wait for the analysis")

    p = _signal_command(sub, entry, _set_limit, "set-limit", "change this signal's reanalysis limit")
    p.add_argument("limit", type=int, help="the new maximum number of reanalyses")
    _answer_timeout(p, 60.0)


def _signal_command(
    sub: argparse._SubParsersAction,
    entry: Callable[[argparse.Namespace], int],
    operator: Operator,
    name: str,
    help: str,
) -> argparse.ArgumentParser:
    """A subcommand acting on one signal's monitor (its first argument), run by `entry`."""
    p = sub.add_parser(name, help=help)
    p.add_argument("signal")
    p.set_defaults(func=entry, skip_teardown=True, operator=operator)
    return p


def _answer_timeout(
    p: argparse.ArgumentParser, default: float, help: str = "seconds to wait for the monitor to answer"
) -> None:
    p.add_argument("--timeout", type=positive_seconds, default=default, help=help)


def check_usage(args: argparse.Namespace) -> None:
    """Usage errors that need no server: raised before connecting."""
    if getattr(args, "signal", None) is not None:
        workflow_id_of(args.signal)


async def run(args: argparse.Namespace, client: Client, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    # `status <id> | head -1`: a reader that leaves early is not an error of the command.
    out = cast(TextIO, ClosedPipeQuiet(out))
    try:
        check_usage(args)
        await args.operator(args, client, out)
        out.flush()
    except UsageError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    except Refused as exc:
        print(f"error: {exc}", file=err)
        return EXIT_ERROR
    except RPCError as exc:
        print(f"error: Temporal refused the request: {exc.status.name}: {exc.message}", file=err)
        return EXIT_ERROR
    return EXIT_OK


async def run_argv(argv: Sequence[str], client: Client, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Parse and run one operator command against `client` (what `signal-monitor` does after
    connecting; tests call it in-process)."""
    parser = argparse.ArgumentParser(prog="signal-monitor")
    add_commands(parser.add_subparsers(dest="command", required=True), lambda _a: EXIT_OK)
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    return await run(args, client, out, err)


# --- commands ---------------------------------------------------------------------------------------


async def described(
    client: Client, wid: str, result_type: type, what: str
) -> tuple[WorkflowHandle, WorkflowExecutionDescription]:
    """The workflow's handle and description; Refused when there is none (`what`: monitor, position)."""
    handle = client.get_workflow_handle(wid, result_type=result_type)
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise Refused(f"no {what} for this signal (workflow {wid} not found)") from None
        raise
    return handle, desc


async def _describe(client: Client, wid: str) -> tuple[WorkflowHandle, WorkflowExecutionDescription]:
    handle, desc = await described(client, wid, MonitorResult, "monitor")
    input_id = await started_for(client, wid, desc.run_id)
    if not same_signal(input_id, wid.removeprefix("signal-")):
        # `temporal workflow start --workflow-id signal-<C> --input '{"signal_id": "<B>"}'`: acting
        # on it would cancel or change B's row through C's name.
        shown = repr(input_id)[:80] if input_id is not None else "an input without a signal id"
        raise Refused(f"{wid} is not this signal's monitor: it was started for {shown}; not touching it")
    return handle, desc


def _status_name(status: WorkflowExecutionStatus | None) -> str:
    return status.name.capitalize() if status else "unknown"


async def _status(args: argparse.Namespace, client: Client, out: TextIO) -> None:
    wid = workflow_id_of(args.signal)
    handle, desc = await _describe(client, wid)
    attrs = desc.typed_search_attributes
    running = desc.status == WorkflowExecutionStatus.RUNNING
    state: MonitorView | None = None
    result: MonitorResult | None = None
    ended_with = ""
    if running:
        try:
            state = await handle.query(names.STATE_QUERY, result_type=MonitorView, rpc_timeout=_seconds(args.timeout))
        except (TimeoutError, RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError) as exc:
            # No worker polling, or a workflow task failing: describe still answers, and is shown.
            ended_with = f"(state query unanswered: {getattr(exc, 'message', None) or str(exc) or 'timeout'})"
    else:
        try:
            result = await handle.result(follow_runs=False, rpc_timeout=_seconds(10))
        except WorkflowFailureError as exc:
            ended_with = _failure_text(exc)
    db_lines: list[str] = []
    db_rows: list[dict] | None = None
    db_note: str | None = None
    signal_id = wid.removeprefix("signal-")
    interval = attrs.get(sa.SIGNAL_INTERVAL)
    if not running:
        db_lines, db_rows, db_note = await _db_history(signal_id)
    facts = ((await signal_facts(Settings.from_env().database_url, [signal_id])) or {}).get(signal_id)
    if args.json:
        doc = {
            "workflow_id": wid,
            "run_id": desc.run_id,
            "execution_status": desc.status.name if desc.status else None,
            "search_attributes": _attrs_dict(attrs),
            "signal": facts.model_dump(mode="json") if facts else None,
            "state": state.model_dump(mode="json") if state else None,
            "result": result.model_dump(mode="json") if result else None,
            "failure": ended_with or None,
            "history": db_rows,
        }
        print(json.dumps(doc, indent=2), file=out)
        _fail_if_unanswered(running, state, wid, ended_with)
        return
    monitor_status = str(attrs.get(sa.MONITOR_STATUS) or (state.status if state else "-"))
    row = [
        ("workflow", f"{wid} (run {desc.run_id})"),
        ("execution", _status_name(desc.status)),
        ("status", lifecycle_text(facts, monitor_status)),
        ("monitor", monitor_status),
        ("signal", f"{attrs.get(sa.SIGNAL_SYMBOL) or '-'} {attrs.get(sa.SIGNAL_INTERVAL) or '-'}"),
        ("trader", str(attrs.get(sa.TRADER_ID) or "-")),
        ("started", _when(desc.start_time)),
    ]
    if desc.close_time:
        row.append(("ended", _when(desc.close_time)))
    if state is not None:
        row += [
            ("analyses", f"{state.analyses} (reanalyses {state.reanalyses}/{state.max_reanalyses})"),
            ("candles", _counts_text(state.counts)),
            ("deadline", _when(state.deadline)),
        ]
        if state.pending_candle is not None:
            row.append(("pending", f"candle {candle_span(state.pending_candle, interval)}"))
        if state.analysing:
            row.append(("now", "analysing"))
        if state.last_decision:
            row.append(("last decision", _decision_text(state.last_decision, interval)))
    if result is not None:
        row += [
            ("result", f"{result.status}: {result.reason}"),
            ("analyses", f"{result.analyses} (reanalyses {result.reanalyses})"),
            ("candles", _counts_text(result.counts)),
        ]
        if result.last_decision:
            row.append(("last decision", _decision_text(result.last_decision, interval)))
        if result.order_intent_id:
            row.append(("order intent", result.order_intent_id))
    if facts is not None and facts.position is not None:
        row.append(("position", position_text(facts)))
    if ended_with:
        row.append(("note" if running else "result", ended_with))
    width = max(len(k) for k, _ in row)
    for key, value in row:
        print(f"{key:<{width}}  {value}", file=out)
    if state is not None and state.history:
        print("history:", file=out)
        for d in state.history:
            print(f"  {_decision_text(d, interval)}", file=out)
    if db_lines:
        print("history (database):", file=out)
        for line in db_lines:
            print(f"  {line}", file=out)
    elif db_note:
        print(db_note, file=out)
    if state is not None and state.failures:
        print("failed analyses:", file=out)
        for f in state.failures[-5:]:
            print(f"  candle {candle_span(f.candle_open_time, interval)}: {f.error}", file=out)
    _fail_if_unanswered(running, state, wid, ended_with)


def _fail_if_unanswered(running: bool, state: MonitorView | None, wid: str, why: str) -> None:
    # A running monitor that cannot answer is not healthy: scripts must see a non-zero exit.
    if running and state is None:
        raise Refused(f"{wid} is running but did not answer its state query {why}")


def visibility_query(
    args: argparse.Namespace,
    workflow_type: str,
    status_key: SearchAttributeKey[str],
    statuses: tuple[str, ...] | None = None,
) -> str:
    """The `list`/`positions` filters as a visibility query (usage errors for values it cannot hold).
    `statuses`: the status attribute's values to look for instead of `--status` itself."""
    # A workflow that continued-as-new leaves its earlier runs behind: show each signal once.
    clauses = [f"WorkflowType = '{workflow_type}'", "ExecutionStatus != 'ContinuedAsNew'"]
    for value, key, transform in (
        (args.symbol, sa.SIGNAL_SYMBOL, str.upper),
        (args.interval, sa.SIGNAL_INTERVAL, str),
        (args.trader, sa.TRADER_ID, str),
        (args.status, status_key, str),
    ):
        if value is None:
            continue
        if not _FILTER_VALUE.match(value):
            raise UsageError(f"{value!r} is not a valid filter value (letters, digits, _ . : - only)")
        clauses.append(f"{key.name} = '{transform(value)}'")
    if statuses is not None and len(statuses) > 1:
        clauses[-1] = f"{status_key.name} IN ({', '.join(repr(s) for s in statuses)})"
    elif statuses is not None:
        clauses[-1] = f"{status_key.name} = '{statuses[0]}'"
    if args.running:
        clauses.append("ExecutionStatus = 'Running'")
    if args.limit <= 0:
        raise UsageError("--limit must be positive")
    return " AND ".join(clauses)


async def matching(
    args: argparse.Namespace, client: Client, workflow_type: str, status_key: SearchAttributeKey[str], prefix: str
) -> tuple[str, list[WorkflowExecution], dict[str, SignalFacts] | None]:
    """The workflows `list`/`positions` show, their query, and their signals' rows (None without a
    database). `--status` is the signal's status from its row: a `closed` signal's monitor still
    says `in_position`, so the query asks for every attribute value behind it and the rows decide."""
    database_url = Settings.from_env().database_url
    by_row = args.status is not None and workflow_type == names.WORKFLOW_TYPE and bool(database_url)
    statuses = monitor_statuses_for(args.status) if by_row else None
    query = visibility_query(args, workflow_type, status_key, statuses)
    if not by_row:
        found = [wf async for wf in client.list_workflows(query, limit=args.limit)]
        return query, found, await signal_facts(database_url, [wf.id.removeprefix(prefix) for wf in found])
    found, facts_by_id = [], {}
    page: list[WorkflowExecution] = []

    async def keep(batch: list[WorkflowExecution]) -> None:
        facts = await signal_facts(database_url, [wf.id.removeprefix(prefix) for wf in batch]) or {}
        for wf in batch:
            f = facts.get(wf.id.removeprefix(prefix))
            status = f.status if f is not None else wf.typed_search_attributes.get(status_key)
            if status == args.status and len(found) < args.limit:
                found.append(wf)
                if f is not None:
                    facts_by_id[f.signal_id] = f

    async for wf in client.list_workflows(query, page_size=200):
        page.append(wf)
        if len(page) == 200:
            await keep(page)
            page = []
            if len(found) >= args.limit:
                break
    await keep(page)
    return query + f" (then the signal row's status = '{args.status}')", found, facts_by_id


def listed_status(facts: dict[str, SignalFacts] | None, signal_id: str, attribute: object) -> str:
    """The STATUS column: the signal row's status, else the monitor's search attribute."""
    f = (facts or {}).get(signal_id)
    return str(f.status if f is not None and f.status else attribute or "-")


async def _list(args: argparse.Namespace, client: Client, out: TextIO) -> None:
    query, found, facts = await matching(args, client, names.WORKFLOW_TYPE, sa.MONITOR_STATUS, "signal-")
    decided = await _last_decisions([wf.id.removeprefix("signal-") for wf in found])
    no_decision = ("-", "-", "-")
    rows = []
    for wf in found:
        sid = wf.id.removeprefix("signal-")
        row = listed(wf, sa.MONITOR_STATUS, *decided.get(sid, no_decision))
        rows.append((row[0], row[1], listed_status(facts, sid, row[2]), *row[3:]))
    if not rows:
        hint = "" if facts is not None else "; without DATABASE_URL the status is the monitor's own (never `closed`)"
        print(f"no monitors match ({query}){hint}", file=out)
        return
    header = (
        "WORKFLOW ID",
        "EXECUTION",
        "STATUS",
        "SYMBOL",
        "INTERVAL",
        "ANALYSES",
        "LAST DECISION",
        "CONFIDENCE",
        "TRADER",
        "STARTED",
    )
    print_table(header, rows, out, "monitor")


def listed(wf: WorkflowExecution, status: SearchAttributeKey[str], *middle: object) -> tuple[object, ...]:
    """A row of `list` or `positions`: workflow id, execution status, the workflow's own `status`,
    symbol, interval, then `middle`, then trader and start time."""
    a = wf.typed_search_attributes
    return (
        wf.id,
        _status_name(wf.status),
        a.get(status) or "-",
        a.get(sa.SIGNAL_SYMBOL) or "-",
        a.get(sa.SIGNAL_INTERVAL) or "-",
        *middle,
        a.get(sa.TRADER_ID) or "-",
        _when(wf.start_time),
    )


def print_table(header: tuple[str, ...], rows: Sequence[tuple[object, ...]], out: TextIO, what: str) -> None:
    """Left-aligned columns, then `<n> <what>(s)`."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=False)).rstrip(), file=out)
    print(f"{len(rows)} {what}(s)", file=out)


async def _last_decisions(signal_ids: list[str]) -> dict[str, tuple[str, str, str]]:
    """signal id -> (analyses, last decision, its confidence), from the database when
    DATABASE_URL is set (a running `dev` stack sets it); empty otherwise."""
    database_url = Settings.from_env().database_url
    ids = [uuid.UUID(s) for s in signal_ids if _is_uuid(s)]
    if not database_url or not ids:
        return {}
    import asyncpg

    try:
        conn = await asyncpg.connect(database_url, timeout=5)
    except (OSError, asyncpg.PostgresError):
        return {}
    try:
        rows = await conn.fetch(
            """SELECT DISTINCT ON (signal_id) signal_id, count(*) OVER (PARTITION BY signal_id) AS n,
                      decision, monitor_decision, confidence
               FROM signal_analyses WHERE signal_id = ANY($1::uuid[])
               ORDER BY signal_id, created_at DESC""",
            ids,
        )
    finally:
        await conn.close()
    return {
        str(r["signal_id"]): (
            str(r["n"]),
            f"{r['decision']}->{r['monitor_decision']}" if r["monitor_decision"] else r["decision"],
            f"{float(r['confidence']):g}",
        )
        for r in rows
    }


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


async def _db_history(signal_id: str) -> tuple[list[str], list[dict] | None, str | None]:
    """The recorded analyses of an ended monitor (the database keeps them; the workflow's own
    state is gone): lines, rows for JSON, or why not."""
    database_url = Settings.from_env().database_url
    if not database_url:
        return [], None, "history: set DATABASE_URL (or run next to `signal-monitor dev`) to see it"
    import asyncpg

    from cli.history import history_lines
    from cli.signal_report import SignalNotFound, add_candles, fetch_report

    try:
        report = await fetch_report(database_url, signal_id)
    except SignalNotFound as exc:
        return [], None, f"history: {exc}"
    except (OSError, asyncpg.PostgresError) as exc:
        return [], None, f"history: database unreachable ({type(exc).__name__})"
    with contextlib.suppress(TimeoutError):
        # The candles' closes, as `history` shows them (the rows keep no price of their own).
        report = await asyncio.wait_for(add_candles(report, Settings.from_env().binance_rest_url), 15)
    rows = [a.model_dump(mode="json", exclude={"key_levels"}) for a in report.analyses]
    return history_lines(report) if report.analyses else [], rows, None


async def _cancel(args: argparse.Namespace, client: Client, out: TextIO) -> None:
    wid = workflow_id_of(args.signal)
    handle, desc = await _describe(client, wid)
    if desc.status != WorkflowExecutionStatus.RUNNING:
        raise Refused(f"{wid} has already ended ({_ended_text(desc)}); nothing to cancel")
    await handle.cancel()
    if args.wait <= 0:
        print(f"{wid}: cancel requested", file=out)
        return
    try:
        result = await asyncio.wait_for(handle.result(), args.wait)
    except TimeoutError:
        print(f"{wid}: cancel requested; not ended after {args.wait:.0f} s (is a worker running?)", file=out)
        return
    except WorkflowFailureError as exc:
        if isinstance(exc.cause, CancelledError):
            print(f"{wid}: cancelled (signal status: cancelled)", file=out)
            return
        raise Refused(f"{wid} ended with a failure: {_failure_text(exc)}") from None
    # The monitor had reached its own end a moment before the cancellation arrived.
    print(f"{wid}: already ended as {result.status} ({result.reason}); the cancellation changed nothing", file=out)


async def _update(args: argparse.Namespace, client: Client, name: str, arg: Any, result_type: type) -> Any:
    wid = workflow_id_of(args.signal)
    handle, desc = await _describe(client, wid)
    if desc.status != WorkflowExecutionStatus.RUNNING:
        raise Refused(f"{wid} has already ended ({_ended_text(desc)})")
    call = (
        handle.execute_update(name, result_type=result_type)
        if arg is None
        else handle.execute_update(name, arg, result_type=result_type)
    )
    try:
        return await asyncio.wait_for(call, args.timeout)
    except TimeoutError:
        raise Refused(
            f"{wid} did not answer within {args.timeout:.0f} s (is a worker polling task queue {desc.task_queue}?)"
        ) from None
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = cause.message if isinstance(cause, FailureError) else str(cause or exc)
        raise Refused(f"{name} refused: {message}") from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:  # ended between describe and update
            raise Refused(f"{wid} has ended: {exc.message}") from None
        raise


async def _abandon(args: argparse.Namespace, client: Client, out: TextIO) -> None:
    result: MonitorResult = await _update(args, client, names.ABANDON_UPDATE, {"reason": args.reason}, MonitorResult)
    print(f"{workflow_id_of(args.signal)}: {result.status}: {result.reason}", file=out)


async def _reanalyze(args: argparse.Namespace, client: Client, out: TextIO) -> None:
    state: MonitorView = await _update(args, client, names.REANALYZE_UPDATE, None, MonitorView)
    last = state.last_decision
    print(
        f"{workflow_id_of(args.signal)}: reanalysed; status {state.status}; "
        + (f"last decision {_decision_text(last, None)}" if last else "no decision yet"),
        file=out,
    )
    if state.failures and state.consecutive_failures:
        print(f"  the analysis failed: {state.failures[-1].error}", file=out)


async def _set_limit(args: argparse.Namespace, client: Client, out: TextIO) -> None:
    state: MonitorView = await _update(args, client, names.SET_LIMIT_UPDATE, args.limit, MonitorView)
    print(
        f"{workflow_id_of(args.signal)}: reanalysis limit now {state.max_reanalyses} "
        f"({state.reanalyses} done); status {state.status}",
        file=out,
    )


# --- text ----------------------------------------------------------------------------------------


def _seconds(n: float):
    from datetime import timedelta

    return timedelta(seconds=n)


def _when(value: datetime | None) -> str:
    return utc_text(value, none="-", seconds=True)


def _decision_text(d: AnalysisRecord, interval: str | None) -> str:
    reasoning = d.reasoning.replace("\n", " ")
    if len(reasoning) > 100:
        reasoning = reasoning[:99] + "…"
    on = (
        "the signal's own price"
        if d.candle_open_time is None
        else f"candle {candle_span(d.candle_open_time, interval)}"
    )
    price = f" at {plain(d.price)}" if d.price else ""
    return f"#{d.analysis_number} {d.decision} ({d.proxy_decision} {d.confidence:.0f}) on {on}{price}: {reasoning}"


def lifecycle_text(facts: SignalFacts | None, monitor_status: str) -> str:
    """Where the signal is: its row's status (the monitor's attribute when no database answers)."""
    if facts is None or facts.status is None:
        return f"{monitor_status} (the monitor's search attribute: no database to read the signal row)"
    p = facts.position
    if p is None:
        return facts.status
    if p.status == "open":
        return f"{facts.status} (position open)"
    return f"{facts.status} (position closed: exit {plain(p.exit_price)}, realized P&L {signed(p.realized_pnl)})"


def position_text(facts: SignalFacts) -> str:
    p = facts.position
    assert p is not None
    text = (
        f"{p.position_id} ({p.mode}) {p.side} {plain(p.size)} at {plain(p.entry_price)} (entry fill), "
        f"stop {plain(p.stop_loss)}, targets {', '.join(map(plain, p.take_profits)) or 'none'}; "
    )
    if p.status == "open":
        return text + (
            f"open {plain(p.open_size)}, last price {plain(p.last_price)}, unrealized P&L {signed(p.unrealized_pnl)}, "
            f"realized so far {signed(p.realized_pnl)} (fees {plain(p.fees_paid)})"
        )
    return text + (
        f"closed {_when(p.closed_at)} at {plain(p.exit_price)} ({p.close_reason or '-'}), "
        f"realized P&L {signed(p.realized_pnl)} after fees {plain(p.fees_paid)}"
    )


def _counts_text(c: Any) -> str:
    return closes_text(c)


def _attrs_dict(attrs: Any) -> dict:
    return {key.name: attrs.get(key) for key in sa.ALL if attrs.get(key) is not None}


def _ended_text(desc: WorkflowExecutionDescription) -> str:
    monitor = desc.typed_search_attributes.get(sa.MONITOR_STATUS)
    return f"{_status_name(desc.status)}" + (f", monitor status {monitor}" if monitor else "")


def _failure_text(exc: WorkflowFailureError) -> str:
    cause = exc.cause
    if isinstance(cause, CancelledError):
        return "cancelled"
    if isinstance(cause, ApplicationError):
        return f"failed: {cause.type}: {cause.message}"
    if isinstance(cause, FailureError):
        return f"{type(cause).__name__}: {cause.message}"
    return str(cause or exc)
