"""Refunds in the console: the inbox and the engine's one review page, through the test client."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from agents.models import ToolCall
from agents.selectors import proposal_inbox
from support.admin.forms import amount_to_cents, cents_to_text
from support.models import Refund, Ticket
from tests.factories.users import user_create
from tests.support.console_steps import refund_waiting
from tests.support.refund_steps import proposed_refund, script_reply

pytestmark = pytest.mark.django_db
R = Refund.Status
INBOX = reverse("admin:agents_toolcall_approvals")
REFUNDS_IN_INBOX = f"{INBOX}?kind=process_refund"
QUEUE = reverse("admin:support_refund_queue")
CHANGELIST = reverse("admin:support_refund_changelist")
APPROVER_PERMS = ["support.approve_refund", "support.view_ticket"]
# Who may read the log but not decide: the review page shows, without its buttons.
VIEWER_PERMS = ["agents.view_toolcall", "support.view_refund", "support.view_ticket"]


def review(refund: Refund) -> str:
    """The one page where a refund is decided: its tool call's review page."""
    return reverse("admin:agents_toolcall_review", args=[refund.tool_call_id])


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
        ("", "Enter the amount to refund"),
        ("  ", "Enter the amount to refund"),
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


# --- the inbox ----------------------------------------------------------------------------------


def test_the_inbox_lists_waiting_refunds_oldest_first_and_the_index_counts_them(client):
    first = refund_waiting(amount=1500)
    second = refund_waiting(amount=25000, approved_by=user_create())
    refund_waiting(call_status=ToolCall.Status.REJECTED)
    refund_waiting(call_status=ToolCall.Status.BLOCKED)
    login(client)
    # The old refund queue is the inbox, filtered to refunds.
    response = client.get(QUEUE)
    assert response.status_code == 302 and response["Location"] == REFUNDS_IN_INBOX
    body = text(client.get(REFUNDS_IN_INBOX))
    assert "2 waiting for a person" in body
    assert body.index(f'id="proposal-{first.tool_call_id}"') < body.index(
        f'id="proposal-{second.tool_call_id}"'
    )
    assert f"$15.00 to {first.ticket.customer_email}" in body and "$250.00" in body
    assert "approval 2 of 2" in body and "approved by user" in body
    assert review(first) in body and review(second) in body
    assert [p.pk for p in proposal_inbox()] == [first.tool_call_id, second.tool_call_id]
    index = text(client.get(reverse("admin:index")))
    assert "Inbox: waiting for a person" in index and "<strong>2</strong> pending" in index
    assert INBOX in index and "Refunds awaiting a decision" not in index


def test_the_inbox_and_the_refund_list_cost_the_same_for_5_and_50_refunds(client):
    login(client, [*APPROVER_PERMS, "support.view_refund"])
    for n in range(5):
        refund_waiting(approved_by=user_create() if n % 2 else None)
    urls = (REFUNDS_IN_INBOX, CHANGELIST)
    sizes = {}
    for url in urls:
        with CaptureQueriesContext(connection) as few:
            response = client.get(url)
        assert response.status_code == 200 and text(response).count("Review</a>") == 5, url
        sizes[url] = len(few)
    for n in range(45):
        refund_waiting(approved_by=user_create() if n % 2 else None)
    for url in urls:
        with CaptureQueriesContext(connection) as many:
            response = client.get(url)
        assert text(response).count("Review</a>") == 50, url
        assert len(many) == sizes[url], url


def test_staff_without_a_refund_permission_see_no_inbox(client):
    login(client, ["support.view_ticket"])
    assert client.get(INBOX).status_code == 403
    assert client.get(QUEUE, follow=True).status_code == 403
    assert "Inbox: waiting for a person" not in text(client.get(reverse("admin:index")))


# --- the review page ----------------------------------------------------------------------------


def test_the_review_page_shows_the_evidence(client, fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    login(client)
    response = client.get(review(refund))
    assert response.status_code == 200
    body = text(response)
    assert f"Refund #{refund.pk}: $40.00 to bob@test.com" in body
    assert "My widget broke on day 2. My email is bob@test.com. I want my $40 back." in body
    assert "&lt;scratchpad&gt;Defective on day 2; $40 is 4000 cents.&lt;/scratchpad&gt;" in body
    assert "&quot;amount&quot;: 4000" in body and "&quot;customer_email&quot;: &quot;bob" in body
    assert body.count('class="cs-check"') == len(refund.checks) >= 8
    assert "email matches the ticket" in body and "(blocks if it fails)" in body
    assert '<span class="cs-badge cs-ok">passed</span>' in body
    assert "when it was proposed" in body  # when the checks last ran
    charge = stripe_fake.bob_charge["id"]
    assert f'{charge} <span class="cs-badge cs-ok">this refund</span>' in body
    assert "None." in body  # no earlier refunds
    assert 'id="approve-form"' in body and "Approve $40.00" in body
    assert 'id="edit-form"' in body and 'value="40.00"' in body and "not cents" in body
    assert 'id="reject-form"' in body and "csrfmiddlewaretoken" in body


def test_approve_runs_in_the_worker_and_the_outcome_shows(
    client, fake_anthropic, stripe_fake, worker
):
    refund = proposed_refund(worker, fake_anthropic)
    login(client)
    script_reply(fake_anthropic)
    with worker.committing():
        response = client.post(review(refund), {"action": "approve", "note": ""})
    assert response.status_code == 302 and response["Location"] == INBOX
    assert stripe_fake.refund_posts == []  # nothing leaves in the request
    body = text(client.get(INBOX))
    assert "Approved process_refund as proposed" in body and "a worker runs it now" in body
    assert f'id="proposal-{refund.tool_call_id}"' not in body
    worker.drain()
    refund.refresh_from_db()
    assert refund.status == R.SUCCEEDED
    body = text(client.get(review(refund)))
    assert refund.provider_refund_id in body and "nothing to decide" in body
    assert 'id="outcome"' in body and 'id="approve-form"' not in body
    ticket_page = text(client.get(reverse("admin:support_ticket_change", args=[refund.ticket_id])))
    assert refund.provider_refund_id in ticket_page and "Succeeded" in ticket_page
    # The same approval posted again changes nothing and says so.
    response = client.post(review(refund), {"action": "approve"}, follow=True)
    assert "Nothing was changed" in text(response) and "not awaiting approval" in text(response)
    assert len(stripe_fake.refund_posts) == 1


def test_edit_the_amount_then_approve(client, fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    login(client)
    response = client.post(review(refund), {"action": "edit", "amount": "12.345"})
    assert response.status_code == 200 and "fraction of a cent" in text(response)
    assert 'value="12.345"' in text(response)  # what was typed stays, to be corrected
    response = client.post(review(refund), {"action": "edit", "amount": "40.01"})
    assert response.status_code == 200 and "Nothing was changed" in text(response)
    assert "not more than is refundable: 4001 of 4000 cents" in text(response)
    refund.refresh_from_db()
    assert (refund.status, refund.amount) == (R.PROPOSED, 4000)
    script_reply(fake_anthropic, "Hi Bob, we refunded $25.50.")
    with worker.committing():
        response = client.post(
            review(refund), {"action": "edit", "amount": "25.50", "note": "half"}, follow=True
        )
    assert "Approved process_refund with your edit" in text(response)
    worker.drain()
    refund.refresh_from_db()
    assert (refund.status, refund.amount, refund.amount_proposed) == (R.SUCCEEDED, 2550, 4000)
    assert stripe_fake.refunds_on(refund.charge_id)[0]["amount"] == 2550
    assert refund.proposal.approvals.get().note == "half"
    body = text(client.get(review(refund)))
    assert "$25.50" in body and "Claude proposed $40.00" in body and 'id="executed-input"' in body


def test_reject_needs_a_reason(client, fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    login(client)
    response = client.post(review(refund), {"action": "reject", "reason": "  "})
    assert response.status_code == 200 and "A rejection needs a reason" in text(response)
    assert ToolCall.objects.get(pk=refund.tool_call_id).status == ToolCall.Status.AWAITING_APPROVAL
    script_reply(fake_anthropic, "Hi Bob, a colleague will be in touch.")
    with worker.committing():
        response = client.post(
            review(refund), {"action": "reject", "reason": "Past the window"}, follow=True
        )
    assert "Rejected process_refund; nothing ran and Claude is told why" in text(response)
    worker.drain()
    refund.refresh_from_db()
    assert refund.status == R.REJECTED
    assert refund.tool_call.decision_reason == "Past the window"
    body = text(client.get(review(refund)))
    assert 'id="decision"' in body and "Past the window" in body and "nothing to decide" in body
    assert stripe_fake.refund_posts == []


def test_without_the_permission_no_buttons_and_the_post_is_refused(
    client, fake_anthropic, stripe_fake, worker
):
    refund = proposed_refund(worker, fake_anthropic)
    login(client, VIEWER_PERMS)
    body = text(client.get(review(refund)))
    assert 'id="no-permission"' in body and "support.approve_refund" in body
    for form in ("approve-form", "edit-form", "reject-form"):
        assert f'id="{form}"' not in body
    for data in (
        {"action": "approve"},
        {"action": "edit", "amount": "10.00"},
        {"action": "reject", "reason": "x"},
    ):
        assert client.post(review(refund), data).status_code == 403
    login(client, ["support.view_ticket"])  # neither decides nor reads the log
    assert client.get(review(refund)).status_code == 403
    refund.refresh_from_db()
    assert refund.status == R.PROPOSED and refund.tool_call.decision is None


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
    assert "Your approval is the first of 2" in body and "Two people" in body
    response = client.post(review(refund), {"action": "approve"}, follow=True)
    assert "Your approval is recorded (1 of 2)" in text(response)
    assert "A different person must approve too" in text(response)
    assert worker.drain() == [] and stripe_fake.refund_posts == []
    body = text(client.get(review(refund)))
    assert 'id="second-not-yours"' in body and 'id="approve-form"' not in body
    assert 'id="edit-form"' not in body and 'id="reject-form"' in body
    assert f"{first.get_username()} at" in body  # the first approval, by name
    response = client.post(review(refund), {"action": "approve"})
    assert response.status_code == 200
    assert "Nothing was changed" in text(response)
    assert "must come from a different person" in text(response)
    refund.refresh_from_db()
    assert refund.status == R.AWAITING_SECOND_APPROVAL
    assert [a.user for a in refund.proposal.approvals.all()] == [first]
    assert "you may not decide (yours was the last approval" in text(client.get(INBOX))

    second = login(client)
    body = text(client.get(review(refund)))
    assert 'id="approve-form"' in body and 'id="second-not-yours"' not in body
    assert "yours would be approval 2 of 2" in body
    script_reply(fake_anthropic)
    with worker.committing():
        client.post(review(refund), {"action": "approve"})
    worker.drain()
    refund.refresh_from_db()
    assert refund.status == R.SUCCEEDED and len(stripe_fake.refund_posts) == 1
    assert [a.user for a in refund.proposal.approvals.all()] == [first, second]
    assert refund.tool_call.decided_by == second


def test_a_blocked_refund_shows_why_and_cannot_be_approved(
    client, fake_anthropic, stripe_fake, worker
):
    refund = proposed_refund(
        worker, fake_anthropic, email="b0b@test.com", then="I will ask a person to look."
    )
    assert refund.status == R.BLOCKED
    login(client)
    body = text(client.get(review(refund)))
    assert "Blocked by its checks" in body and "nothing to decide" in body
    assert "email matches the ticket" in body and "b0b@test.com" in body
    assert '<span class="cs-badge cs-error">failed</span>' in body
    assert 'id="approve-form"' not in body and 'id="edit-form"' not in body
    response = client.post(review(refund), {"action": "approve"}, follow=True)
    assert "Nothing was changed" in text(response)
    refund.refresh_from_db()
    assert refund.status == R.BLOCKED and not proposal_inbox().exists()
    assert stripe_fake.refund_posts == []


def test_a_payments_failure_is_shown_not_raised(client, fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    login(client)
    stripe_fake.fail_next("500", times=2, path="/v1/customers")  # the SDK tries twice
    response = client.get(review(refund))
    assert response.status_code == 200
    body = text(response)
    assert 'id="payments-error"' in body and "something went wrong on Stripe" in body
    assert body.count('class="cs-check"') == len(refund.checks)  # the latest checks still show
    assert 'id="approve-form"' in body


@pytest.mark.parametrize("garbage", ["999", "abc", "²", "0", "-1", "99999999999999999999999"])
def test_a_missing_refund_is_a_message_and_a_redirect_to_the_list(client, garbage):
    login(client, [*APPROVER_PERMS, "support.view_refund"])
    url = reverse("admin:support_refund_review", args=[garbage])
    response = client.get(url)
    assert response.status_code == 302 and response["Location"] == CHANGELIST
    assert f"There is no refund #{garbage}" in text(client.get(CHANGELIST))
    response = client.get(reverse("admin:support_refund_change", args=[garbage]))
    assert response.status_code == 302 and response["Location"] == CHANGELIST


def test_a_refunds_own_pages_lead_to_its_review_page(client):
    login(client, [*APPROVER_PERMS, "support.view_refund"])
    refund = refund_waiting()
    for url in (
        reverse("admin:support_refund_review", args=[refund.pk]),
        reverse("admin:support_refund_change", args=[refund.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"] == review(refund)
    body = text(client.get(CHANGELIST))
    assert "Refunds in the inbox" in body and QUEUE in body and "Add refund" not in body
    assert review(refund) in body and "Review</a>" in body


def test_the_ticket_page_lists_its_refunds_and_runs(client, fake_anthropic, stripe_fake, worker):
    refund = proposed_refund(worker, fake_anthropic)
    login(client)
    ticket = Ticket.objects.get()
    body = text(client.get(reverse("admin:support_ticket_change", args=[ticket.pk])))
    assert f"Refund #{refund.pk}</a>: $40.00" in body and "Proposed" in body
    assert review(refund) in body
    assert f"Run #{refund.tool_call.run_id}</a>" in body


def test_whoever_may_view_refunds_may_open_a_refunds_review_page_but_not_decide(client):
    refund = refund_waiting()
    client.force_login(user_create(perms=["support.view_refund"]))
    url = reverse("admin:agents_toolcall_review", args=[refund.tool_call_id])
    response = client.get(url)
    assert response.status_code == 200
    text = response.content.decode()
    assert 'id="no-permission"' in text and 'id="approve-form"' not in text
    assert client.post(url, {"action": "approve"}).status_code == 403
    client.force_login(user_create(perms=["sre.view_patchproposal"]))
    assert client.get(url).status_code == 403  # patches' viewers do not see refunds
