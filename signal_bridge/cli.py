"""`signal-monitor bridge`: forward Binance candle closes to the running monitors until
SIGTERM/SIGINT. Configuration comes from the environment (the `bridge` section of
`runtime.config.Settings`); Temporal from the Temporal CLI's environment configuration
(TEMPORAL_ADDRESS, ...)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from runtime.config import BridgeSettings, ConfigError, Settings
from runtime.lifecycle import stop_on_signals

from .events import emit
from .stats import BridgeStats

ENV_HELP = """environment:
  BINANCE_WS_URL                  default wss://stream.binance.com:9443
  BINANCE_REST_URL                default https://api.binance.com
  SIGNAL_BRIDGE_REFRESH_SECONDS   how often running monitors are listed (default 5)
  SIGNAL_BRIDGE_MODE              redundant (default: every replica sends every close) or shared
                                  (replicas divide the streams; needs DATABASE_URL)
  DATABASE_URL                    shared mode: PostgreSQL holding the replicas' advisory locks
                                  (a direct or session-mode connection, not a transaction pooler)
  SIGNAL_BRIDGE_<FIELD>           any other BridgeSettings field, e.g. SIGNAL_BRIDGE_SIGNAL_CONCURRENCY
  SIGNAL_MONITOR_METRICS_ADDRESS  serve Prometheus metrics here (e.g. 0.0.0.0:9464)
  TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_PROFILE: where Temporal is"""


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="signal-monitor bridge",
        description=__doc__,
        epilog=ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # A positional word rather than a flag: `signal-monitor bridge` hands over its remaining
    # arguments with argparse.REMAINDER, which cannot start with an option.
    p.add_argument(
        "action",
        nargs="?",
        choices=("run", "config"),
        default="run",
        help="run (default) or config: print the effective settings and exit",
    )
    return p.parse_args(argv)


async def _serve(cfg: BridgeSettings, metrics_address: str | None) -> None:
    from runtime import metrics
    from runtime.temporal_client import connect_client, describe_target

    from .metrics import BridgeMetrics

    runtime = metrics.init_runtime(metrics_address)  # before the client: SIGNAL_MONITOR_METRICS_ADDRESS
    stop = stop_on_signals()
    emit("bridge.temporal", target=describe_target())
    client = await connect_client(runtime)
    stats = BridgeStats()
    async with BridgeMetrics(metrics.meter(), stats).running():
        from .service import run_bridge

        await run_bridge(cfg, client=client, stop=stop, stats=stats)


def main(argv: list[str]) -> int:
    argv = list(argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    args = _parse(argv)
    try:
        settings = Settings.from_env()
        cfg = settings.bridge
        cfg.check()
    except ConfigError as exc:
        print(f"error: bridge configuration: {exc}", file=sys.stderr)
        return 2
    if args.action == "config":
        for key, value in cfg.printable().items():
            print(f"{key}={value}")
        return 0
    try:
        asyncio.run(_serve(cfg, settings.metrics_address))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # e.g. Temporal unreachable at start: a clear line, not a trace
        print(f"error: bridge stopped: {exc!r}"[:500], file=sys.stderr)
        return 1
    return 0
