"""`python -m fakes.llm_proxy --port 8787 --api-key KEY [--delay S] [--store-rows URL]`: the
fake llm-proxy standalone, until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys

from fakes.local_server import serve_until_signalled

from .names import DEFAULT_PATH
from .server import FakeLlmProxy


async def _serve(args: argparse.Namespace) -> None:
    proxy = FakeLlmProxy(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        path=args.path,
        answer_delay=args.delay,
        store_rows=args.store_rows,
    )
    await serve_until_signalled(
        proxy,
        lambda: f"fake llm-proxy (deterministic stand-in, NOT a model) listening on {proxy.url}",
        lambda: f"fake llm-proxy stopped: {json.dumps(proxy.stats())}",
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m fakes.llm_proxy", description="Deterministic local stand-in for llm-proxy analyze-signal."
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8787, help="0 picks a free port")
    p.add_argument(
        "--api-key",
        default=os.environ.get("FAKE_LLM_PROXY_API_KEY"),
        help="bearer key to require (default: $FAKE_LLM_PROXY_API_KEY)",
    )
    p.add_argument("--delay", type=float, default=0.0, help="seconds to wait before every answer")
    p.add_argument("--path", default=DEFAULT_PATH)
    p.add_argument(
        "--store-rows",
        metavar="DATABASE_URL",
        help="insert a signal_analyses row per answer, like the production proxy",
    )
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if not args.api_key:
        p.error("--api-key (or FAKE_LLM_PROXY_API_KEY) is required")
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:  # pragma: no cover
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
