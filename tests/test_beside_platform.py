"""The monitor as a drop-in beside the real platform (issue 10): a database built like the
platform's migrations (tests/helpers/platform_shape.py), both platform triggers, and llm-proxy storing its
own row per call. Real PostgreSQL, real Temporal, the fake llm-proxy in `store_rows` mode.

Each test has its own database: the intake sweeps every undecided signal it can see."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client

from activities import platform_schema
from fakes.llm_proxy import Answer, FakeLlmProxy
from migrations.runner import MIGRATIONS_DIR, migrate
from tests.helpers.monitor import TEST_KEY, monitor_stack
from tests.helpers.platform_shape import (
    PRODUCTION_ONLY_STATUS,
    OwnerOptions,
    PgNet,
    add_owner,
    add_signal,
    create_platform_database,
    platform_database,
)
from tests.helpers.processes import BIN
from tests.helpers.support import SignalRow, async_update, eventually, kline, running_intake
from workflows.monitor.inputs import AbandonRequest
from workflows.monitor.models import MonitorResult
from workflows.monitor.workflow import SignalMonitorWorkflow

GRACE = 5.0  # SIGNAL_MONITOR_PLATFORM_GRACE_SECONDS in these tests


@contextlib.asynccontextmanager
async def platform(
    url: str, db: asyncpg.Connection, *, secrets: bool = True
) -> AsyncIterator[tuple[FakeLlmProxy, PgNet]]:
    """llm-proxy storing its own rows, and pg_net posting trigger 028's requests to it."""
    async with FakeLlmProxy(api_key=TEST_KEY, store_rows=url) as proxy:
        pg_net = PgNet(url)
        await pg_net.set_secrets(db, proxy.base_url if secrets else None, TEST_KEY)
        async with pg_net.running():
            yield proxy, pg_net


async def rows_of(db: asyncpg.Connection, signal_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT * FROM signal_analyses WHERE signal_id = $1::uuid ORDER BY analysis_number NULLS LAST", signal_id
    )


async def signal_row(db: asyncpg.Connection, signal_id: str) -> asyncpg.Record:
    return await db.fetchrow("SELECT * FROM signals WHERE id = $1::uuid", signal_id)


async def result_of(client: Client, signal_id: str, timeout: float = 25) -> MonitorResult:
    handle = client.get_workflow_handle_for(SignalMonitorWorkflow.run, f"signal-{signal_id}")
    return await asyncio.wait_for(handle.result(), timeout)


# --- 7. migrations fit in ------------------------------------------------------------------------


async def test_migrations_fit_beside_the_platform_and_reapply_cleanly(postgres_server):
    url = await create_platform_database(postgres_server)
    conn = await asyncpg.connect(url)
    try:
        # Exactly one index on signal_analyses(signal_id) alone: the platform's.
        single = await conn.fetch(
            """SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
               JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
               WHERE x.indrelid = 'signal_analyses'::regclass AND x.indnatts = 1 AND a.attname = 'signal_id'"""
        )
        assert [r[0] for r in single] == ["idx_signal_analyses_signal_id"]
        # No status value is lost, ours are added.
        signal = await add_signal(conn, await add_owner(conn))
        for status in (PRODUCTION_ONLY_STATUS, "cancelled", "failed", "ready", None):
            await conn.execute("UPDATE signals SET status = $2 WHERE id = $1::uuid", signal, status)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE signals SET status = 'bogus' WHERE id = $1::uuid", signal)
        # Still one row per (signal, analysis number) and per (signal, candle); the platform's own rows
        # (neither set) are not limited.
        owner_row = await conn.fetchrow("SELECT trader_id, user_id FROM signals WHERE id = $1::uuid", signal)
        insert = """INSERT INTO signal_analyses (signal_id, trader_id, user_id, decision, confidence, reasoning,
                    key_levels, trade_plan, analysis_number, candle_open_time)
                    VALUES ($1::uuid, $2, $3, 'wait', 50, 'r', '{}', '{}', $4, $5)"""
        candle = datetime(2026, 1, 1, tzinfo=UTC)
        for _ in range(2):
            await conn.execute(insert, signal, owner_row["trader_id"], owner_row["user_id"], None, None)
        await conn.execute(insert, signal, owner_row["trader_id"], owner_row["user_id"], 1, candle)
        for number, at in ((1, None), (2, candle)):
            with pytest.raises(asyncpg.UniqueViolationError):
                await conn.execute(insert, signal, owner_row["trader_id"], owner_row["user_id"], number, at)
        # Row-level security on every table the monitor adds.
        rls = dict(
            await conn.fetch(
                "SELECT relname, relrowsecurity FROM pg_class WHERE relname = ANY($1::text[])",
                ["order_intents", "llm_call_pacing", "signal_monitor_migrations"],
            )
        )
        assert rls == {"order_intents": True, "llm_call_pacing": True, "signal_monitor_migrations": True}
        # A user sees only their own order intents; the worker's role (the owner) sees all.
        mine, theirs = uuid.uuid4(), uuid.uuid4()
        for user in (mine, theirs):
            await conn.execute(
                "INSERT INTO order_intents (signal_id, user_id, symbol, side) VALUES ($1, $2, 'BTCUSDT', 'buy')",
                uuid.uuid4(),
                user,
            )
        await conn.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'test_app_user') THEN "
            "CREATE ROLE test_app_user; END IF; END $$"
        )
        await conn.execute(
            "GRANT USAGE ON SCHEMA auth TO test_app_user; GRANT SELECT ON order_intents TO test_app_user"
        )
        async with conn.transaction():
            await conn.execute("SET LOCAL ROLE test_app_user")
            await conn.execute("SELECT set_config('request.jwt.claim.sub', $1, true)", str(mine))
            assert await conn.fetchval("SELECT array_agg(user_id) FROM order_intents") == [mine]
        assert await conn.fetchval("SELECT count(*) FROM order_intents") == 2
        # Re-applying: `migrate` is a no-op, and every file run again by hand is clean too.
        assert await migrate(url) == []
        for path in sorted(MIGRATIONS_DIR.glob("[0-9]*.sql")):
            await conn.execute(path.read_text())
        assert await conn.fetchval("SELECT count(*) FROM pg_constraint WHERE conname = 'signals_status_check'") == 1
        await conn.execute("UPDATE signals SET status = $2 WHERE id = $1::uuid", signal, PRODUCTION_ONLY_STATUS)
    finally:
        await conn.close()


async def test_a_database_that_applied_the_earlier_001_keeps_one_signal_index(postgres_server):
    from tests.helpers.servers import create_database

    url = await create_database(postgres_server, migrated=False)
    conn = await asyncpg.connect(url)
    try:
        await migrate(url)
        # What the earlier 001 left on a fresh database: its own name for the index.
        await conn.execute("ALTER INDEX idx_signal_analyses_signal_id RENAME TO signal_analyses_signal_id_idx")
        await conn.execute((MIGRATIONS_DIR / "005_beside_the_platform.sql").read_text())
        names = [r[0] for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'signal_analyses'")]
        assert "idx_signal_analyses_signal_id" in names and "signal_analyses_signal_id_idx" not in names
    finally:
        await conn.close()


# --- 1. eligibility, detected from the schema ---------------------------------------------------


@pytest.mark.parametrize("profile_tier", [True, False], ids=["production", "migrations-only"])
async def test_eligibility_from_subscriptions_and_profile_tier(client, postgres_server, profile_tier):
    url = await create_platform_database(postgres_server, profile_tier=profile_tier)
    db = await asyncpg.connect(url)
    schema = await platform_schema.inspect(db)
    assert schema.profile_tier is profile_tier
    past = datetime.now(UTC) - timedelta(days=1)
    cases: dict[str, tuple[OwnerOptions, bool]] = {
        "subscription elite": (dict(subscription=("elite", "active")), True),
        "admin-upgraded (profile NULL)": (dict(subscription=("elite", "active"), profile_tier=None), True),
        "subscription cancelled": (dict(subscription=("elite", "cancelled")), False),
        "subscription expired": (dict(subscription=("elite", "active"), expires_at=past), False),
        "pro, profile ELITE": (dict(subscription=("pro", "active"), profile_tier="ELITE"), profile_tier),
        "free": (dict(subscription=("free", "active"), profile_tier="free"), False),
        "auto_analyze off": (dict(subscription=("elite", "active"), auto_analyze=False), False),
    }
    signals: dict[str, str] = {}
    try:
        async with monitor_stack(client, url, initial_analysis="monitor") as m:
            for name, (owner_kwargs, _) in cases.items():
                owner = await add_owner(db, max_reanalyses=0, **owner_kwargs)
                signals[name] = await add_signal(db, owner)
            m.proxy.script(None, *[Answer.wait(55)] * len(cases))
            async with running_intake(m.client, m.settings):

                async def all_decided():
                    marks = {n: (await signal_row(db, s))["monitor_intake"] for n, s in signals.items()}
                    assert all(marks.values()), marks
                    return marks

                marks = await eventually(all_decided, timeout=30)
                for name, (_, eligible) in cases.items():
                    assert (marks[name] == "started") is eligible, (name, marks[name])
                    if eligible:
                        assert (await result_of(m.client, signals[name])).status == "expired"
            print(f"\n[eligibility, profile column {'present' if profile_tier else 'absent'}]")
            for name, mark in marks.items():
                print(f"  {name:32} {mark}")
        assert "no active elite subscription (subscription elite, cancelled" in marks["subscription cancelled"]
        assert "expired" in marks["subscription expired"]
        assert "auto_analyze_signals off" in marks["auto_analyze off"]
    finally:
        await db.close()


async def _cli_intake(url: str) -> subprocess.CompletedProcess:
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "signal-monitor"),
        "intake",
        # Temporal unreachable on purpose: the schema is read first and settles it.
        env={"DATABASE_URL": url, "TEMPORAL_ADDRESS": "127.0.0.1:9", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None  # communicate() waited for the exit
    return subprocess.CompletedProcess([], proc.returncode, out.decode(), err.decode())


async def test_a_missing_table_or_column_is_a_configuration_error_not_a_reconnect_loop(postgres_server):
    unmigrated = await create_platform_database(postgres_server, migrated=False)
    result = await _cli_intake(unmigrated)
    assert result.returncode == 3, result
    assert "column signals.monitor_intake" in result.stderr and "signal-monitor migrate" in result.stderr
    assert "reconnecting" not in result.stderr

    no_subscriptions = await create_platform_database(postgres_server)
    conn = await asyncpg.connect(no_subscriptions)
    await conn.execute("DROP TABLE user_subscriptions CASCADE")
    await conn.close()
    result = await _cli_intake(no_subscriptions)
    assert result.returncode == 3 and "table user_subscriptions" in result.stderr, result


# --- 2. every eligible signal monitored once, whatever the order ---------------------------------


async def test_platform_initial_analysis_is_analysis_zero_in_any_order(client, postgres_server):
    """Trigger 028 present and enabled (auto mode chooses the platform). Its analysis lands before
    the intake sees the signal (intake down), after the monitor started (intake up, slow pg_net),
    or never; owners whose profile tier is not exactly 'elite' get no platform analysis at all."""
    url = await create_platform_database(postgres_server)
    db = await asyncpg.connect(url)
    expected: dict[str, tuple[str, str]] = {}  # signal -> (end status, reason fragment)
    names: dict[str, str] = {}
    try:
        async with (
            platform(url, db) as (proxy, pg_net),
            monitor_stack(client, url, proxy=proxy, platform_grace_seconds=GRACE) as m,
        ):

            async def signal(name: str, answer, end: tuple[str, str], *, min_conf=None, status="default", **owner):
                sid = str(uuid.uuid4())
                proxy.script(sid, answer)
                o = await add_owner(db, max_reanalyses=0, min_confidence_to_enter=min_conf, **owner)
                if name.startswith("never"):
                    pg_net.drop.add(sid)
                if name.startswith("late"):
                    pg_net.delays[sid] = 2.0
                names[sid], expected[sid] = name, end
                await add_signal(db, o, status=status, signal_id=sid)
                return sid

            elite = dict(subscription=("elite", "active"), profile_tier="elite")
            # Intake down: the platform's analysis lands first and 032 moves the status on.
            down = {
                await signal(
                    "down: wait -> monitoring", Answer.wait(55), ("expired", "reanalysis limit"), **elite
                ): "monitoring",
                await signal(
                    "down: enter 85 -> ready", Answer.enter(85), ("in_position", "entered at analysis #0"), **elite
                ): "ready",
                await signal(
                    "down: enter 60 -> ready (below 70)", Answer.enter(60), ("expired", "reanalysis limit"), **elite
                ): "ready",
                await signal(
                    "down: bad_setup -> expired",
                    Answer.abandon(80),
                    ("expired", "abandoned by the model at analysis #0"),
                    **elite,
                ): "expired",
            }

            async def platform_rows_landed():
                for sid, status in down.items():
                    assert (await signal_row(db, sid))["status"] == status
                    assert len(await rows_of(db, sid)) == 1

            await eventually(platform_rows_landed, timeout=30)
            async with running_intake(m.client, m.settings):
                # Intake up: notified while the status is still `new` (or NULL).
                await signal("up: platform first", Answer.wait(60), ("expired", "reanalysis limit"), **elite)
                await signal(
                    "late: platform after the monitor started", Answer.enter(90), ("in_position", "entered"), **elite
                )
                await signal("up: status NULL", Answer.wait(60), ("expired", "reanalysis limit"), status=None, **elite)
                await signal(
                    "never: pg_net lost it", Answer.abandon(75), ("expired", "abandoned by the model"), **elite
                )
                await signal(
                    "up: admin-upgraded, profile NULL",
                    Answer.wait(60),
                    ("expired", "reanalysis limit"),
                    subscription=("elite", "active"),
                    profile_tier=None,
                )
                results = {sid: await result_of(m.client, sid, 90) for sid in expected}
                # Started by the intake; listed so SIGNAL_MONITOR_RECORD_HISTORIES keeps their histories too.
                m.started.extend(m.client.get_workflow_handle(f"signal-{sid}") for sid in expected)

            print("\n[platform-shaped database, trigger 028 on, auto -> platform, grace 5 s]")
            total_rows = total_analyses = 0
            for sid, (status, reason) in expected.items():
                result = results[sid]
                row = await signal_row(db, sid)
                rows = await rows_of(db, sid)
                calls = proxy.requests_for(sid)
                sources = sorted({c.trigger_source or "?" for c in calls})
                total_rows += len(rows)
                total_analyses += result.analyses
                print(
                    f"  {names[sid]:42} -> {row['status']:11} {row['monitor_reason']!r}; "
                    f"analyses {result.analyses}, rows {len(rows)}, llm-proxy calls {len(calls)} {sources}"
                )
                assert result.status == status and reason in result.reason, (names[sid], result)
                assert (row["status"], row["monitor_reason"]) == (result.status, result.reason)
                assert row["monitor_intake"] == "started"
                # One analysis, one paid call, one row, numbered.
                assert result.analyses == 1 and len(calls) == 1 and len(rows) == 1, names[sid]
                assert rows[0]["analysis_number"] == 0 and rows[0]["monitor_decision"] is not None
                runs = [r.run_id async for r in m.client.list_workflows(f"WorkflowId = 'signal-{sid}'")]
                assert len(runs) == 1, names[sid]
            print(f"  rows per analysis: {total_rows}/{total_analyses} = {total_rows / total_analyses:.2f}")
            by_name = {names[s]: s for s in expected}
            # Who paid for analysis #0: the platform, except where its analysis never came or never fires.
            for name, sid in by_name.items():
                source = proxy.requests_for(sid)[0].trigger_source
                own = name.startswith("never") or "profile NULL" in name
                assert source == ("monitoring-worker" if own else "database-trigger"), (name, source)
    finally:
        await db.close()


async def test_the_wait_for_the_platforms_analysis_is_durable_and_operators_still_act(client, postgres_server, caplog):
    url = await create_platform_database(postgres_server)
    db = await asyncpg.connect(url)
    caplog.set_level("INFO", logger="workers.worker")
    try:
        async with (
            platform(url, db) as (proxy, pg_net),
            monitor_stack(client, url, proxy=proxy, platform_grace_seconds=600) as m,
        ):
            shown = [r.getMessage() for r in caplog.records if "beside the platform" in r.getMessage()]
            assert any("initial analysis by the platform" in line for line in shown), shown
            sid = str(uuid.uuid4())
            pg_net.drop.add(sid)  # the platform's analysis never comes
            await add_signal(db, await add_owner(db, profile_tier="elite"), signal_id=sid)
            handle = await m.start(sid)

            async def waiting_for_the_platform():
                events = [e async for e in handle.fetch_history_events()]
                assert any(e.HasField("timer_started_event_attributes") for e in events)

            await eventually(waiting_for_the_platform)
            abandon = AbandonRequest(reason="exchange halted")
            result = await handle.execute_update(async_update(SignalMonitorWorkflow.abandon), abandon)
            row = await signal_row(db, sid)
            assert result.status == "expired" and "exchange halted" in result.reason
            assert (row["status"], row["monitor_reason"]) == ("expired", result.reason)
            assert proxy.requests_for(sid) == [] and await rows_of(db, sid) == []
    finally:
        await db.close()


# --- 3 / 4 / 6. the monitor's own calls beside the proxy's rows and trigger 032 -----------------


async def test_proxy_rows_are_taken_over_and_the_monitor_has_the_last_word(client, postgres_server):
    async with platform_database(postgres_server, trigger_028=False) as (url, db):
        async with platform(url, db) as (proxy, _), monitor_stack(client, url, proxy=proxy) as m:
            owner = await add_owner(db, max_reanalyses=5)
            stamp = datetime.now(UTC) - timedelta(hours=2)
            abandon = await add_signal(db, owner, timestamp=stamp)
            enter = await add_signal(db, owner, timestamp=stamp)
            no_levels = await add_signal(db, await add_owner(db, max_reanalyses=0), timestamp=stamp)
            proxy.script(abandon, Answer.wait(55), Answer.wait(62), Answer.abandon(80))
            proxy.script(
                enter, Answer.wait(55), Answer.enter(82.5, entry=43250.12, stop_loss=42000.5, take_profit=[44115.1224])
            )
            proxy.script(no_levels, Answer.wait(50, data_overrides={"keyLevels": None, "tradePlan": None}))
            handles = {sid: await m.start(sid) for sid in (abandon, enter, no_levels)}

            def row_of(sid: str) -> SignalRow:
                return SignalRow(sid, owner.trader_id, owner.user_id, "BTCUSDT", "15m", stamp)

            async def analysed(sid: str, n: int):
                assert len([r for r in await rows_of(db, sid) if r["analysis_number"] is not None]) == n

            for sid in (abandon, enter):
                await eventually(partial(analysed, sid, 1))
                await handles[sid].signal(SignalMonitorWorkflow.candle_closed, kline(row_of(sid), 2))
                await eventually(partial(analysed, sid, 2))
            await handles[abandon].signal(SignalMonitorWorkflow.candle_closed, kline(row_of(abandon), 3))
            results = {sid: await result_of(m.client, sid) for sid in handles}

            a_rows, e_rows, n_rows = [await rows_of(db, s) for s in (abandon, enter, no_levels)]
            print("\n[monitor's own calls, llm-proxy storing its own rows, trigger 032 on]")
            for label, sid, rows in (
                ("wait, wait, bad_setup", abandon, a_rows),
                ("wait, enter_trade", enter, e_rows),
                ("no key levels", no_levels, n_rows),
            ):
                row = await signal_row(db, sid)
                print(
                    f"  {label:22} -> {row['status']:11} {row['monitor_reason']!r}; analyses "
                    f"{results[sid].analyses}, rows {len(rows)}, llm-proxy calls {len(proxy.requests_for(sid))}"
                )
            # 3. One row per analysis: the proxy's own, given its number, candle and decision.
            assert [r["analysis_number"] for r in a_rows] == [0, 1, 2]
            assert [r["monitor_decision"] for r in a_rows] == ["continue", "continue", "abandon"]
            assert a_rows[0]["candle_open_time"] is None and a_rows[1]["candle_open_time"] is not None
            assert [r["analysis_number"] for r in e_rows] == [0, 1]
            # 4. 032 wrote expired/ready from the proxy's rows; the monitor's end stands, with its reason.
            a, e = await signal_row(db, abandon), await signal_row(db, enter)
            assert (a["status"], a["monitor_reason"]) == ("expired", "abandoned by the model at analysis #2")
            assert (e["status"], e["monitor_reason"]) == ("in_position", "entered at analysis #1")
            assert e["closed_at"] is None
            # A late platform row after the end changes nothing (032's `ready` is kept out).
            await db.execute(
                """INSERT INTO signal_analyses (signal_id, trader_id, user_id, decision, confidence, reasoning,
                   key_levels, trade_plan) VALUES ($1::uuid, $2::uuid, $3::uuid, 'enter_trade', 90, 'late', '{}', '{}')""",
                enter,
                owner.trader_id,
                owner.user_id,
            )
            assert (await signal_row(db, enter))["status"] == "in_position"
            # 6. Exact decimals in the order intent.
            intent = await db.fetchrow(
                "SELECT entry_price::text, stop_loss::text, take_profits::text, confidence::text "
                "FROM order_intents WHERE signal_id = $1::uuid",
                enter,
            )
            assert tuple(intent) == ("43250.12", "42000.5", "[44115.1224]", "82.50")
            # 5. The answer without key levels: the proxy's own insert failed (NOT NULL), ours has {}.
            assert any("key_levels" in f for f in proxy.row_store_failures)
            assert len(n_rows) == 1 and n_rows[0]["key_levels"] == "{}" and n_rows[0]["trade_plan"] == "{}"
            assert (await signal_row(db, no_levels))["status"] == "expired"


# --- 5. nothing retries a permanent error --------------------------------------------------------


async def test_a_permanently_failing_write_is_not_retried(client, postgres_server):
    async with platform_database(postgres_server, trigger_028=False) as (url, db):
        # A rule the platform might add that the monitor's row breaks: a check violation.
        await db.execute("ALTER TABLE signal_analyses ADD CONSTRAINT no_poison CHECK (reasoning <> 'poison')")
        async with platform(url, db) as (proxy, _), monitor_stack(client, url, proxy=proxy) as m:
            sid = await add_signal(db, await add_owner(db))
            proxy.script(sid, Answer.wait(55, reasoning="poison"))
            handle = await m.start(sid)
            started = asyncio.get_running_loop().time()
            result = await asyncio.wait_for(result_of(m.client, sid), 60)
            took = asyncio.get_running_loop().time() - started
            attempts = [
                e.activity_task_started_event_attributes.attempt
                async for e in handle.fetch_history_events()
                if e.HasField("activity_task_started_event_attributes")
            ]
            row = await signal_row(db, sid)
            print(
                f"\n[permanent write error] ended in {took:.1f} s; activity attempts {attempts}; "
                f"signal {row['status']!r} {row['monitor_reason']!r}"
            )
            assert max(attempts) == 1  # no activity was retried
            # The monitor ends the signal itself, with PostgreSQL's message as the reason.
            assert result.status == "failed" and row["status"] == "failed"
            assert "no_poison" in (row["monitor_reason"] or "")
            assert took < 30


def test_the_docs_have_the_section():
    text = (Path(__file__).parent.parent / "docs" / "beside-the-platform.md").read_text()
    assert text.startswith("# Beside the platform") and "x-trigger-source: monitoring-worker" in text
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "(docs/beside-the-platform.md)" in readme
