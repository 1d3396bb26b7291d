"""What every fake server shares: it listens between `start()` and `stop()`, and `async with fake:`
does both, so the tests, the benchmarks and the `dev` stack hold every fake the same way."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, Self

from aiohttp import web

from runtime.lifecycle import stop_on_signals


class LocalServer(abc.ABC):
    host: str
    port: int | None  # after start(), the one it listens on (a requested 0 is then the OS's pick)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @abc.abstractmethod
    async def start(self) -> object: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def serve_app(
    app: web.Application, host: str, port: int, *, backlog: int = 128, **options: Any
) -> tuple[web.AppRunner, int]:
    """Serve `app` on host:port; the runner that stops it (`cleanup()`) and the port it listens on
    (0 asks for a free one). `options` go to aiohttp's AppRunner."""
    runner = web.AppRunner(app, access_log=None, **options)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, backlog=backlog).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, runner.addresses[0][1]


async def serve_until_signalled(fake: LocalServer, started: Callable[[], str], stopped: Callable[[], str]) -> None:
    """A fake's own command line (`python -m fakes.…`): serve until SIGTERM/SIGINT, printing the line
    `started` gives once it listens and the one `stopped` gives once it no longer does (also when
    the wait is cancelled)."""
    await fake.start()
    print(started(), flush=True)
    try:
        await stop_on_signals().wait()
    finally:
        await fake.stop()
        print(stopped(), flush=True)
