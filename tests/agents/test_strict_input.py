"""Tool input is validated strictly and every number is bounded: a bad value is an is_error
result Claude sees, never a coercion and never a stuck call. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from agents.models import Proposal, ToolCall
from agents.registry import Tool, numbers_unbounded, toolset_list
from support.tools import ProcessRefund
from tests.agents.helpers import SHIP, start, tool_results

pytestmark = pytest.mark.django_db

TC = ToolCall.Status
BAD_QUANTITIES = [
    ("2", "a string is not a number"),
    (2.0, "a float is not an integer"),
    (2.5, "a fraction"),
    (True, "a bool is not 1"),
    (False, "a bool is not 0"),
    (None, "null"),
    (0, "below the lower bound"),
    (-3, "negative"),
    (101, "above the upper bound"),
    (10**12, "huge"),
    (2**63, "beyond a 64-bit column"),
    ([2], "a list"),
    ({"n": 2}, "an object"),
]


@pytest.mark.parametrize(("quantity", "why"), BAD_QUANTITIES, ids=[w for _, w in BAD_QUANTITIES])
def test_a_bad_number_is_answered_with_an_error_and_nothing_waits(
    fake_anthropic, worker, widgets, quantity, why
):
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", {**SHIP, "quantity": quantity}))
    fake_anthropic.push_text("I will correct the quantity.")
    start(worker)
    worker.drain()
    call = ToolCall.objects.get(tool_use_id=ship_id)
    assert call.status == TC.INVALID and call.is_error, why
    assert not Proposal.objects.filter(pk=call.pk).exists()  # never a proposal to decide
    [result] = tool_results(fake_anthropic.message_requests[-1])
    assert result["is_error"] and "quantity" in result["content"]


def test_a_string_for_a_string_field_and_unknown_fields_are_refused(
    fake_anthropic, worker, widgets
):
    [a, b] = fake_anthropic.push_tool_use(
        ("ship_widget", {**SHIP, "address": 12345}),
        ("ship_widget", {**SHIP, "priority": "high"}),
    )
    fake_anthropic.push_text("Fixed.")
    start(worker)
    worker.drain()
    for tool_use_id, field in ((a, "address"), (b, "priority")):
        call = ToolCall.objects.get(tool_use_id=tool_use_id)
        assert call.status == TC.INVALID and field in call.result


def test_every_registered_tool_bounds_every_number():
    for toolset in toolset_list():
        for tool in toolset.tools.values():
            assert numbers_unbounded(tool.input_model) == [], (toolset.name, tool.name)


def test_a_tool_with_an_unbounded_number_cannot_be_declared():
    class Unbounded(BaseModel):
        count: int = Field(ge=0)
        ratio: float | None = Field(default=None, le=1)

    with pytest.raises(ValueError, match="count, ratio"):
        Tool("t", "An unbounded tool.", Unbounded, lambda c, v: None)


def test_the_seeds_process_refund_schema_keeps_its_shape():
    schema = ProcessRefund.model_json_schema()
    assert schema["properties"]["amount"]["type"] == "integer"
    assert set(schema["required"]) == {"customer_email", "amount", "reason"}
