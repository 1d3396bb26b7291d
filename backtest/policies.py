"""The local deterministic stand-in's answers for backtests (`--proxy local`).

`local` answers like the dev stack's stand-in (`fakes.llm_proxy.reanalysis_policy`) unless the
trader's strategy names another prompt version (`"promptVersion": "strict"`), which is how two
prompt versions behind one proxy are compared: `--compare local 'local;strategy:promptVersion=strict'`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fakes.llm_proxy import REASONING_PREFIX, Answer, Step, reanalysis_policy


def strict_policy(params: dict[str, Any]) -> Step:
    """Enter only on a candle that closed at least 0.1 % above its open (confidence 80), abandon
    after one that closed 0.2 % or more below it, else wait; the signal itself is always a wait."""
    candle = params.get("candle") or {}
    try:
        o, c = Decimal(str(candle["open"])), Decimal(str(candle["close"]))
    except (KeyError, ArithmeticError, TypeError):
        return Answer.wait(50, reasoning=f"{REASONING_PREFIX}strict: no candle yet; waiting")
    move = (c - o) / o if o else Decimal(0)
    if move >= Decimal("0.001"):
        return Answer.enter(80, reasoning=f"{REASONING_PREFIX}strict: close {move:.2%} above open; entering")
    if move <= Decimal("-0.002"):
        return Answer.abandon(70, reasoning=f"{REASONING_PREFIX}strict: close {move:.2%} below open; abandoning")
    return Answer.wait(50, reasoning=f"{REASONING_PREFIX}strict: move {move:.2%} too small; waiting")


PROMPT_VERSIONS = {"default": reanalysis_policy, "strict": strict_policy}


def local_policy(params: dict[str, Any]) -> Step:
    strategy = params.get("strategy")
    version = strategy.get("promptVersion") if isinstance(strategy, dict) else None
    return PROMPT_VERSIONS.get(str(version), reanalysis_policy)(params)
