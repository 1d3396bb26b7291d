"""An estimate of what a model call costs, for the cost metric and the shadow report. Pure.

llm-proxy reports one token total per call (`tokensUsed`), not input and output apart, so the
price is blended at the split a monitor's call has (about 8,000 tokens in, 400 out: 95 % input).
List prices per million tokens (input, output), to be checked before quoting; an unknown model is
priced as gemini-2.5-flash, the platform's production model, so a budget alert errs high rather
than silent."""

from __future__ import annotations

from decimal import Decimal

INPUT_SHARE = Decimal("0.95")
# model -> (USD per 1M input tokens, USD per 1M output tokens)
PRICES: dict[str, tuple[Decimal, Decimal]] = {
    "google/gemini-2.5-flash": (Decimal("0.30"), Decimal("2.50")),
    "google/gemini-2.5-flash-lite": (Decimal("0.10"), Decimal("0.40")),
    "openai/gpt-5-nano": (Decimal("0.05"), Decimal("0.40")),
}
DEFAULT_MODEL = "google/gemini-2.5-flash"


def usd_per_million(model: str | None) -> Decimal:
    key = (model or "").strip().lower()
    prices = PRICES.get(key) or PRICES.get(f"google/{key}") or PRICES[DEFAULT_MODEL]
    return prices[0] * INPUT_SHARE + prices[1] * (1 - INPUT_SHARE)


def estimated_cost_usd(model: str | None, tokens: int) -> Decimal:
    if tokens <= 0:
        return Decimal(0)
    return usd_per_million(model) * tokens / 1_000_000
