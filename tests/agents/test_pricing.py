"""Model calls are priced from the table; replays of recorded replies cost nothing."""

from __future__ import annotations

from decimal import Decimal

from agents.pricing import cost_estimate

USAGE = {"input_tokens": 1_000_000, "output_tokens": 1_000_000, "cache_read": 0, "cache_write": 0}


def test_a_paid_call_is_priced_from_the_table():
    assert cost_estimate(model="claude-sonnet-4-5", **USAGE) == Decimal("18")
    assert cost_estimate(model="claude-sonnet-4-5", backend="anthropic", **USAGE) == Decimal("18")


def test_a_replay_costs_nothing():
    assert cost_estimate(model="claude-sonnet-4-5", backend="replay", **USAGE) == 0
