"""The seed's example in a real browser: Bob's email, the queue, the review, Stripe, the reply."""

from __future__ import annotations

import re

from django.core import mail
from playwright.sync_api import expect

from agents.models import ToolCall
from support.models import Refund, ReplyDraft, Ticket
from tests.browser.conftest import log_in
from tests.support.refund_steps import bob_writes, script_reply, script_until_refund

APPROVER = [
    "support.approve_refund",
    "support.view_refund",
    "support.view_ticket",
    "support.send_reply",
]


def bob_waits_in_the_queue(worker, fake_anthropic) -> Refund:
    """Bob's email arrives through the ingest service; the worker runs Claude to its proposal."""
    script_until_refund(fake_anthropic)
    bob_writes(worker)
    worker.drain()
    return Refund.objects.get(status=Refund.Status.PROPOSED)


def test_bob_is_refunded_and_answered_from_the_browser(page, worker, fake_anthropic, stripe_fake):
    refund = bob_waits_in_the_queue(worker, fake_anthropic)
    log_in(page, perms=APPROVER)

    expect(page.locator("#cs-refunds-module")).to_contain_text("1 pending")
    page.get_by_role("link", name="Refunds awaiting a decision").click()
    row = page.locator(f"#refund-{refund.pk}")
    expect(row).to_contain_text("$40.00")
    expect(row).to_contain_text("bob@test.com")
    expect(row).to_contain_text("Broken widget")
    row.get_by_role("link", name="Review").click()

    expect(page.locator("#checks")).to_contain_text("email matches the ticket")
    expect(page.locator("#checks .cs-check")).to_have_count(len(refund.checks))
    expect(page.locator("#reasoning")).to_contain_text("<scratchpad>Defective on day 2")
    expect(page.locator("#proposed-input")).to_contain_text('"amount": 4000')
    expect(page.locator("#payments")).to_contain_text(stripe_fake.bob_charge["id"])
    expect(page.locator("#thread")).to_contain_text("I want my $40 back.")

    # A slip of the keyboard is caught on the page; nothing is decided.
    page.fill("#edit-amount", "40.001")
    page.locator("#edit-form input[type=submit]").click()
    expect(page.locator("#edit-form .errorlist")).to_contain_text("fraction of a cent")
    assert Refund.objects.get(pk=refund.pk).status == Refund.Status.PROPOSED

    script_reply(fake_anthropic)
    page.get_by_role("button", name="Approve $40.00").click()
    expect(page.locator(".messagelist")).to_contain_text("Approved a refund of $40.00")
    assert stripe_fake.refund_posts == []  # nothing left the request
    worker.drain()
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert [r["amount"] for r in stripe_fake.refunds_on(refund.charge_id)] == [4000]
    page.reload()
    expect(page.locator("#provider-refund")).to_contain_text(refund.provider_refund_id)
    expect(page.locator("#refund-status")).to_contain_text("Succeeded")

    page.locator("#refund").get_by_role("link", name=re.compile("Broken widget")).click()
    expect(page.locator("#ticket-refunds")).to_contain_text(refund.provider_refund_id)
    draft = ReplyDraft.objects.get()
    page.locator(f"#draft-{draft.pk}").get_by_role("button", name="Send as is").click()
    expect(page.locator(".messagelist")).to_contain_text("is queued")
    worker.drain()

    [sent] = mail.outbox
    assert sent.to == ["bob@test.com"] and sent.subject == "Re: Broken widget"
    assert sent.extra_headers["In-Reply-To"] == "<bob-1@test.com>"
    assert sent.extra_headers["References"] == "<bob-1@test.com>"
    assert sent.body == draft.body
    page.reload()
    expect(page.locator(f"#draft-{draft.pk}")).to_contain_text("Sent by")
    assert Ticket.objects.get().status == Ticket.Status.WAITING_ON_CUSTOMER


def test_a_refund_is_rejected_with_a_reason(page, worker, fake_anthropic, stripe_fake):
    refund = bob_waits_in_the_queue(worker, fake_anthropic)
    log_in(page, perms=APPROVER)
    page.goto(f"/admin/support/refund/{refund.pk}/review/")
    script_reply(fake_anthropic, "Hi Bob, a colleague will look at your order.")
    page.fill("#reject-reason", "Order is outside the refund window")
    page.get_by_role("button", name="Reject").click()
    expect(page.locator(".messagelist")).to_contain_text("rejected; no money moves")
    worker.drain()
    page.reload()
    expect(page.locator("#outcome")).to_contain_text("Order is outside the refund window")
    expect(page.locator("#approve-form")).to_have_count(0)
    result = ToolCall.objects.get(pk=refund.tool_call_id)
    assert result.status == ToolCall.Status.REJECTED and stripe_fake.refund_posts == []


def test_staff_without_the_permission_see_no_buttons(page, worker, fake_anthropic, stripe_fake):
    refund = bob_waits_in_the_queue(worker, fake_anthropic)
    log_in(page, perms=["support.view_refund", "support.view_ticket"])
    page.get_by_role("link", name="Refunds awaiting a decision").click()
    expect(page.locator("#content-main")).to_contain_text("deciding needs the permission")
    page.locator(f"#refund-{refund.pk}").get_by_role("link", name="Review").click()
    expect(page.locator("#no-permission")).to_be_visible()
    for form in ("#approve-form", "#edit-form", "#reject-form"):
        expect(page.locator(form)).to_have_count(0)
    page.goto(f"/admin/support/ticket/{refund.ticket_id}/change/")
    expect(page.locator("#replies")).to_be_visible()
    expect(page.locator("#own-reply")).to_have_count(0)
