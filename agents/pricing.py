"""Estimated cost of a model call, from a price table (USD per million tokens).

The table is an estimate for the run's cost cap and the console; the invoice is the truth.
`AGENTS_MODEL_PRICES` (JSON: {"model-prefix": [input, output]}) overrides or extends it.
Unknown models are priced high on purpose, so that the cost cap errs on the safe side.
The replay backend is a recorded stand-in, not a paid call: its replies cost nothing.
A call answered through the Message Batches API costs half, every kind of token alike.
"""

from decimal import Decimal

from django.conf import settings

# Longest matching prefix wins.
PRICES: dict[str, tuple[str, str]] = {
    "claude-haiku": ("1", "5"),
    "claude-sonnet": ("3", "15"),
    "claude-opus-4-5": ("5", "25"),
    "claude-opus-4-6": ("5", "25"),
    "claude-opus-4-7": ("5", "25"),
    "claude-opus-4-8": ("5", "25"),
    "claude-opus-5": ("5", "25"),
    "claude-opus": ("15", "75"),
}
UNKNOWN = ("15", "75")
CACHE_WRITE_FACTOR = Decimal("1.25")
CACHE_READ_FACTOR = Decimal("0.1")
BATCH_FACTOR = Decimal("0.5")
MILLION = Decimal(1_000_000)
# Backends whose replies nobody pays for.
FREE_BACKENDS = frozenset({"replay"})


def _price(model: str) -> tuple[Decimal, Decimal]:
    table = {**PRICES, **{k: tuple(map(str, v)) for k, v in settings.AGENTS_MODEL_PRICES.items()}}
    prefixes = sorted((p for p in table if model.startswith(p)), key=len, reverse=True)
    input_price, output_price = table[prefixes[0]] if prefixes else UNKNOWN
    return Decimal(input_price), Decimal(output_price)


def cost_estimate(
    *,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_read: int,
    cache_write: int,
    backend: str = "anthropic",
    batch: bool = False,
) -> Decimal:
    """The estimated USD cost of one model call; nothing for a backend nobody pays for."""
    if backend in FREE_BACKENDS:
        return Decimal("0.000000")
    input_price, output_price = _price(model)
    total = (
        input_tokens * input_price
        + cache_write * input_price * CACHE_WRITE_FACTOR
        + cache_read * input_price * CACHE_READ_FACTOR
        + output_tokens * output_price
    ) / MILLION
    if batch:
        total *= BATCH_FACTOR
    return total.quantize(Decimal("0.000001"))
