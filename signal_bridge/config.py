"""The bridge's settings: the `bridge` section of the one settings model (runtime/config.py),
read from `BINANCE_WS_URL`, `BINANCE_REST_URL`, `SIGNAL_BRIDGE_*` and `DATABASE_URL`."""

from __future__ import annotations

from runtime.config import MODES, RUNNING_MONITORS_QUERY, BridgeSettings

BridgeConfig = BridgeSettings

__all__ = ["MODES", "RUNNING_MONITORS_QUERY", "BridgeConfig"]
