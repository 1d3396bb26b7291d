"""The live rollout gates every live entry (docs/rollout.md, "Live orders"): with no `live_rollout`
row (off) or over the step's per-order cap, the entry is refused before anything is sent: a
`rejected` orders row with the reason, no order on the exchange, the signal `failed`.

Each test has its own database: the live rollout is one row, which the other live tests switch on."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal as D

from tests.helpers.live import live_exchange, make_live
from tests.helpers.monitor import monitor_stack
from tests.helpers.positions import entered_signal, result_of, start_position
from tests.helpers.support import signal_status


async def refused_entry(client, url: str, db, rollout_sql: str, reason: str) -> None:
    """A live entry of about 1000 USD (the default stake) at 100, with every switch on and then
    the live rollout changed by `rollout_sql`: refused with `reason`, nothing sent."""
    row = await entered_signal(db, stop_loss=95.0, take_profits=[110.0])
    async with live_exchange() as account:
        await make_live(db, row, account)
        await db.execute(rollout_sql)
        async with monitor_stack(client, url, **account.settings()) as m:
            result = await result_of(await start_position(client, row, m.task_queue, entry_price=D(100)))
        assert account.orders() == []
    assert result.status == "not_opened" and reason in result.reason, result
    assert await signal_status(db, row.signal_id) == "failed"
    refused = await db.fetch("SELECT status, side, metadata FROM orders WHERE signal_id = $1", row.signal_id)
    assert [(r["status"], r["side"]) for r in refused] == [("rejected", "buy")]
    metadata = json.loads(refused[0]["metadata"])
    assert metadata["kind"] == "entry" and reason in metadata["refused"]
    assert await db.fetchval("SELECT count(*) FROM positions WHERE signal_id = $1", uuid.UUID(row.signal_id)) == 0


async def test_no_live_rollout_row_places_nothing_live(client, own_db):
    url, db = own_db
    await refused_entry(client, url, db, "DELETE FROM live_rollout", "live orders: not in rollout (off)")


async def test_an_entry_over_the_per_order_cap_is_refused(client, own_db):
    url, db = own_db
    await refused_entry(
        client, url, db, "UPDATE live_rollout SET max_order_usd = 600",
        "USD is over the cap of 600.00 per order",
    )  # fmt: skip
