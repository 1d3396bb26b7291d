"""The rollout ladder walked with the real intake, worker and `signal-monitor rollout` command:
test trader -> one canary user -> 10 % of users -> all, each change picked up without a restart
(signals left out earlier and still in their window start when the rollout widens), and leaving:
a narrower rollout, auto-analysis turned off, an owner no longer elite cancel running monitors
with that reason."""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus

from cli.rollout import parse, run_rollout
from runtime import live_rollout
from runtime.platform_rows import insert_signal as insert_platform_signal
from runtime.platform_rows import insert_trader
from runtime.rollout import Rollout, user_bucket
from tests.helpers.monitor import monitor_stack
from tests.helpers.support import eventually, running_intake, signal_status, status_is

# Printed with `pytest -s` (the closing note shows the ladder as walked here).
SHOW = os.environ.get("SIGNAL_MONITOR_SHOW_LADDER") == "1"


@dataclass(frozen=True)
class Who:
    name: str
    user_id: str
    trader_id: str
    signal_id: str = ""


def user_in_bucket(low: int, high: int) -> uuid.UUID:
    """A user id whose stable bucket is in [low, high): who is inside at 10 % is fixed by the hash."""
    while True:
        u = uuid.uuid4()
        if low <= user_bucket(u) < high:
            return u


async def owner_and_trader(db: asyncpg.Connection, name: str, user_id: uuid.UUID, tier: str = "elite") -> Who:
    trader_id = uuid.uuid4()
    await db.execute("INSERT INTO user_profiles (id, subscription_tier) VALUES ($1, $2)", user_id, tier)
    await insert_trader(db, trader_id, user_id, name, "15m", {"instructions": "rollout test"})
    return Who(name, str(user_id), str(trader_id))


async def new_signal(db: asyncpg.Connection, who: Who) -> Who:
    signal_id = uuid.uuid4()
    at = datetime.now(UTC) - timedelta(hours=2)
    await insert_platform_signal(
        db, signal_id, uuid.UUID(who.trader_id), "BTCUSDT", "15m", at, Decimal("43250.12"), None, None, {}
    )
    return Who(who.name, who.user_id, who.trader_id, str(signal_id))


async def rollout(url: str, *argv: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    code = await run_rollout(parse(["rollout", *argv]), url, Rollout(mode="all"), out, err)
    assert code == 0, err.getvalue()
    if SHOW:
        print(f"$ signal-monitor rollout {' '.join(argv)}\n{out.getvalue()}")
    return out.getvalue()


async def decisions(db: asyncpg.Connection, people: list[Who]) -> dict[str, str | None]:
    rows = await db.fetch(
        "SELECT id::text, monitor_intake FROM signals WHERE id = ANY($1::uuid[])", [p.signal_id for p in people]
    )
    by_id = {r["id"]: r["monitor_intake"] for r in rows}
    found = {p.name: by_id[p.signal_id] for p in people}
    if SHOW:
        print("intake: " + "; ".join(f"{k} {v}" for k, v in found.items()) + "\n")
    return found


async def test_the_ladder_from_a_test_trader_to_everyone(client, own_db):
    url, db = own_db
    # Only the 10 % user falls in the first half of the buckets: the dry run's counts are exact.
    test = await owner_and_trader(db, "test trader", user_in_bucket(6000, 10_000))
    canary = await owner_and_trader(db, "canary", user_in_bucket(6000, 10_000))
    early = await owner_and_trader(db, "in at 10 %", user_in_bucket(0, 1000))
    late = await owner_and_trader(db, "out until all", user_in_bucket(6000, 10_000))
    free = await owner_and_trader(db, "free owner", uuid.uuid4(), tier="free")
    out = await rollout(url, "allow", "--trader", test.trader_id)
    assert "all -> all" in out and "monitored: 0 -> 0" in out  # nothing in the last day yet
    await rollout(url, "set", "traders")
    people = [await new_signal(db, w) for w in (test, canary, early, late, free)]
    shown = await rollout(url, "show")
    # The dry run of every step over the last day's signals (the free owner's is never eligible).
    assert "5 signal(s), 4 eligible" in shown
    counts = {
        line.split()[0] + (line.split()[1] if line.split()[0] == "percent" else ""): line for line in shown.splitlines()
    }
    assert counts["off"].split()[1] == "0" and counts["traders"].split()[1] == "1" and "<- now" in counts["traders"]
    assert counts["users"].split()[1] == "1"  # no user allowed yet
    assert counts["percent10"].split()[3] == "2" and counts["percent50"].split()[3] == "2"
    assert counts["all"].split()[1] == "4"

    async with monitor_stack(client, url) as m, running_intake(client, m.settings, sweep_every=1.0):

        async def step(expected: dict[str, str]) -> None:
            async def check():
                found = await decisions(db, people)
                assert found == expected, found

            await eventually(check, timeout=30)

        not_in = "ineligible: not in rollout ({})"
        free_reason = "ineligible: the trader's owner is on the free tier, not elite (no subscription)"
        await step(
            {
                "test trader": "started",
                "canary": not_in.format("traders"),
                "in at 10 %": not_in.format("traders"),
                "out until all": not_in.format("traders"),
                "free owner": free_reason,
            }
        )
        dry = await rollout(url, "allow", "--user", canary.user_id, "--dry-run")
        assert "dry run, nothing changed" in dry
        await rollout(url, "allow", "--user", canary.user_id)
        out = await rollout(url, "set", "users")
        assert "traders -> users" in out and "monitored: 1 -> 2" in out
        await step(
            {
                "test trader": "started",
                "canary": "started",
                "in at 10 %": not_in.format("users"),
                "out until all": not_in.format("users"),
                "free owner": free_reason,
            }
        )
        out = await rollout(url, "set", "percent", "--percent", "10")
        assert "users -> percent 10 %" in out and "monitored: 2 -> 3" in out
        await step(
            {
                "test trader": "started",
                "canary": "started",
                "in at 10 %": "started",
                "out until all": not_in.format("percent"),
                "free owner": free_reason,
            }
        )
        await rollout(url, "set", "all")
        await step(
            {
                "test trader": "started",
                "canary": "started",
                "in at 10 %": "started",
                "out until all": "started",
                "free owner": free_reason,
            }
        )
        for p in people[:4]:
            await eventually(partial(status_is, db, p.signal_id, "monitoring"), timeout=30)

        # Narrowing back to the test trader: the others' monitors end `cancelled`, saying why.
        await rollout(url, "set", "traders")
        for p in people[1:4]:
            await eventually(partial(status_is, db, p.signal_id, "cancelled"), timeout=30)
            reason = await db.fetchval("SELECT monitor_reason FROM signals WHERE id = $1::uuid", p.signal_id)
            assert reason == "no longer eligible: not in rollout (traders)", reason
            # The row is written by the clean-up; the run closes right after it.
            await eventually(partial(_closed_as, client, p.signal_id, WorkflowExecutionStatus.CANCELED), timeout=30)
        assert await signal_status(db, people[0].signal_id) == "monitoring"
        assert len(m.proxy.requests_for(people[0].signal_id)) == 1


async def _closed_as(client: Client, signal_id: str, status: WorkflowExecutionStatus) -> None:
    assert (await client.get_workflow_handle(f"signal-{signal_id}").describe()).status == status


async def test_a_trader_turning_auto_analysis_off_or_an_owner_leaving_elite_stops_its_monitors(client, own_db):
    url, db = own_db
    stays = await new_signal(db, await owner_and_trader(db, "stays", uuid.uuid4()))
    switched_off = await new_signal(db, await owner_and_trader(db, "switched off", uuid.uuid4()))
    downgraded = await new_signal(db, await owner_and_trader(db, "downgraded", uuid.uuid4()))
    # No periodic sweep: the changes themselves (migration 010's triggers NOTIFY) make the intake look.
    async with monitor_stack(client, url) as m, running_intake(client, m.settings):
        for p in (stays, switched_off, downgraded):
            await eventually(partial(status_is, db, p.signal_id, "monitoring"), timeout=30)
        await db.execute("UPDATE traders SET auto_analyze_signals = false WHERE id = $1::uuid", switched_off.trader_id)
        await db.execute("UPDATE user_profiles SET subscription_tier = 'pro' WHERE id = $1::uuid", downgraded.user_id)
        expected = {
            switched_off.signal_id: "no longer eligible: trader switched off has auto_analyze_signals off",
            downgraded.signal_id: "no longer eligible: the trader's owner is on the pro tier, not elite (no subscription)",
        }
        for signal_id, reason in expected.items():
            await eventually(partial(status_is, db, signal_id, "cancelled"), timeout=30)
            assert await db.fetchval("SELECT monitor_reason FROM signals WHERE id = $1::uuid", signal_id) == reason
        assert await signal_status(db, stays.signal_id) == "monitoring"
        desc = await client.get_workflow_handle(f"signal-{stays.signal_id}").describe()
        assert desc.status == WorkflowExecutionStatus.RUNNING


async def test_the_live_ladder_is_separate_off_by_default_with_the_plans_caps(own_db):
    url, db = own_db
    canary = str(uuid.uuid4())
    shown = await rollout(url, "show", "--live")
    assert shown.startswith("live_rollout: off") and "caps now: 0 USD per order, 0 USD open per user" in shown
    await rollout(url, "allow", "--live", "--user", canary)
    out = await rollout(url, "set", "users", "--live")
    assert "off -> users" in out
    live = await live_rollout.load(db)
    verdict = live_rollout.live_verdict(live, uuid.uuid4(), canary, Decimal(100), Decimal(400))
    assert verdict.allowed and verdict.caps == live_rollout.Caps(Decimal(100), Decimal(500))
    refused = live_rollout.live_verdict(live, uuid.uuid4(), uuid.uuid4(), Decimal(10), Decimal(0))
    assert refused.kind == "not_in_rollout" and refused.reason == "live orders: not in rollout (users)"
    # Monitoring is untouched by the live ladder (its own row, still the seed).
    assert "monitor_rollout: all" in await rollout(url, "show")
    out = await rollout(url, "caps", "--max-order-usd", "25", "--max-total-usd", "")
    assert "25.00 USD per order, 500 USD open per user (the step's defaults: 100/500)" in out
    live = await live_rollout.load(db)
    assert live_rollout.live_verdict(live, None, canary, Decimal(30), Decimal(0)).kind == "over_order_cap"
