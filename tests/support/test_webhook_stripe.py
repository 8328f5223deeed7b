"""POST /hooks/stripe/: signed events reconcile refunds; anything else is refused."""

from __future__ import annotations

import pytest

from agents.models import Proposal
from agents.selectors import proposal_inbox
from support.models import Refund
from support.services.refunds import refund_approve
from tests.factories.users import user_create
from tests.support.refund_steps import proposed_refund, script_reply

pytestmark = pytest.mark.django_db
URL = "/hooks/stripe/"
P = Proposal.State


@pytest.fixture
def pending_refund(fake_anthropic, stripe_fake, worker):
    stripe_fake.refund_status = "pending"
    refund = proposed_refund(worker, fake_anthropic)
    script_reply(fake_anthropic)
    with worker.committing():
        refund_approve(refund_id=refund.pk, user=user_create(perms=["support.approve_refund"]))
    worker.drain()
    refund.refresh_from_db()
    # Its call is done; the money is pending at the bank, and the webhook says how it ends.
    assert (refund.state, refund.status) == (P.DONE, Refund.Status.PENDING)
    return refund


def post(client, stripe_fake, body: bytes, *, secret: str = "whsec_test", signature=None):
    header = signature if signature is not None else stripe_fake.webhook_sign(body, secret)
    return client.post(URL, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def test_refund_updated_moves_a_pending_refund_to_succeeded(client, stripe_fake, pending_refund):
    data = stripe_fake.refund_update(pending_refund.provider_refund_id, status="succeeded")
    response = post(client, stripe_fake, stripe_fake.event("refund.updated", data))
    assert response.status_code == 200, response.content
    pending_refund.refresh_from_db()
    assert pending_refund.status == Refund.Status.SUCCEEDED
    # Delivered again: nothing changes.
    assert post(client, stripe_fake, stripe_fake.event("refund.updated", data)).status_code == 200


def test_refund_failed_records_the_failure(client, stripe_fake, pending_refund):
    data = stripe_fake.refund_update(
        pending_refund.provider_refund_id,
        status="failed",
        failure_reason="expired_or_canceled_card",
    )
    assert post(client, stripe_fake, stripe_fake.event("refund.failed", data)).status_code == 200
    pending_refund.refresh_from_db()
    assert pending_refund.status == Refund.Status.FAILED
    assert pending_refund.failure_message == "expired_or_canceled_card"


def test_charge_refunded_reconciles_its_refunds(client, stripe_fake, pending_refund):
    stripe_fake.refund_update(pending_refund.provider_refund_id, status="succeeded")
    charge = dict(stripe_fake.charges[pending_refund.charge_id])
    charge["refunds"] = {"object": "list", "data": stripe_fake.refunds_on(charge["id"])}
    assert (
        post(client, stripe_fake, stripe_fake.event("charge.refunded", charge)).status_code == 200
    )
    pending_refund.refresh_from_db()
    assert pending_refund.status == Refund.Status.SUCCEEDED


@pytest.mark.parametrize("signature", ["", "t=1,v1=deadbeef", None])
def test_a_forged_or_unsigned_event_is_refused(client, stripe_fake, pending_refund, signature):
    data = stripe_fake.refund_update(pending_refund.provider_refund_id, status="succeeded")
    body = stripe_fake.event("refund.updated", data)
    if signature is None:  # signed with the wrong secret
        response = post(client, stripe_fake, body, secret="whsec_attacker")
    else:
        response = post(client, stripe_fake, body, signature=signature)
    assert response.status_code == 400
    pending_refund.refresh_from_db()
    assert pending_refund.status == Refund.Status.PENDING


def test_an_event_about_a_refund_still_waiting_for_a_person_changes_nothing(
    client, fake_anthropic, stripe_fake, worker
):
    refund = proposed_refund(worker, fake_anthropic)
    data = stripe_fake.refund_add(
        refund.charge_id, 4000, metadata={"countersign_refund": str(refund.pk)}
    )
    assert post(client, stripe_fake, stripe_fake.event("refund.updated", data)).status_code == 200
    refund.refresh_from_db()
    assert (refund.state, refund.status) == (P.WAITING, Refund.Status.PROPOSED)
    assert refund.provider_refund_id == "" and refund.provider_status == ""
    assert [p.pk for p in proposal_inbox()] == [refund.tool_call_id]


def test_get_is_refused(client):
    assert client.get(URL).status_code == 405
