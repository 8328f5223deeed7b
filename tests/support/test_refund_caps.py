"""The daily cap holds across charges and tickets, and two approvals cannot pass it together.

Invariant: the refunds people approved for one customer in 24 hours never add up to more than
SUPPORT_REFUND_DAILY_MAX_CENTS, whatever order the approvals come in, however many charges
they are on, and whether or not Stripe has seen the earlier ones yet.
"""

from __future__ import annotations

import itertools
import threading

import pytest
from django.db import connection

from agents.services import ProposalBlocked
from support.models import Refund
from support.services import ticket_ingest_email
from support.services.refunds import refund_approve
from tests.factories.users import user_create
from tests.support import mails
from tests.support.refund_steps import script_reply, script_until_refund

_ids = itertools.count(1)


def approver():
    return user_create(perms=["support.approve_refund"])


def bob_asks(worker, fake_anthropic, amount: int = 4000) -> Refund:
    """A new ticket from Bob, on which Claude proposes a refund."""
    tool_use_id = script_until_refund(fake_anthropic, amount=amount)
    n = next(_ids)
    raw = mails.plain(message_id=f"<bob-cap-{n}@test.com>", subject=f"Widget {n} broke")
    with worker.committing():
        ticket_ingest_email(raw=raw, source="webhook")
    worker.drain()
    return Refund.objects.get(tool_call__tool_use_id=tool_use_id)


@pytest.fixture
def two_charges(stripe_fake, settings):
    settings.SUPPORT_REFUND_DAILY_MAX_CENTS = 6000
    bob = stripe_fake.bob_charge["customer"]
    stripe_fake.charge_add(bob, 4000, description="Second widget")
    return stripe_fake


@pytest.mark.django_db
def test_two_refunds_on_different_charges_cannot_together_pass_the_daily_cap(
    fake_anthropic, two_charges, worker
):
    first = bob_asks(worker, fake_anthropic)
    second = bob_asks(worker, fake_anthropic)
    # Each is within the cap when proposed, on its own charge.
    assert first.charge_id != second.charge_id
    assert first.status == second.status == Refund.Status.PROPOSED
    script_reply(fake_anthropic)
    with worker.committing():
        refund_approve(refund_id=first.pk, user=approver())
    worker.drain()
    first.refresh_from_db()
    assert first.status == Refund.Status.SUCCEEDED
    fake_anthropic.push_text("I will tell Bob a colleague looks at the second refund.")
    with worker.committing(), pytest.raises(ProposalBlocked, match="per-customer daily cap"):
        refund_approve(refund_id=second.pk, user=approver())
    worker.drain()
    second.refresh_from_db()
    assert second.status == Refund.Status.BLOCKED
    assert len(two_charges.refund_posts) == 1


@pytest.mark.django_db
def test_an_approved_refund_counts_before_stripe_has_seen_it(fake_anthropic, two_charges, worker):
    first = bob_asks(worker, fake_anthropic)
    second = bob_asks(worker, fake_anthropic)
    refund_approve(refund_id=first.pk, user=approver())  # queued; no worker has sent it yet
    first.refresh_from_db()
    assert first.status == Refund.Status.APPROVED and two_charges.refund_posts == []
    with pytest.raises(ProposalBlocked, match="4000 approved in the last 24 hours"):
        refund_approve(refund_id=second.pk, user=approver())


@pytest.mark.django_db
def test_a_first_of_two_approvals_already_counts(fake_anthropic, two_charges, worker, settings):
    settings.SUPPORT_TWO_PERSON_THRESHOLD_CENTS = 3000
    first = bob_asks(worker, fake_anthropic)
    second = bob_asks(worker, fake_anthropic)
    refund_approve(refund_id=first.pk, user=approver())
    first.refresh_from_db()
    assert first.status == Refund.Status.AWAITING_SECOND_APPROVAL
    with pytest.raises(ProposalBlocked, match="daily cap"):
        refund_approve(refund_id=second.pk, user=approver())


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SQLite's write lock serialises every transaction; the race needs PostgreSQL",
)
def test_two_approvals_at_the_same_moment_cannot_both_pass_the_cap(
    fake_anthropic, two_charges, worker
):
    first = bob_asks(worker, fake_anthropic)
    second = bob_asks(worker, fake_anthropic)
    people = [approver(), approver()]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def approve(refund: Refund, person) -> None:
        barrier.wait()
        try:
            refund_approve(refund_id=refund.pk, user=person)
            outcomes.append("approved")
        except ProposalBlocked:
            outcomes.append("blocked")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=approve, args=(refund, person))
        for refund, person in zip((first, second), people, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["approved", "blocked"]
    statuses = sorted(r.status for r in Refund.objects.all())
    assert statuses == [Refund.Status.APPROVED, Refund.Status.BLOCKED]
