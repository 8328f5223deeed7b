"""The refund approval queue and review page, through Django's test client."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from support.admin.forms import amount_to_cents, cents_to_text
from support.models import Refund, Ticket
from tests.factories.users import user_create
from tests.support.console_steps import refund_waiting
from tests.support.refund_steps import proposed_refund, script_reply

pytestmark = pytest.mark.django_db
R = Refund.Status
QUEUE = reverse("admin:support_refund_queue")
APPROVER_PERMS = ["support.approve_refund", "support.view_ticket"]


def review(refund: Refund) -> str:
    return reverse("admin:support_refund_review", args=[refund.pk])


def login(client: Client, perms: list[str] = APPROVER_PERMS) -> User:
    user = user_create(perms=perms)
    client.force_login(user)
    return user


def text(response) -> str:
    return response.content.decode()


# --- amounts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "cents"),
    [("40", 4000), ("40.00", 4000), ("25.5", 2550), ("0.01", 1), ("$ 12.34", 1234), (" 7 ", 700)],
)
def test_amounts_are_read_as_dollars_and_cents(typed, cents):
    assert amount_to_cents(typed, currency="usd") == cents


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("12.345", "fraction of a cent"),
        ("0.001", "fraction of a cent"),
        ("25,00", "no thousands separator"),
        ("1,000.00", "no thousands separator"),
        ("0", "more than zero"),
        ("0.00", "more than zero"),
        ("-5", "not an amount"),
        ("1e3", "not an amount"),
        ("forty", "not an amount"),
        ("", "not an amount"),
        ("12345678901", "not an amount"),
    ],
)
def test_anything_else_is_refused(typed, error):
    with pytest.raises(ValidationError, match=error):
        amount_to_cents(typed, currency="usd")


def test_zero_decimal_currencies_take_whole_units():
    assert amount_to_cents("500", currency="jpy") == 500
    with pytest.raises(ValidationError, match="no cents"):
        amount_to_cents("500.5", currency="jpy")
    assert cents_to_text(4000, "usd") == "40.00" and cents_to_text(500, "jpy") == "500"


# --- the queue ----------------------------------------------------------------------------------


def test_the_queue_lists_open_refunds_oldest_first_and_links_from_the_index(client):
    first = refund_waiting(amount=1500)
    second = refund_waiting(amount=2500, status=R.AWAITING_SECOND_APPROVAL)
    second.first_approved_by = user_create()
    second.save()
    refund_waiting(status=R.REJECTED)
    refund_waiting(status=R.BLOCKED)
    login(client)
    body = text(client.get(QUEUE))
    assert "2 refunds waiting for a person" in body
    assert body.index(f'id="refund-{first.pk}"') < body.index(f'id="refund-{second.pk}"')
    assert "$15.00" in body and "$25.00" in body and "customer1@test.com" in body
    assert "awaiting second approval" in body and "first approved by user" in body
    assert review(first) in body
    index = text(client.get(reverse("admin:index")))
    assert "Refunds awaiting a decision" in index and "<strong>2</strong> pending" in index
    assert QUEUE in index


def test_the_queue_and_the_refund_list_cost_the_same_for_any_size(client):
    login(client, [*APPROVER_PERMS, "support.view_refund"])
    refund_waiting()
    refund_waiting()
    sizes = {}
    for url in (QUEUE, reverse("admin:support_refund_changelist")):
        with CaptureQueriesContext(connection) as few:
            assert client.get(url).status_code == 200
        sizes[url] = len(few)
    for _ in range(6):
        refund_waiting()
    for url, count in sizes.items():
        with CaptureQueriesContext(connection) as many:
            response = client.get(url)
        assert text(response).count("Review</a>") == 8, url
        assert len(many) == count, url


def test_staff_without_a_refund_permission_see_no_queue(client):
    login(client, ["support.view_ticket"])
    assert client.get(QUEUE).status_code == 403
    assert "Refunds awaiting a decision" not in text(client.get(reverse("admin:index")))


# --- the review page ----------------------------------------------------------------------------


def test_the_review_page_shows_the_evidence(client, fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    login(client)
    response = client.get(review(refund))
    assert response.status_code == 200
    body = text(response)
    assert "My widget broke on day 2. My email is bob@test.com. I want my $40 back." in body
    assert "&lt;scratchpad&gt;Defective on day 2; $40 is 4000 cents.&lt;/scratchpad&gt;" in body
    assert "&quot;amount&quot;: 4000" in body and "&quot;customer_email&quot;: &quot;bob" in body
    assert body.count('class="cs-check"') == len(refund.checks) >= 8
    assert "email matches the ticket" in body and "hard (blocks)" in body
    assert "soft (warning)" in body and '<span class="cs-badge cs-ok">pass</span>' in body
    charge = stripe_fake.bob_charge["id"]
    assert f'{charge} <span class="cs-badge cs-ok">this refund</span>' in body
    assert "None." in body  # no earlier refunds
    assert 'id="approve-form"' in body and "Approve $40.00" in body
    assert 'id="edit-form"' in body and 'value="40.00"' in body and "not cents" in body
    assert 'id="reject-form"' in body and "csrfmiddlewaretoken" in body


def test_approve_runs_in_the_worker_and_the_outcome_shows_on_both_pages(
    client, fake_anthropic, stripe_fake, worker
):
    refund = proposed_refund(worker, fake_anthropic)
    login(client)
    script_reply(fake_anthropic)
    with worker.committing():
        response = client.post(review(refund), {"action": "approve", "note": ""}, follow=True)
    assert "Approved a refund of $40.00 = 4000 cents" in text(response)
    assert stripe_fake.refund_posts == []  # nothing leaves in the request
    worker.drain()
    refund.refresh_from_db()
    assert refund.status == R.SUCCEEDED
    body = text(client.get(review(refund)))
    assert refund.provider_refund_id in body and "nothing to decide" in body
    ticket_page = text(client.get(reverse("admin:support_ticket_change", args=[refund.ticket_id])))
    assert refund.provider_refund_id in ticket_page and "Succeeded" in ticket_page
    # The same approval posted again changes nothing and says so.
    response = client.post(review(refund), {"action": "approve"}, follow=True)
    assert "Nothing was changed" in text(response)
    assert len(stripe_fake.refund_posts) == 1


def test_edit_the_amount_then_approve(client, fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    login(client)
    response = client.post(review(refund), {"action": "edit", "amount": "12.345"})
    assert response.status_code == 200 and "fraction of a cent" in text(response)
    assert 'value="12.345"' in text(response)  # what was typed stays, to be corrected
    response = client.post(review(refund), {"action": "edit", "amount": "40.01"}, follow=True)
    assert "Nothing was changed" in text(response) and "more than may be refunded" in text(response)
    refund.refresh_from_db()
    assert (refund.status, refund.amount) == (R.PROPOSED, 4000)
    script_reply(fake_anthropic, "Hi Bob, we refunded $25.50.")
    with worker.committing():
        response = client.post(review(refund), {"action": "edit", "amount": "25.50"}, follow=True)
    assert "$25.50 = 2550 cents (edited from $40.00)" in text(response)
    worker.drain()
    refund.refresh_from_db()
    assert (refund.status, refund.amount, refund.amount_proposed) == (R.SUCCEEDED, 2550, 4000)
    assert stripe_fake.refunds_on(refund.charge_id)[0]["amount"] == 2550


def test_reject_needs_a_reason(client, fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    login(client)
    response = client.post(review(refund), {"action": "reject", "reason": "  "})
    assert "A rejection needs a reason" in text(response)
    script_reply(fake_anthropic, "Hi Bob, a colleague will be in touch.")
    with worker.committing():
        response = client.post(
            review(refund), {"action": "reject", "reason": "Past the window"}, follow=True
        )
    assert "rejected; no money moves" in text(response)
    worker.drain()
    refund.refresh_from_db()
    assert refund.status == R.REJECTED and refund.reject_reason == "Past the window"
    assert "Past the window" in text(client.get(review(refund)))
    assert stripe_fake.refund_posts == []


def test_without_the_permission_no_buttons_and_the_post_is_refused(
    client, fake_anthropic, stripe_fake, worker
):
    refund = proposed_refund(worker, fake_anthropic)
    login(client, ["support.view_refund", "support.view_ticket"])
    body = text(client.get(review(refund)))
    assert 'id="no-permission"' in body
    for form in ("approve-form", "edit-form", "reject-form"):
        assert f'id="{form}"' not in body
    assert client.post(review(refund), {"action": "approve"}).status_code == 403
    assert client.post(review(refund), {"action": "reject", "reason": "x"}).status_code == 403
    refund.refresh_from_db()
    assert refund.status == R.PROPOSED


def test_csrf_is_enforced(fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    client = Client(enforce_csrf_checks=True)
    login(client)
    assert client.post(review(refund), {"action": "approve"}).status_code == 403
    refund.refresh_from_db()
    assert refund.status == R.PROPOSED


def test_a_second_approval_by_the_same_person_is_shown_as_not_allowed(
    client, fake_anthropic, stripe_fake, worker, settings
):
    settings.SUPPORT_TWO_PERSON_THRESHOLD_CENTS = 3000
    refund = proposed_refund(worker, fake_anthropic)
    first = login(client)
    body = text(client.get(review(refund)))
    assert "your approval is the first of two" in body
    response = client.post(review(refund), {"action": "approve"}, follow=True)
    assert "a second, different person must approve" in text(response)
    body = text(client.get(review(refund)))
    assert 'id="second-not-allowed"' in body and 'id="approve-form"' not in body
    assert 'id="edit-form"' not in body and 'id="reject-form"' in body
    response = client.post(review(refund), {"action": "approve"}, follow=True)
    assert "must come from a different person" in text(response)
    refund.refresh_from_db()
    assert refund.status == R.AWAITING_SECOND_APPROVAL and refund.first_approved_by == first

    login(client)
    body = text(client.get(review(refund)))
    assert 'id="approve-form"' in body and 'id="second-not-allowed"' not in body
    script_reply(fake_anthropic)
    with worker.committing():
        client.post(review(refund), {"action": "approve"})
    worker.drain()
    refund.refresh_from_db()
    assert refund.status == R.SUCCEEDED and len(stripe_fake.refund_posts) == 1


def test_a_blocked_refund_shows_why_and_cannot_be_approved(
    client, fake_anthropic, stripe_fake, worker
):
    refund = proposed_refund(
        worker, fake_anthropic, email="b0b@test.com", then="I will ask a person to look."
    )
    assert refund.status == R.BLOCKED
    login(client)
    body = text(client.get(review(refund)))
    assert "blocked and cannot be approved" in body and "email matches the ticket" in body
    assert '<span class="cs-badge cs-error">fail</span>' in body
    assert 'id="approve-form"' not in body and 'id="edit-form"' not in body
    response = client.post(review(refund), {"action": "approve"}, follow=True)
    assert "Nothing was changed" in text(response)
    refund.refresh_from_db()
    assert refund.status == R.BLOCKED


def test_a_payments_failure_is_shown_not_raised(client, fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    login(client)
    stripe_fake.fail_next("500", times=2, path="/v1/customers")  # the SDK tries twice
    response = client.get(review(refund))
    assert response.status_code == 200
    body = text(response)
    assert 'id="payments-error"' in body and "something went wrong on Stripe" in body
    assert body.count('class="cs-check"') == len(refund.checks)  # the snapshot still shows
    assert 'id="approve-form"' in body


def test_a_missing_refund_and_the_changelist_redirect(client):
    login(client, [*APPROVER_PERMS, "support.view_refund"])
    response = client.get(reverse("admin:support_refund_review", args=[999]), follow=True)
    assert "There is no refund #999" in text(response)
    refund = refund_waiting()
    response = client.get(reverse("admin:support_refund_change", args=[refund.pk]))
    assert response.status_code == 302 and response["Location"] == review(refund)
    body = text(client.get(reverse("admin:support_refund_changelist")))
    assert "Approval queue (1 pending)" in body and "Add refund" not in body


def test_the_ticket_page_lists_its_refunds_and_runs(client, fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    login(client)
    ticket = Ticket.objects.get()
    body = text(client.get(reverse("admin:support_ticket_change", args=[ticket.pk])))
    assert f"Refund #{refund.pk}</a>: $40.00" in body and "Proposed" in body
    assert f"Run #{refund.tool_call.run_id}</a>" in body


def test_the_generic_review_page_sends_refunds_to_their_own_page(
    client, fake_anthropic, stripe_fake, worker
):
    from agents.models import ToolCall
    from tests.support.refund_steps import proposed_refund

    refund = proposed_refund(worker, fake_anthropic)
    client.force_login(user_create(perms=["support.approve_refund", "agents.view_toolcall"]))
    call = ToolCall.objects.get(pk=refund.tool_call_id)
    response = client.get(f"/admin/agents/toolcall/{call.pk}/review/")
    assert response.status_code == 302
    assert response["Location"] == f"/admin/support/refund/{refund.pk}/review/"
