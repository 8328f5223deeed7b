"""A refund's amount is whole, bounded cents or it is refused: the seed's "$40" never becomes
a 40-cent refund, and an amount no column can hold never leaves a call stuck."""

from __future__ import annotations

import pytest

from agents.models import ToolCall
from support.models import Refund
from support.tools import AMOUNT_MAX
from tests.support.refund_steps import bob_writes, proposed_refund, script_until_refund

pytestmark = pytest.mark.django_db
TC = ToolCall.Status


REFUND_AMOUNTS = [
    ("4000", "the seed's $40 as a string"),
    ("40.00", "dollars as a string"),
    (40.0, "a float"),
    (True, "a bool"),
    (0, "zero"),
    (-4000, "negative"),
    (10**12, "overflows the column"),
    (AMOUNT_MAX + 1, "above what Stripe takes"),
]


@pytest.mark.parametrize(("amount", "why"), REFUND_AMOUNTS, ids=[w for _, w in REFUND_AMOUNTS])
def test_a_refund_amount_that_is_not_whole_bounded_cents_never_becomes_a_refund(
    fake_anthropic, stripe_fake, worker, amount, why
):
    tool_use_id = script_until_refund(fake_anthropic, amount=amount)
    fake_anthropic.push_text("I will ask for the amount again.")
    bob_writes(worker)
    worker.drain()
    call = ToolCall.objects.get(tool_use_id=tool_use_id)
    assert call.status == TC.INVALID, why
    assert not Refund.objects.exists() and stripe_fake.refund_posts == []
    assert call.run.status == "completed"


def test_the_largest_allowed_amount_is_judged_by_the_policy_not_lost(
    fake_anthropic, stripe_fake, worker
):
    refund = proposed_refund(worker, fake_anthropic, amount=AMOUNT_MAX, then="Too much.")
    assert refund.status == refund.Status.BLOCKED
    failed = {c["name"] for c in refund.checks if not c["passed"]}
    assert "refundable charge" in failed  # no charge can cover it: blocked, Claude told
