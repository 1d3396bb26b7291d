"""`python -m fakes.model --port 8788 [--delay S]`: the rule stand-in standalone, until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import sys

from fakes.local_server import serve_until_signalled

from .server import STANDIN_MODEL, FakeModel


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeModel(host=args.host, port=args.port, answer_delay=args.delay)
    await serve_until_signalled(
        fake,
        lambda: f"fake model (a rule over the prompt's candles, NOT a model; model id {STANDIN_MODEL}) at {fake.url}",
        lambda: f"fake model stopped after {fake.answered} answers",
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fakes.model", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8788, help="0 picks a free port")
    p.add_argument("--delay", type=float, default=0.0, help="seconds to wait before every answer")
    asyncio.run(_serve(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
