"""Prices per million tokens, to turn token usage into cost.

The table holds list prices in USD for some common models; a model not in it has no cost (the
run reports tokens only). Override or extend it per process with ``set_price``, or per run with
``pipeline.run(prices={"my-model": (input_per_million, output_per_million)})``.
"""

from __future__ import annotations

from collections.abc import Mapping

from synthflow.models.llms.base import Usage

Price = tuple[float, float]
"""(USD per million input tokens, USD per million output tokens)."""

PRICES: dict[str, Price] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-3-opus": (15.00, 75.00),
    "claude-3-haiku": (0.25, 1.25),
    "gemini-1.5-flash": (0.075, 0.30),
    "gemini-1.5-pro": (1.25, 5.00),
    "mistral-large": (2.00, 6.00),
    "mistral-small": (0.20, 0.60),
    "text-embedding-3-small": (0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.0),
    "text-embedding-ada-002": (0.10, 0.0),
}


BATCH_PRICE_FACTORS: dict[str, float] = {"openai": 0.5, "groq": 0.5, "anthropic": 0.5}
"""What a provider's offline batch calls cost, as a share of its list price (by the LLM's
``provider``): OpenAI, Groq and Anthropic bill batches at half the price."""


def batch_price(price: Price | None, provider: str) -> Price | None:
    """``price`` as the provider bills it for offline batch calls."""
    if price is None:
        return None
    factor = BATCH_PRICE_FACTORS.get(provider, 1.0)
    return (price[0] * factor, price[1] * factor)


def set_price(model: str, input_per_million: float, output_per_million: float) -> None:
    PRICES[model] = (input_per_million, output_per_million)


def price_of(model: str, overrides: Mapping[str, Price] | None = None) -> Price | None:
    """The price of ``model``: an exact entry, else the longest entry it starts with; for a
    routed name (LiteLLM's ``openai/gpt-4o-mini``), the same for the part after the last "/"."""
    names = [model, model.rsplit("/", 1)[1]] if "/" in model else [model]
    for table in (overrides or {}, PRICES):
        for name in names:
            if name in table:
                return table[name]
            matches = [entry for entry in table if name.startswith(entry)]
            if matches:
                return table[max(matches, key=len)]
    return None


def cost_at(price: Price | None, usage: Usage) -> float | None:
    """USD for ``usage`` at ``price``; None when the price is unknown."""
    if price is None:
        return None
    return (usage.input_tokens * price[0] + usage.output_tokens * price[1]) / 1_000_000
