"""`signal-monitor dev --live-orders`: refused with `--live` before anything starts (the local
exchange takes its prices from the local replay). The full demo is run by hand (docs/live-orders.md)."""

from __future__ import annotations

from tests.helpers.processes import dev_env, signal_monitor


async def test_live_orders_needs_the_local_replay(tmp_path):
    env = dev_env(SIGNAL_MONITOR_DEV_STATE=str(tmp_path / "state"))
    done = await signal_monitor(env, "dev", "--live", "--live-orders", check=False)
    assert done.returncode == 2 and "not with --live" in done.stderr
    assert not (tmp_path / "state").exists()
