"""What every long-running process shares: capped exponential backoff for reconnect and retry
loops, and the stop event set by SIGTERM/SIGINT. No project imports: the bridge, the intake, the
worker, the fakes' command lines and the benches all use it."""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Callable, Iterable


class Backoff:
    """Capped exponential delays: `initial`, `initial * factor`, ... up to `maximum`.

    With `jitter` (the default), equal jitter: half the capped delay plus a random half, so many
    processes that lost a dependency together do not come back in one burst."""

    def __init__(
        self,
        initial: float,
        maximum: float,
        factor: float = 2.0,
        *,
        jitter: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self.initial, self.maximum, self.factor, self.jitter = initial, maximum, factor, jitter
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        if not self.jitter:
            return ceiling
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_signals(callback: Callable[[signal.Signals], None], signals: Iterable[signal.Signals] = STOP_SIGNALS) -> None:
    """Call `callback(signal)` on each of `signals` (inside the running loop)."""
    loop = asyncio.get_running_loop()
    for sig in signals:
        try:
            loop.add_signal_handler(sig, callback, sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix, or not the main thread
            pass


def stop_on_signals(signals: Iterable[signal.Signals] = STOP_SIGNALS) -> asyncio.Event:
    """An event set on the first SIGTERM or SIGINT (call inside the running loop): the process
    then drains and exits 0 instead of dying with a traceback."""
    stop = asyncio.Event()
    on_signals(lambda _sig: stop.set(), signals)
    return stop
