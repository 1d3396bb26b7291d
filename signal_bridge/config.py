"""Bridge settings from the environment. Binance endpoints keep Binance-ish names; every other
knob is `SIGNAL_BRIDGE_*`. Defaults are the values that are safe against the real exchange."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from workflows.names import POSITION_WORKFLOW_TYPE, WORKFLOW_TYPE

# Monitors and position managers both take `candle_closed` of their (SignalSymbol, SignalInterval).
RUNNING_MONITORS_QUERY = (
    f"WorkflowType IN ('{WORKFLOW_TYPE}', '{POSITION_WORKFLOW_TYPE}') AND ExecutionStatus = 'Running'"
)


@dataclass(frozen=True)
class BridgeConfig:
    ws_url: str = "wss://stream.binance.com:9443"
    rest_url: str = "https://api.binance.com"
    # Visibility is eventually consistent: how often the running monitors are listed again.
    refresh_seconds: float = 5.0
    query: str = RUNNING_MONITORS_QUERY
    # Binance: at most 1024 streams per connection.
    streams_per_connection: int = 1024
    # Binance: at most 5 incoming messages/s per connection, pings and pongs included. One
    # control message per 0.35 s leaves room for the pongs and our own keepalive pings.
    control_interval: float = 0.35
    subscribe_batch: int = 200  # streams per SUBSCRIBE message
    reply_timeout: float = 10.0  # for a SUBSCRIBE/UNSUBSCRIBE answer
    # Binance cuts a connection at 24 h: rotate (make-before-break) well before.
    max_connection_age: float = 23 * 3600.0
    reconnect_initial: float = 1.0
    reconnect_max: float = 60.0
    # Binance allows 300 connection attempts per 5 minutes per IP; stay under it.
    connect_attempts_per_5min: int = 200
    open_timeout: float = 10.0
    ping_interval: float = 20.0  # our keepalive pings (0 = off); Binance pings us as well
    ping_timeout: float = 60.0
    signal_concurrency: int = 32
    signal_timeout: float = 10.0
    retry_initial: float = 1.0
    retry_max: float = 30.0
    dedup_capacity: int = 200_000
    backfill_on_start: bool = True
    # A stream newly watched after start (a new monitor, or one visibility showed late) gets
    # its newest closed candle from REST too: the monitor ignores it if it predates the signal.
    backfill_new_streams: bool = True
    missing_close_grace: float = 5.0  # a close not seen by then (next candle under way): ask REST
    rest_concurrency: int = 4
    rest_timeout: float = 10.0
    rest_max_attempts: int = 5
    stats_seconds: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> BridgeConfig:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            if f.name == "ws_url":
                raw = env.get("BINANCE_WS_URL")
            elif f.name == "rest_url":
                raw = env.get("BINANCE_REST_URL")
            else:
                raw = env.get(f"SIGNAL_BRIDGE_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            default = f.default
            if isinstance(default, bool):
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif isinstance(default, int):
                values[f.name] = int(raw)
            elif isinstance(default, float):
                values[f.name] = float(raw)
            else:
                values[f.name] = raw
        values.update(overrides)
        cfg = cls(**values)  # type: ignore[arg-type]
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if not 1 <= self.streams_per_connection <= 1024:
            raise ValueError("streams_per_connection must be within 1..1024 (Binance's cap)")
        if self.control_interval < 0.2:
            raise ValueError("control_interval below 0.2 s risks Binance's 5 messages/s rule")
        if self.refresh_seconds <= 0 or self.signal_concurrency < 1 or self.subscribe_batch < 1:
            raise ValueError("refresh_seconds, signal_concurrency and subscribe_batch must be positive")

    @property
    def stream_url(self) -> str:
        return self.ws_url.rstrip("/") + "/stream"
