"""The stand-in's decision rule (a rule, NOT a model): it reads the candle table in the prompt and
answers in the `model` backend's schema, so the offline demo and backtests decide from the data.

analyze-signal:
- fewer than 5 candles in the prompt: `wait` 50.
- analyses #0 and #1: `wait` (55, then 62), the reasoning quoting the last close against the mean
  of the last 10 closes.
- from analysis #2 on: `enter_trade` 78 in the direction of the last close against that mean
  (at or above: long; below: short), entry at the last close, stop 1.5 x the mean range of the
  last 14 candles away, targets at 2 and 3 x that range (reward-to-risk 1.33).
manage-position:
- fewer than 2 previous management decisions: `hold` 65; then `close` 75.

Pure: text in, JSON-able dict out."""

from __future__ import annotations

import re
from typing import Any

# Every answer's reasoning starts with it: a reader (and `history`) can tell it is not a model's.
REASONING_PREFIX = "rule, not a model"
_ANALYSIS = re.compile(r"analysis #(\d+)")
_ROW = re.compile(r"^-?\d+,(?:[^,]+,)?([-\d.]+),([-\d.]+),([-\d.]+),([-\d.]+),[-\d.e+]+$")


def candles(text: str) -> list[tuple[float, float, float, float]]:
    """(open, high, low, close) rows of the prompt's candle table, oldest first."""
    out = []
    for line in text.splitlines():
        m = _ROW.match(line.strip())
        if m:
            out.append((float(m[1]), float(m[2]), float(m[3]), float(m[4])))
    return out


def _digits(price: float) -> int:
    return 2 if price >= 1000 else 4 if price >= 1 else 8


def decide(prompt: str) -> dict[str, Any]:
    if "Operation: manage-position" in prompt:
        return _manage(prompt)
    return _analyse(prompt)


def _analyse(prompt: str) -> dict[str, Any]:
    rows = candles(prompt)
    m = _ANALYSIS.search(prompt)
    number = int(m[1]) if m else 0
    empty_levels: dict[str, Any] = {
        "side": None,
        "entry": None,
        "stopLoss": None,
        "takeProfit": [],
        "support": [],
        "resistance": [],
    }
    plan = {"setup": "", "execution": "", "invalidation": "", "riskReward": None}
    if len(rows) < 5:
        return {
            "decision": "wait",
            "confidence": 50,
            "reasoning": f"rule, not a model: only {len(rows)} candles",
            "keyLevels": empty_levels,
            "tradePlan": plan,
        }
    closes = [r[3] for r in rows]
    last = closes[-1]
    mean10 = sum(closes[-10:]) / len(closes[-10:])
    span = sum(r[1] - r[2] for r in rows[-14:]) / len(rows[-14:]) or last * 0.001
    side = "long" if last >= mean10 else "short"
    d = _digits(last)
    why = f"rule, not a model: last close {last:.{d}f} vs mean of last 10 closes {mean10:.{d}f} ({side} bias)"
    if number < 2:
        return {
            "decision": "wait",
            "confidence": 55 if number == 0 else 62,
            "reasoning": why,
            "keyLevels": {**empty_levels, "support": [round(min(r[2] for r in rows[-20:]), d)]},
            "tradePlan": plan,
        }
    sign = 1 if side == "long" else -1
    stop = round(last - sign * 1.5 * span, d)
    targets = [round(last + sign * 2 * span, d), round(last + sign * 3 * span, d)]
    return {
        "decision": "enter_trade",
        "confidence": 78,
        "reasoning": why,
        "keyLevels": {**empty_levels, "side": side, "entry": round(last, d), "stopLoss": stop, "takeProfit": targets},
        "tradePlan": {
            "setup": f"{side} in the direction of the close against its 10-candle mean",
            "execution": "market at the close",
            "invalidation": f"a close beyond {stop}",
            "riskReward": round(2 / 1.5, 2),
        },
    }


def _manage(prompt: str) -> dict[str, Any]:
    previous = prompt.split("Previous management decisions (oldest first):", 1)
    count = 0
    if len(previous) == 2:
        for line in previous[1].splitlines()[1:]:
            if not line.startswith("- "):
                break
            count += 1
    action = "close" if count >= 2 else "hold"
    return {
        "action": action,
        "confidence": 75 if action == "close" else 65,
        "reasoning": f"rule, not a model: {count} management decisions so far ({action} after 2)",
        "actionDetails": {"newStopLoss": None, "newTakeProfit": [], "reduceAmount": None},
        "riskAssessment": {"marketRisk": "n/a (rule)", "positionRisk": "n/a (rule)"},
    }
