"""Default policies: the answer when a signal has no script (the dev stack's deterministic demo)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .names import REASONING_PREFIX
from .steps import Answer, DecisionAnswer, DefaultPolicy, Step


def request_price(params: Mapping[str, Any]) -> float:
    candle = params.get("candle")
    for raw in ((candle or {}).get("close") if isinstance(candle, Mapping) else None, params.get("price")):
        try:
            if raw is not None and raw != "":
                return float(raw)
        except (TypeError, ValueError):
            pass
    return 100.0


def reanalysis_policy(params: dict[str, Any]) -> DecisionAnswer:
    """The default, deterministic policy (the dev demo is reproducible).

    ``reanalysis`` 0 -> ``wait`` 55; 1 -> ``wait`` 62; 2 and later -> ``enter_trade`` 78 with key
    levels from the candle close (entry = close, stopLoss = close*0.98, takeProfit = close*[1.02, 1.04]).
    """
    try:
        n = int(params.get("reanalysis") or 0)
    except (TypeError, ValueError):
        n = 0
    symbol = params.get("symbol", "?")
    price = request_price(params)
    if n <= 0:
        return Answer.wait(
            55,
            reasoning=(
                f"{REASONING_PREFIX}reanalysis {n}: {symbol} at {price:g} has no confirmation yet; "
                "waiting for the next candle. Deterministic stand-in, not a model."
            ),
        )
    if n == 1:
        return Answer.wait(
            62,
            reasoning=(
                f"{REASONING_PREFIX}reanalysis {n}: {symbol} at {price:g} is improving but not confirmed; "
                "waiting one more candle. Deterministic stand-in, not a model."
            ),
        )
    return Answer.enter(
        78,
        reasoning=(
            f"{REASONING_PREFIX}reanalysis {n}: {symbol} setup confirmed at {price:g}; entering with "
            "stop 2% below and targets 2% and 4% above. Deterministic stand-in, not a model."
        ),
    )


def always(step: Step) -> DefaultPolicy:
    """A default policy answering ``step`` to every request (e.g. ``default=always(Fault.status(500))``)."""
    return lambda _params: step
