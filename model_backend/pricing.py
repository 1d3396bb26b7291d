"""What a call cost: the provider's own figure when it gives one (OpenRouter's `usage.cost`), else
this table of list prices (USD per 1M tokens, input / output; cached input is charged as input,
an upper bound). Unknown models cost None (unknown), never 0. Verify prices before quoting them:
providers change them (docs/model-backend.md)."""

from __future__ import annotations

from decimal import Decimal

PRICES_PER_MILLION: dict[str, tuple[Decimal, Decimal]] = {
    "gemini-2.5-flash": (Decimal("0.30"), Decimal("2.50")),
    "gemini-2.5-flash-lite": (Decimal("0.10"), Decimal("0.40")),
    "gpt-5-nano": (Decimal("0.05"), Decimal("0.40")),
    # The rule stand-in (fakes/model): free, so a demo's cost is visibly zero rather than unknown.
    "rule-standin": (Decimal(0), Decimal(0)),
}


def table_cost(model: str | None, tokens_in: int | None, tokens_out: int | None) -> Decimal | None:
    """USD from the table, by the model id without its provider prefix (`google/gemini-2.5-flash`)."""
    if not model or tokens_in is None or tokens_out is None:
        return None
    name = model.rsplit("/", 1)[-1].lower()
    prices = PRICES_PER_MILLION.get(name)
    if prices is None:
        return None
    cost = (prices[0] * tokens_in + prices[1] * tokens_out) / Decimal(1_000_000)
    return cost.quantize(Decimal("1e-8"))


def call_cost(
    provider_cost: object, model: str | None, tokens_in: int | None, tokens_out: int | None
) -> tuple[Decimal | None, str | None]:
    """(USD, where it came from: `provider` | `price_table`), or (None, None) when unknown."""
    if isinstance(provider_cost, (int, float, str)) and not isinstance(provider_cost, bool):
        try:
            value = Decimal(str(provider_cost))
        except ArithmeticError:
            value = None
        if value is not None and value.is_finite() and value >= 0:
            return value.quantize(Decimal("1e-8")), "provider"
    cost = table_cost(model, tokens_in, tokens_out)
    return (cost, "price_table") if cost is not None else (None, None)
