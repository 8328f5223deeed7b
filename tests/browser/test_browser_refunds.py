"""The seed's example in a real browser: Bob's email, the inbox, the review, Stripe, the reply.

Also at a phone's size (390×844): the inbox and the review page fit the width, and the
decision buttons are on screen.
"""

from __future__ import annotations

import os
from pathlib import Path

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
PHONE = {"width": 390, "height": 844}
# Set to a folder to keep screenshots of the pages the tests open (they are not checked in).
SHOTS = os.environ.get("BROWSER_SCREENSHOTS", "")


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def bob_waits_in_the_inbox(worker, fake_anthropic) -> Refund:
    """Bob's email arrives through the ingest service; the worker runs Claude to its proposal."""
    script_until_refund(fake_anthropic)
    bob_writes(worker)
    worker.drain()
    refund = Refund.objects.get()
    assert refund.status == Refund.Status.PROPOSED
    return refund


def test_bob_is_refunded_and_answered_from_the_browser(page, worker, fake_anthropic, stripe_fake):
    refund = bob_waits_in_the_inbox(worker, fake_anthropic)
    log_in(page, perms=APPROVER)

    expect(page.locator("#cs-approvals-module")).to_contain_text("1 pending")
    page.get_by_role("link", name="Inbox: waiting for a person").click()
    row = page.locator(f"#proposal-{refund.tool_call_id}")
    expect(row).to_contain_text("$40.00")
    expect(row).to_contain_text("bob@test.com")
    expect(row).to_contain_text("Broken widget")
    shot(page, "inbox-desktop")
    row.get_by_role("link", name="Review").click()

    expect(page.locator("#checks")).to_contain_text("email matches the ticket")
    expect(page.locator("#checks .cs-check")).to_have_count(len(refund.checks))
    expect(page.locator("#checks-when")).to_contain_text("when it was proposed")
    # Claude's <scratchpad> shows as its notes; the exact text stays one click away.
    expect(page.locator("#conversation .cs-notes").first).to_contain_text("Defective on day 2")
    expect(page.locator("#conversation .cs-raw").first).to_contain_text("<scratchpad>Defective")
    expect(page.locator("#proposed-input")).to_contain_text('"amount": 4000')
    expect(page.locator("#payments")).to_contain_text(stripe_fake.bob_charge["id"])
    expect(page.locator("#thread")).to_contain_text("I want my $40 back.")
    shot(page, "refund-review-desktop")

    # A slip of the keyboard is caught on the page; nothing is decided.
    page.fill("#edit-amount", "40.001")
    page.locator("#edit-form input[type=submit]").click()
    expect(page.locator("#edit-form .errorlist")).to_contain_text("fraction of a cent")
    assert Refund.objects.get(pk=refund.pk).status == Refund.Status.PROPOSED

    reply_id = script_reply(fake_anthropic)
    page.get_by_role("button", name="Approve $40.00").click()
    expect(page.locator(".messagelist")).to_contain_text("Approved process_refund as proposed")
    assert stripe_fake.refund_posts == []  # nothing left the request
    worker.drain()
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert [r["amount"] for r in stripe_fake.refunds_on(refund.charge_id)] == [4000]

    # Claude's reply to Bob now waits in the inbox too; a person sends it.
    reply = ToolCall.objects.get(tool_use_id=reply_id)
    page.reload()
    reply_row = page.locator(f"#proposal-{reply.pk}")
    expect(reply_row).to_contain_text("Reply to bob@test.com")
    reply_row.get_by_role("link", name="Review").click()
    expect(page.locator("#reply-body")).to_contain_text("your $40.00 refund is on its way")
    fake_anthropic.push_text("The reply is sent.")
    page.get_by_role("button", name="Approve: send to bob@test.com").click()
    worker.drain()

    [sent] = mail.outbox
    draft = ReplyDraft.objects.get()
    assert sent.to == ["bob@test.com"] and sent.subject == "Re: Broken widget"
    assert sent.extra_headers["In-Reply-To"] == "<bob-1@test.com>"
    assert sent.body == draft.body
    page.goto(f"/admin/agents/toolcall/{refund.tool_call_id}/review/")
    expect(page.locator("#provider-refund")).to_contain_text(refund.provider_refund_id)
    expect(page.locator("#proposal-state")).to_contain_text("Done")
    page.goto(f"/admin/support/ticket/{refund.ticket_id}/change/")
    expect(page.locator("#ticket-refunds")).to_contain_text(refund.provider_refund_id)
    assert Ticket.objects.get().status == Ticket.Status.WAITING_ON_CUSTOMER


def test_a_refund_is_rejected_with_a_reason(page, worker, fake_anthropic, stripe_fake):
    refund = bob_waits_in_the_inbox(worker, fake_anthropic)
    log_in(page, perms=APPROVER)
    page.goto(f"/admin/support/refund/{refund.pk}/review/")  # the old address still leads here
    script_reply(fake_anthropic, "Hi Bob, a colleague will look at your order.")
    page.fill("#reject-reason", "Order is outside the refund window")
    page.get_by_role("button", name="Reject").click()
    expect(page.locator(".messagelist")).to_contain_text("Rejected process_refund")
    worker.drain()
    page.goto(f"/admin/agents/toolcall/{refund.tool_call_id}/review/")
    expect(page.locator("#decision")).to_contain_text("Order is outside the refund window")
    expect(page.locator("#approve-form")).to_have_count(0)
    result = ToolCall.objects.get(pk=refund.tool_call_id)
    assert result.status == ToolCall.Status.REJECTED and stripe_fake.refund_posts == []


def test_staff_without_the_permission_see_no_buttons(page, worker, fake_anthropic, stripe_fake):
    refund = bob_waits_in_the_inbox(worker, fake_anthropic)
    log_in(page, perms=["support.view_refund", "support.view_ticket", "agents.view_toolcall"])
    page.goto("/admin/agents/toolcall/approvals/")
    expect(page.locator(f"#proposal-{refund.tool_call_id}")).to_contain_text("you may not decide")
    page.locator(f"#proposal-{refund.tool_call_id}").get_by_role("link", name="Review").click()
    expect(page.locator("#no-permission")).to_be_visible()
    for form in ("#approve-form", "#edit-form", "#reject-form"):
        expect(page.locator(form)).to_have_count(0)
    page.goto(f"/admin/support/ticket/{refund.ticket_id}/change/")
    expect(page.locator("#replies")).to_be_visible()
    expect(page.locator("#own-reply")).to_have_count(0)


def fits(page) -> None:
    """No horizontal scroll: the page is no wider than the phone."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide on a {PHONE['width']} px phone"


def test_the_inbox_and_the_review_page_fit_a_phone(
    browser, live_server, browser_db, worker, fake_anthropic, stripe_fake
):
    refund = bob_waits_in_the_inbox(worker, fake_anthropic)
    context = browser.new_context(base_url=live_server.url, viewport=PHONE, is_mobile=True)
    page = context.new_page()
    try:
        log_in(page, perms=APPROVER)
        page.goto("/admin/agents/toolcall/approvals/")
        fits(page)
        shot(page, "inbox-phone")
        review = page.locator(f"#proposal-{refund.tool_call_id}").get_by_role("link", name="Review")
        box = review.bounding_box()
        assert box and box["x"] + box["width"] <= PHONE["width"]
        review.click()
        fits(page)
        shot(page, "refund-review-phone")
        approve = page.get_by_role("button", name="Approve $40.00")
        approve.scroll_into_view_if_needed()
        box = approve.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    finally:
        context.close()
