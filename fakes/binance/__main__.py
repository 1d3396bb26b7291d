"""`python -m fakes.binance --port 9443 --replay series --speed 60`: a local Binance for the
offline demo. Point the bridge at it with BINANCE_WS_URL=ws://127.0.0.1:9443 and
BINANCE_REST_URL=http://127.0.0.1:9443.

--replay series    every subscribed kline stream gets a live compressed-time series (default)
--replay recorded  the shipped real frames, verbatim, then series as above
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from runtime.lifecycle import stop_on_signals

from .series import SeriesOptions
from .server import FakeBinance


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m fakes.binance", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9443)
    p.add_argument("--replay", choices=("series", "recorded"), default="series")
    p.add_argument("--speed", type=float, default=60.0, help="clock speed-up (60: a 1m candle per second)")
    p.add_argument("--updates", type=int, default=2, help="x:false updates per candle")
    p.add_argument("--stream-cap", type=int, default=1024)
    p.add_argument("--max-connection-age", type=float, default=None, help="seconds, then close 1001")
    p.add_argument("--announce-shutdown", action="store_true", help="send serverShutdown before 1001")
    p.add_argument("--ping-interval", type=float, default=20.0)
    p.add_argument("--ping-timeout", type=float, default=60.0)
    p.add_argument("--series", default="", help="also start these now: BTCUSDT:1m,ETHUSDT:15m")
    return p.parse_args(argv)


async def _run(args: argparse.Namespace) -> None:
    stop = stop_on_signals()
    fake = FakeBinance(
        args.host,
        args.port,
        speed=args.speed,
        stream_cap=args.stream_cap,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        max_connection_age=args.max_connection_age,
        announce_shutdown=args.announce_shutdown,
        auto_series=True,
        series=SeriesOptions(updates_per_candle=args.updates),
    )
    async with fake:
        for item in filter(None, args.series.split(",")):
            symbol, interval = item.split(":")
            fake.start_series(symbol, interval)
        logging.info("fake Binance on %s (REST %s), speed x%g", fake.ws_url, fake.rest_url, args.speed)
        if args.replay == "recorded":
            fake.spawn(fake.replay_recorded(pace=0.05))
        await stop.wait()
        logging.info("fake Binance stopping: %s", fake.stats)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(_run(_parse(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
