"""`backtest --decisions model`: the `model` backend on the replayed series.

- Candles for the prompts come from the series itself, up to the analysed close (never a later
  one: `closed_by`), in the replay's (shifted) time, so they line up with the closes the workflows
  are fed. Prices are the series' own.
- `ModelCallMeter` counts what the gate counts for llm-proxy (calls and tokens per signal, the hard
  `--max-calls` cap), plus cost and answers served from the cache. A call past the cap is never
  made: the activity fails with a non-retryable error and the feed stops the run, as with the gate.
- The content-addressed answer cache (model_backend/answer_cache.py) is on by default: the same
  run again makes no call and costs nothing."""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from temporalio.exceptions import ApplicationError

from market.candle import Candle
from model_backend.answer_cache import AnswerCache
from model_backend.client import Completion
from model_backend.indicators import Bar
from model_backend.market import bar_row, closed_by
from model_backend.pricing import call_cost
from workflows.common import names

CAP_MESSAGE = "backtest model call cap ({cap}) reached; call not made"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "signal-monitor" / "model-answers"


@dataclass(frozen=True)
class ModelRun:
    """Where a backtest's decisions go: the endpoint, its models and parameters (the key stays in
    this object and the worker's client: never in the report)."""

    label: str
    url: str
    key: str | None = field(repr=False)
    model: str
    monitoring_model: str | None = None
    structured: str = "json_schema"
    temperature: float = 0.2
    max_tokens: int = 1200
    candle_count: int = 100
    cache_dir: Path | None = None
    masked: bool = False  # the --masked probe: symbol, times and price level hidden
    standin: bool = False  # the local rule stand-in (fakes/model): a rule, not a model


class ModelCallMeter:
    """The backtest's count and cap of model calls (the `CallGate`'s interface for the feed)."""

    def __init__(self, max_calls: int | None, model: str) -> None:
        self.max_calls = max_calls
        self._model = model
        self.calls = 0
        self.refused = 0
        self.cache_hits = 0
        self.cost = Decimal(0)
        self.cost_unknown = 0
        self.calls_by_signal: collections.Counter[str] = collections.Counter()
        self.tokens_by_signal: collections.Counter[str] = collections.Counter()

    @property
    def cap_reached(self) -> bool:
        return self.max_calls is not None and self.calls >= self.max_calls

    def room(self) -> int | None:
        return None if self.max_calls is None else max(0, self.max_calls - self.calls)

    def before_call(self, signal_id: str) -> None:
        if self.cap_reached:
            self.refused += 1
            raise ApplicationError(
                CAP_MESSAGE.format(cap=self.max_calls), type=names.LLM_REQUEST_REJECTED, non_retryable=True
            )
        self.calls += 1
        self.calls_by_signal[signal_id] += 1

    def after_call(self, signal_id: str, completion: Completion, cached: bool) -> None:
        self.tokens_by_signal[signal_id] += (completion.tokens_in or 0) + (completion.tokens_out or 0)
        if cached:
            self.cache_hits += 1
            return
        cost, _ = call_cost(
            completion.provider_cost,
            completion.model_served or self._model,
            completion.tokens_in,
            completion.tokens_out,
        )
        if cost is None:
            self.cost_unknown += 1
        else:
            self.cost += cost

    def summary(self) -> str:
        unknown = f" (+{self.cost_unknown} calls of unknown cost)" if self.cost_unknown else ""
        return f"model calls made {self.calls}, answers from the cache {self.cache_hits}, cost ${self.cost.normalize():f}{unknown}"


class SeriesCandles:
    """The replayed series as a candle source, in its own time (the activity unshifts its input)."""

    def __init__(self, candles: list[Candle]) -> None:
        self._rows = [bar_row(c) for c in candles]
        self.asked = 0

    async def closed_candles(self, symbol: str, interval: str, cutoff_ms: int, n: int) -> list[Bar]:
        self.asked += 1
        return closed_by(self._rows, cutoff_ms, n)


def answer_cache(run: ModelRun) -> AnswerCache | None:
    return AnswerCache(run.cache_dir) if run.cache_dir is not None else None


def describe(run: ModelRun) -> dict[str, Any]:
    return {"model": run.model, "monitoring_model": run.monitoring_model, "url": run.url, "structured": run.structured}
