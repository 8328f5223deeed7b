"""A support lead's day and an SRE's day in a real browser, end to end.

Dashboard → inbox → review → approve as is, edit then approve, reject with a reason → each
decision found in the audit log → the log exported as CSV. The support lead uses the mouse;
the SRE uses the keyboard.
"""

from __future__ import annotations

import csv
import io
import os

from playwright.sync_api import expect

from agents.models import ToolCall
from support.models import Refund
from support.services import ticket_ingest_email
from tests.browser.conftest import log_in
from tests.browser.test_browser_refunds import APPROVER
from tests.sre.agent_steps import proposed_patch, sre_settings  # noqa: F401 (fixture)
from tests.sre.conftest import repo  # noqa: F401 (fixture)
from tests.support import mails

AUDITOR = ["agents.view_auditevent", "agents.view_toolcall"]
CUSTOMERS = {"ann": 4000, "bea": 6000, "cyd": 3000}


def customer_asks(worker, fake_anthropic, stripe_fake, name: str, cents: int) -> Refund:
    """`name` writes about a broken widget; Claude looks them up and proposes the refund."""
    email = f"{name}@test.com"
    customer = stripe_fake.customer_add(email, name=name.title())
    stripe_fake.charge_add(customer["id"], cents, description="Widget")
    fake_anthropic.push_tool_use(("find_customer", {"email": email}))
    fake_anthropic.push_tool_use(("list_payments", {"customer_email": email}))
    [refund_id] = fake_anthropic.push_tool_use(
        (
            "process_refund",
            {"customer_email": email, "amount": cents, "reason": "widget broke on day 2"},
        )
    )
    raw = mails.plain(
        message_id=f"<{name}-1@test.com>",
        sender=f"{name.title()} <{email}>",
        subject=f"Broken widget ({name})",
        body=f"My widget broke on day 2. I want my ${cents / 100:.0f} back.",
    )
    with worker.committing():
        ticket_ingest_email(raw=raw, source="webhook")
    worker.drain()
    return Refund.objects.get(tool_call__tool_use_id=refund_id)


def csv_rows(page, link) -> list[dict[str, str]]:
    """Download what the page's export link gives, as the logged-in person."""
    response = page.request.get(link.get_attribute("href"))
    assert response.ok, response.status
    return list(csv.DictReader(io.StringIO(response.text())))


def test_a_support_leads_day_by_mouse(page, worker, fake_anthropic, stripe_fake):
    ann, bea, cyd = (
        customer_asks(worker, fake_anthropic, stripe_fake, name, cents)
        for name, cents in CUSTOMERS.items()
    )
    lead = log_in(page, perms=[*APPROVER, *AUDITOR])
    for _ in range(3):  # Claude's last word after each decision
        fake_anthropic.push_text("Done for today.")

    # The dashboard says what waits; the inbox lists it, oldest first.
    expect(page.locator("#cs-approvals-module")).to_contain_text("3 pending")
    page.get_by_role("link", name="Inbox: waiting for a person").click()
    for refund in (ann, bea, cyd):
        expect(page.locator(f"#proposal-{refund.tool_call_id}")).to_be_visible()

    # Ann: approved as proposed.
    page.locator(f"#proposal-{ann.tool_call_id}").get_by_role("link", name="Review").click()
    page.get_by_role("button", name="Approve $40.00").click()
    expect(page.locator(".messagelist")).to_contain_text("Approved process_refund as proposed")

    # Bea: the amount edited down, then approved.
    page.goto("/admin/agents/toolcall/approvals/")
    page.locator(f"#proposal-{bea.tool_call_id}").get_by_role("link", name="Review").click()
    page.fill("#edit-amount", "45.00")
    page.locator("#edit-form input[type=submit]").click()
    expect(page.locator(".messagelist")).to_contain_text("Approved process_refund")

    # Cyd: rejected, with the reason Claude and the log will see.
    page.goto("/admin/agents/toolcall/approvals/")
    page.locator(f"#proposal-{cyd.tool_call_id}").get_by_role("link", name="Review").click()
    page.fill("#reject-reason", "Bought 14 months ago, outside the warranty")
    page.get_by_role("button", name="Reject").click()
    expect(page.locator(".messagelist")).to_contain_text("Rejected process_refund")
    worker.drain()

    assert [r["amount"] for r in stripe_fake.refunds_on(ann.charge_id)] == [4000]
    assert [r["amount"] for r in stripe_fake.refunds_on(bea.charge_id)] == [4500]
    assert stripe_fake.refunds_on(cyd.charge_id) == []

    # Each decision is in the audit log, found by the lead's name, and in its CSV export.
    page.goto(f"/admin/agents/auditevent/?q={lead.username}")
    table = page.locator("#result_list")
    expect(table).to_contain_text("tool.approved")
    expect(table).to_contain_text("tool.approved_with_edit")
    expect(table).to_contain_text("outside the warranty")
    rows = csv_rows(page, page.get_by_role("link", name="Export CSV"))
    kinds = sorted(r["kind"] for r in rows if r["actor_user"] == lead.username)
    assert "tool.approved" in kinds and "tool.approved_with_edit" in kinds
    assert any("outside the warranty" in r["message"] for r in rows)
    assert {r["actor_user"] for r in rows} == {lead.username}


def test_an_sres_day_by_keyboard(
    page,
    worker,
    fake_anthropic,
    sre_settings,  # noqa: F811
):
    patch = proposed_patch(worker, fake_anthropic)
    sre = log_in(page, perms=["sre.view_patchproposal", "sre.approve_patch", *AUDITOR])
    fake_anthropic.push_text("The fix is on a branch.")

    expect(page.locator("#cs-approvals-module")).to_contain_text("1 pending")
    page.goto("/admin/agents/toolcall/approvals/")
    page.keyboard.press("j")  # the first (and only) proposal
    page.keyboard.press("a")  # its review page, at the approval's confirm step
    page.wait_for_url(f"**/admin/agents/toolcall/{patch.tool_call_id}/review/**")
    expect(page.locator("#diff")).to_contain_text('payload.get("user_profile", {})')
    confirm = page.locator("#approve-confirm button.cs-approve")
    expect(confirm).to_be_focused()
    assert ToolCall.objects.get(pk=patch.tool_call_id).status == "awaiting_approval"
    confirm.press("Enter")
    expect(page.locator(".messagelist")).to_contain_text("Approved create_pull_request")
    worker.drain()
    assert ToolCall.objects.get(pk=patch.tool_call_id).status == "succeeded"

    # The approval in the audit log, filtered by tool, and in the export.
    page.goto("/admin/agents/auditevent/?tool=create_pull_request")
    expect(page.locator("#result_list")).to_contain_text("tool.approved")
    expect(page.locator("#result_list")).to_contain_text(sre.username)
    rows = csv_rows(page, page.get_by_role("link", name="Export CSV"))
    assert any(r["kind"] == "tool.approved" and r["actor_user"] == sre.username for r in rows)


LISTS = [
    "/admin/agents/auditevent/",
    "/admin/agents/toolcall/",
    "/admin/agents/modelcall/",
    "/admin/agents/agentrun/",
    "/admin/support/refund/",
    "/admin/support/ticket/",
]


def test_the_audit_log_and_the_lists_fit_a_1440_px_screen(
    browser, live_server, browser_db, worker, fake_anthropic, stripe_fake
):
    for name, cents in CUSTOMERS.items():
        customer_asks(worker, fake_anthropic, stripe_fake, name, cents)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1440, "height": 900})
    page = context.new_page()
    try:
        log_in(page, perms=[*APPROVER, *AUDITOR, "agents.view_modelcall", "agents.view_agentrun"])
        for url in LISTS:
            page.goto(url)
            expect(page.locator("#result_list")).to_be_visible()
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 1440, f"{url} is {width} px wide on a 1440 px screen"
            # Nor does the table scroll inside its box (every column is on screen).
            table, box = page.evaluate(
                "[document.querySelector('#result_list').scrollWidth,"
                " document.querySelector('#result_list').parentElement.clientWidth]"
            )
            assert table <= box, f"{url}: the table is {table} px in a {box} px box"
            if os.environ.get("BROWSER_SCREENSHOTS"):
                name = url.strip("/").replace("/", "-")
                page.screenshot(path=f"{os.environ['BROWSER_SCREENSHOTS']}/{name}.png")
    finally:
        context.close()
