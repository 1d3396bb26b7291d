"""The `model` decision backend behind the activity names `analyze_signal` and `manage_position`
(same inputs and results as llm-proxy's, so the workflows and their histories do not change): the
worker registers these or llm-proxy's (`SIGNAL_MONITOR_DECISIONS`).

Each decision: the candles up to the analysed close (never a later one), the versioned prompt,
one call; an unusable answer gets one re-ask with its errors, then an abstention (`wait` / `hold`,
confidence 0, `abstained` recorded): never an entry and never an order from a bad answer. HTTP and
transport errors are raised for Temporal to retry (model_backend/client.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, Protocol

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import activity_metrics
from activities.candle_source import CandleSource, KlinesError
from model_backend import indicators
from model_backend.answer_cache import AnswerCache
from model_backend.answers import (
    ANALYSIS_SCHEMA,
    MANAGEMENT_SCHEMA,
    MIN_REWARD_TO_RISK,
    Checked,
    CheckedAnalysis,
    CheckedManagement,
    parse_analysis,
    parse_management,
)
from model_backend.client import Completion, ModelClient
from model_backend.masking import Mask
from model_backend.pricing import call_cost
from model_backend.prompt import Rendered, analysis_prompt, management_prompt, reask
from workflows.common import names
from workflows.common.model_call import ModelCall
from workflows.common.timefmt import datetime_to_ms
from workflows.monitor.models import Analysis, AnalyzeSignalInput
from workflows.position.models import ManagementAnswer, ManagePositionInput

RAW_ANSWER_CHARS = 4000


class CallMeter(Protocol):
    """What a backtest counts and caps (backtest/model_calls.py); live workers have none."""

    def before_call(self, signal_id: str) -> None:
        """Raises a non-retryable ApplicationError when the run's call cap is reached."""
        ...

    def after_call(self, signal_id: str, completion: Completion, cached: bool) -> None: ...


@dataclass
class Decided:
    checked: Checked
    call: dict[str, Any]  # the ModelCall's fields
    text: str | None


class ModelDecisions:
    def __init__(
        self,
        client: ModelClient,
        candles: CandleSource,
        model: str,
        monitoring_model: str | None = None,
        candle_count: int = 100,
        answer_cache: AnswerCache | None = None,
        meter: CallMeter | None = None,
        time_shift: Callable[[], int] | None = None,
        mask: Mask | None = None,
    ):
        self._client = client
        self._candles = candles
        self.model = model
        self.monitoring_model = monitoring_model or model
        self._count = candle_count
        self._cache = answer_cache
        self._meter = meter
        # A backtest replays its series shifted into the test server's future: prompts (and the
        # answer cache's keys) use the series' own times, so a rerun asks the same question.
        self._shift = time_shift
        self._mask = mask  # the backtest's --masked probe

    async def _bars(self, symbol: str, interval: str, cutoff_ms: int) -> list[indicators.Bar]:
        try:
            return await self._candles.closed_candles(symbol, interval, cutoff_ms, self._count)
        except KlinesError as exc:
            # Retryable: the exchange's REST may be down for a while; Temporal's policy bounds it.
            raise ApplicationError(f"candles unavailable: {exc}"[:500], type=names.LLM_UNAVAILABLE) from None

    async def _complete(self, body: dict[str, Any], signal_id: str) -> tuple[Completion, bool]:
        cached = self._cache.get(body) if self._cache is not None else None
        if cached is None:
            if self._meter is not None:
                self._meter.before_call(signal_id)
            completion = await self._client.complete(body)
            if self._cache is not None:
                self._cache.put(body, completion)
        if self._meter is not None:
            self._meter.after_call(signal_id, cached or completion, cached is not None)
        return (cached, True) if cached is not None else (completion, False)

    async def _decide(
        self,
        signal_id: str,
        rendered: Rendered,
        model: str,
        name: str,
        schema: dict[str, Any],
        parse: Callable[[str | None], Checked],
    ) -> Decided:
        messages = rendered.messages
        tokens_in = tokens_out = tokens_cached = 0
        cost, cost_source, latency, attempts = Decimal(0), "provider", 0, 0
        all_cached, served, text = True, None, None
        checked: Checked = Checked(errors=["no answer"])
        for _ in range(2):  # the answer, and one re-ask with its errors
            body = self._client.request_body(model, messages, name, schema)
            completion, cached = await self._complete(body, signal_id)
            attempts += 1
            all_cached &= cached
            served, text = completion.model_served or served, completion.text
            tokens_in += completion.tokens_in or 0
            tokens_out += completion.tokens_out or 0
            tokens_cached += completion.tokens_cached or 0
            latency += completion.latency_ms
            this_cost, source = call_cost(
                completion.provider_cost, completion.model_served or model, completion.tokens_in, completion.tokens_out
            )
            if cached:
                pass  # an answer from the backtest's cache costs nothing this time
            elif this_cost is None or source is None:
                cost_source = "unknown"
            else:
                cost += this_cost
                cost_source = source if cost_source != "unknown" else cost_source
            if completion.finish_reason == "length":
                checked = Checked(errors=["the answer was cut off at max_tokens (finish_reason length)"])
            else:
                checked = parse(completion.text)
            if checked.usable:
                break
            messages = reask(rendered, completion.text or "", checked.errors)
        call = {
            "model_requested": model,
            "model_served": served,
            "prompt_version": rendered.prompt_version,
            "prompt_sha256": rendered.sha256,
            "prompt_chars": rendered.chars,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "tokens_cached": tokens_cached,
            "cost_usd": Decimal(0) if all_cached else (None if cost_source == "unknown" else cost),
            "cost_source": "cache" if all_cached else (None if cost_source == "unknown" else cost_source),
            "latency_ms": latency,
            "attempts": attempts,
            "abstained": not checked.usable,
            "abstain_reason": None if checked.usable else "; ".join(checked.errors)[:500],
            "cached": all_cached,
        }
        if tokens_in + tokens_out:
            activity_metrics.tokens_used(tokens_in + tokens_out)
        cost_value = call["cost_usd"]
        activity_metrics.model_call(float(cost_value) if cost_value else None, not checked.usable, name)
        return Decided(checked, call, text)

    @activity.defn(name=names.ANALYZE_SIGNAL)
    async def analyze_signal(self, input: AnalyzeSignalInput) -> Analysis:
        if self._shift is not None and (shift := self._shift()):
            input = unshifted_analysis(input, shift)
        cutoff = input.candle.T if input.candle is not None else datetime_to_ms(input.context.signal_time)
        bars = await self._bars(input.context.symbol, input.context.interval, cutoff)
        mask = self._mask
        if mask is not None:
            input, bars = mask.analysis_input(input), mask.bars(bars)
        ctx, candle = input.context, input.candle
        rendered = analysis_prompt(input, bars, MIN_REWARD_TO_RISK, masked=mask is not None)
        model = self.model if input.analysis_number == 0 else self.monitoring_model
        last = float(candle.c) if candle is not None else (ctx.price or (bars[-1].c if bars else 0.0))
        atr = rendered.indicators.get("atr14")
        decided = await self._decide(
            ctx.signal_id, rendered, model, "analysis", ANALYSIS_SCHEMA, lambda t: parse_analysis(t, last, atr)
        )
        analysis = analysis_from(decided, rendered.indicators)
        if mask is not None and analysis.key_levels:
            analysis = analysis.model_copy(update={"key_levels": mask.real_levels(analysis.key_levels)})
        activity.logger.info(
            "signal %s analysis %s (model %s, prompt %s, %d chars): %s %.0f%s (%d ms, %d calls)",
            ctx.signal_id, input.analysis_number, model, rendered.prompt_version, rendered.chars,
            analysis.decision, analysis.confidence, " abstained" if decided.call["abstained"] else "",
            analysis.latency_ms, decided.call["attempts"],
        )  # fmt: skip
        return analysis

    @activity.defn(name=names.MANAGE_POSITION_ACTIVITY)
    async def manage_position(self, input: ManagePositionInput) -> ManagementAnswer:
        if self._shift is not None and (shift := self._shift()):
            input = unshifted_management(input, shift)
        bars = await self._bars(input.context.symbol, input.context.interval, input.candle.T)
        mask = self._mask
        if mask is not None:
            input, bars = mask.management_input(input), mask.bars(bars)
        ctx, k = input.context, input.candle
        held = (k.T + 1 - ctx.decided_candle_t) / 1000 if ctx.decided_candle_t is not None else None
        rendered = management_prompt(input, bars, held, masked=mask is not None)
        market, size = input.market_price, input.position_size
        decided = await self._decide(
            ctx.signal_id,
            rendered,
            self.monitoring_model,
            "management",
            MANAGEMENT_SCHEMA,
            lambda t: parse_management(t, ctx.side, market, size),
        )
        answer = management_from(decided)
        if mask is not None and answer.action_details:
            answer = answer.model_copy(update={"action_details": mask.real_details(answer.action_details)})
        activity.logger.info(
            "position of signal %s candle %s (model %s): %s%s (%d ms, %d calls)",
            ctx.signal_id, k.t, self.monitoring_model, answer.action,
            " abstained" if decided.call["abstained"] else "", answer.latency_ms, decided.call["attempts"],
        )  # fmt: skip
        return answer


def unshifted_analysis(input: AnalyzeSignalInput, shift: int) -> AnalyzeSignalInput:
    ctx = input.context.model_copy(update={"signal_time": input.context.signal_time - timedelta(milliseconds=shift)})
    candle = (
        input.candle.model_copy(update={"t": input.candle.t - shift, "T": input.candle.T - shift})
        if input.candle
        else None
    )
    previous = [
        d.model_copy(update={"candleOpenTime": d.candleOpenTime - shift}) if d.candleOpenTime is not None else d
        for d in input.previous_decisions
    ]
    return input.model_copy(update={"context": ctx, "candle": candle, "previous_decisions": previous})


def unshifted_management(input: ManagePositionInput, shift: int) -> ManagePositionInput:
    decided = input.context.decided_candle_t
    ctx = input.context.model_copy(update={"decided_candle_t": decided - shift if decided is not None else None})
    candle = input.candle.model_copy(update={"t": input.candle.t - shift, "T": input.candle.T - shift})
    return input.model_copy(update={"context": ctx, "candle": candle})


def _raw(text: str | None) -> str | None:
    return text[:RAW_ANSWER_CHARS] if text is not None else None


def _answer_fields(decided: Decided, usable: bool) -> dict[str, Any]:
    """The fields an analysis and a management answer both take from the model call: an unusable
    answer is an abstention (confidence 0, the reason as its reasoning)."""
    call, body = decided.call, decided.checked.body
    return {
        "confidence": float(body["confidence"]) if usable else 0.0,
        "reasoning": body["reasoning"].strip() if usable else f"abstained: {call['abstain_reason']}",
        "raw_ai_response": _raw(decided.text),
        "latency_ms": call["latency_ms"],
        "tokens_used": (call["tokens_in"] or 0) + (call["tokens_out"] or 0) or None,
        "model_name": call["model_served"] or call["model_requested"],
        "model_call": ModelCall(**call),
    }


def analysis_from(decided: Decided, computed: dict[str, Any]) -> Analysis:
    checked, indicators = decided.checked, computed or None
    if not (checked.usable and isinstance(checked, CheckedAnalysis)):
        return Analysis(decision="wait", technical_indicators=indicators, **_answer_fields(decided, usable=False))
    body = checked.body
    return Analysis(
        decision=checked.decision,
        key_levels=body["keyLevels"],
        trade_plan=body["tradePlan"],
        technical_indicators=indicators,
        **_answer_fields(decided, usable=True),
    )


def management_from(decided: Decided) -> ManagementAnswer:
    checked = decided.checked
    if not (checked.usable and isinstance(checked, CheckedManagement)):
        return ManagementAnswer(action="hold", **_answer_fields(decided, usable=False))
    body = checked.body
    return ManagementAnswer(
        action=checked.action,
        action_details=body["actionDetails"],
        risk_assessment=body["riskAssessment"],
        **_answer_fields(decided, usable=True),
    )
