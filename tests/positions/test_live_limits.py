"""Risk limits and the kill switch on live positions: an entry that would break a limit is refused
with its reason (the signal ends `failed`, nothing is sent), `signal-monitor trading pause --flatten`
(a real process) closes a user's live positions at market and stops new entries at once."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal as D

from activities.live.accounts import write_keys_file
from tests.helpers.live import live_exchange, make_live
from tests.helpers.monitor import monitor_stack
from tests.helpers.positions import entered_signal, entered_signal_of, result_of, start_position, view
from tests.helpers.processes import command_env, signal_monitor
from tests.helpers.support import eventually, signal_status


async def _open(handle):
    state = await view(handle)
    assert state.status == "open", state


async def test_limits_refuse_before_sending(client, database_url, db):
    row = await entered_signal(db, stop_loss=None, take_profits=[110.0])
    async with live_exchange() as account:
        await make_live(db, row, account)
        await db.execute(
            "INSERT INTO risk_limits (user_id, max_position_size, require_stop_loss) VALUES ($1, 500, false)",
            uuid.UUID(row.user_id),
        )
        async with monitor_stack(client, database_url, **account.settings()) as m:
            handle = await start_position(client, row, m.task_queue, entry_price=D(100))
            result = await result_of(handle)
        assert account.orders() == []
    assert result.status == "not_opened" and "max_position_size: 1000" in result.reason
    assert await signal_status(db, row.signal_id) == "failed"
    refused = await db.fetchrow("SELECT status, metadata FROM orders WHERE signal_id = $1", row.signal_id)
    assert refused["status"] == "rejected" and "max_position_size" in json.loads(refused["metadata"])["refused"]
    # Spot only: a short entry on a live account is refused with its reason, no order.
    short = await entered_signal(db, side="sell", stop_loss=105.0, take_profits=[90.0])
    async with live_exchange() as account:
        await make_live(db, short, account)
        async with monitor_stack(client, database_url, **account.settings()) as m:
            result = await result_of(await start_position(client, short, m.task_queue, entry_price=D(100)))
        assert account.orders() == []
    assert result.status == "not_opened" and "spot only" in result.reason
    assert await signal_status(db, short.signal_id) == "failed"


async def test_kill_switch_flattens_and_refuses_new_entries(client, database_url, db, temporal_address):
    first = await entered_signal(db, stop_loss=95.0, take_profits=[120.0])
    async with live_exchange() as account:
        await make_live(db, first, account)
        env = command_env(temporal_address, DATABASE_URL=database_url)
        async with monitor_stack(client, database_url, **account.settings()) as m:
            handle = await start_position(client, first, m.task_queue, entry_price=D(100))
            await eventually(lambda: _open(handle))
            done = await signal_monitor(env, "trading", "pause", "--user", first.user_id, "--flatten",
                                        "--reason", "incident 42")  # fmt: skip
            assert "trading paused for user" in done.stdout and "closed: exit 100" in done.stdout
            result = await result_of(handle)
            assert "incident 42 (flatten)" in result.reason
            # The same user's next entry is refused at once; nothing is sent.
            second = await entered_signal_of(db, first, stop_loss=95.0, take_profits=[120.0])
            refused = await result_of(await start_position(client, second, m.task_queue, entry_price=D(100)))
            assert refused.status == "not_opened" and "trading is paused: incident 42" in refused.reason
            await signal_monitor(env, "trading", "resume", "--user", first.user_id)
            third = await entered_signal_of(db, first, stop_loss=95.0, take_profits=[120.0])
            resumed = await start_position(client, third, m.task_queue, entry_price=D(100))
            await eventually(lambda: _open(resumed))
        kinds = [(o.side, o.type, o.status) for o in account.orders()]
    # first: entry, its OCO (stop + target, cancelled as a list by the close), the flatten's
    # market sell; third: entry + OCO.
    assert kinds == [
        ("BUY", "MARKET", "FILLED"),
        ("SELL", "LIMIT_MAKER", "CANCELED"),
        ("SELL", "STOP_LOSS_LIMIT", "CANCELED"),
        ("SELL", "MARKET", "FILLED"),
        ("BUY", "MARKET", "FILLED"),
        ("SELL", "LIMIT_MAKER", "NEW"),
        ("SELL", "STOP_LOSS_LIMIT", "NEW"),
    ]
    bad = await signal_monitor(env, "trading", "pause", "--user", "not-a-uuid", check=False)
    assert bad.returncode == 2


async def test_the_worker_refuses_a_keys_file_others_can_read(tmp_path, database_url, temporal_address):
    keys = tmp_path / "keys.json"
    write_keys_file(keys, {str(uuid.uuid4()): ("k", "s3cr3t-value")})
    keys.chmod(0o644)
    env = command_env(temporal_address, DATABASE_URL=database_url, LLM_PROXY_URL="http://127.0.0.1:9",
                      LLM_PROXY_KEY="sk-test", SIGNAL_MONITOR_LIVE_TRADING="on",
                      SIGNAL_MONITOR_EXCHANGE_KEYS_FILE=str(keys))  # fmt: skip
    done = await signal_monitor(env, "worker", check=False)
    assert done.returncode == 2 and "readable by other users" in done.stderr and "s3cr3t" not in done.stderr
    env.pop("SIGNAL_MONITOR_EXCHANGE_KEYS_FILE")
    done = await signal_monitor(env, "worker", check=False)
    assert done.returncode == 2 and "needs SIGNAL_MONITOR_EXCHANGE_KEYS_FILE" in done.stderr
