"""`signal-monitor positions`, `close <signal> --reason`, `trader resume <trader id>`."""

from __future__ import annotations

import io
import uuid
from decimal import Decimal as D

from activities import platform_schema
from cli import operator as operator_cli
from cli.history import history_text
from cli.main import build_parser
from cli.positions import resume_trader
from cli.signal_report import fetch_report
from fakes.llm_proxy import Answer, ManageAnswer
from intake import service as intake
from tests.helpers.monitor import monitor_stack
from tests.helpers.positions import candle, entered_signal, position_rows, result_of, start_position, view
from tests.helpers.support import eventually, insert_signal
from workflows.monitor.workflow import SignalMonitorWorkflow
from workflows.position.workflow import PositionManagerWorkflow


async def _cli(client, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await operator_cli.run(build_parser().parse_args(list(argv)), client, out, err)
    return code, out.getvalue(), err.getvalue()


async def test_positions_list_and_close_by_cli(client, database_url, db):
    row = await entered_signal(db, symbol="XRPUSDT")
    async with monitor_stack(client, database_url) as m:
        handle = await start_position(client, row, m.task_queue, entry_price=D(100))

        async def listed():
            state = await view(handle)
            assert state.status == "open"
            code, out, _ = await _cli(client, "positions", "--symbol", "xrpusdt", "--trader", row.trader_id)
            assert code == 0 and f"position-{row.signal_id}" in out and " open " in out, out

        await eventually(listed)
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 1, 100, 101, 99, 100))
        code, out, err = await _cli(client, "close", row.signal_id, "--reason", "desk says so")
        assert code == 0, err
        assert "closed: operator: closed by operator: desk says so" in out and "realized P&L" in out
        result = await result_of(handle)
        code, _, err = await _cli(client, "close", f"position-{row.signal_id}", "--reason", "again")
        assert code == 1 and "already ended" in err
    assert result.status == "closed"


async def test_trader_resume_lifts_the_pause_for_the_intake(database_url, db):
    row = await insert_signal(db)
    tid = uuid.UUID(row.trader_id)
    await db.execute(
        "UPDATE traders SET paused = true, paused_reason = '3 losses', consecutive_losses = 3 WHERE id = $1", tid
    )
    queries = intake.build_queries(await platform_schema.inspect(db))

    async def why_not() -> intake.Ineligible | None:
        return intake.ineligibility(await db.fetchrow(queries.by_id, uuid.UUID(row.signal_id)), queries.profile_tier)

    why = await why_not()
    assert why is not None and why.kind == "trader_paused" and "3 losses" in why.reason
    out = io.StringIO()
    await resume_trader(database_url, row.trader_id, out)
    assert "resumed (was paused: 3 losses)" in out.getvalue()
    assert await why_not() is None
    assert await db.fetchval("SELECT consecutive_losses FROM traders WHERE id = $1", tid) == 0


async def _listed(client, wid: str, *argv: str) -> dict[str, str]:
    """The row of `wid` in what `list`/`positions` ARGV prints (the command must succeed)."""
    code, out, err = await _cli(client, *argv)
    assert code == 0, err
    return _row_of(out, wid)


def _row_of(out: str, wid: str) -> dict[str, str]:
    """One table row of `list`/`positions`, by its columns (two or more spaces apart)."""
    import re

    header = out.splitlines()[0]
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=  ))\S", header)]
    line = next(ln for ln in out.splitlines() if ln.startswith(wid))
    cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    names = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return dict(zip(names, cells, strict=True))


async def test_one_lifecycle_in_list_status_positions_and_history(client, database_url, db, monkeypatch):
    """Entered, managed, stopped out: `list`, `status`, `positions` and `history` all say where the
    signal is from its row (in_position while open, closed after), with the fills' prices, and
    `list --status closed` finds it."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    row = await insert_signal(db, symbol="DOTUSDT", interval="1m", price=100.0)
    wid = row.workflow_id
    async with monitor_stack(client, database_url) as m:
        m.proxy.script(row.signal_id, Answer.wait(55), Answer.enter(85, entry=100.0, stop_loss=95.0, take_profit=[110]))
        m.proxy.script_position(row.signal_id, ManageAnswer.hold())
        monitor = await m.start(row.signal_id)

        async def analysed():
            state = await monitor.query(SignalMonitorWorkflow.state)
            assert state.analyses == 1 and not state.analysing

        await eventually(analysed)
        await monitor.signal(SignalMonitorWorkflow.candle_closed, candle(row, 1, 99, 101, 98, 100))
        assert (await result_of(monitor)).status == "in_position"
        handle = client.get_workflow_handle_for(PositionManagerWorkflow.run, f"position-{row.signal_id}")
        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 2, 100, 102, 99, 101))

        async def held():
            state = await view(handle)
            assert state.decisions == 1 and state.queued == 0, state

        await eventually(held)
        open_row = await _listed(client, f"position-{row.signal_id}", "positions", "--trader", row.trader_id)
        # Filled at 100.05 (the close 100 and 0.05 % slippage), 9.99500249 bought with the 1000 stake;
        # unrealized from the last close 101: (101 - 100.05) x 9.99500249.
        assert (open_row["POSITION"], open_row["SIDE"], open_row["ENTRY"], open_row["SIZE"]) == (
            "open",
            "long",
            "100.05",
            "9.99500249",
        )
        assert open_row["STOP"] == "95" and open_row["TARGETS"] == "110" and open_row["EXIT"] == "-"
        assert open_row["P&L"] == "+9.49525237 unrealized (last 101)", open_row
        in_position = await _listed(client, wid, "list", "--trader", row.trader_id, "--status", "in_position")
        assert in_position["STATUS"] == "in_position"
        code, out, _ = await _cli(client, "status", row.signal_id)
        assert "in_position (position open)" in out and "entry fill" in out, out

        await handle.signal(PositionManagerWorkflow.candle_closed, candle(row, 3, 101, 101, 94, 94.5))
        result = await result_of(handle)
    assert result.status == "closed" and result.exit_price == 95
    rows = await position_rows(db, row.signal_id)
    entry, stop = rows["orders"]
    pnl = rows["positions"][0]["realized_pnl"]

    code, out, err = await _cli(client, "list", "--trader", row.trader_id, "--status", "closed")
    assert code == 0, err
    listed = _row_of(out, wid)
    assert listed["STATUS"] == "closed" and listed["EXECUTION"] == "Completed" and "1 monitor(s)" in out
    code, out, _ = await _cli(client, "list", "--trader", row.trader_id, "--status", "in_position")
    assert "no monitors match" in out
    code, out, _ = await _cli(client, "status", row.signal_id)
    assert code == 0
    assert f"closed (position closed: exit 95, realized P&L {pnl.normalize()})" in out, out
    assert f"long 9.99500249 at {entry['average_price'].normalize()} (entry fill)" in out
    assert "at 95 (stop_loss)" in out and "-0E-8" not in out
    closed = await _listed(
        client, f"position-{row.signal_id}", "positions", "--trader", row.trader_id, "--status", "closed"
    )
    assert (closed["POSITION"], closed["ENTRY"], closed["EXIT"], closed["REASON"]) == (
        "closed",
        "100.05",
        "95",
        "stop_loss",
    )
    assert closed["P&L"] == f"{pnl.normalize()} realized" and pnl < 0
    text = history_text(await fetch_report(database_url, row.signal_id))
    assert "(pending)" not in text and "filled: see the position below" in text
    assert f"entry         buy  9.99500249 at {entry['average_price'].normalize()} (market), candle " in text
    assert f"stop_loss     sell 9.99500249 at {stop['average_price'].normalize()} (stop), candle " in text
    assert "realized P&L " + str(pnl.normalize()) in text
