"""The inbox and the review pages in a real browser: a phone's width, the keyboard, live updates.

Screenshots of the inbox, a refund's review and a patch's diff, at 1440×900 and 390×844, are
saved to docs/screenshots/ by these tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from agents.models import ToolCall
from agents.services import proposal_approve
from support.models import Refund, ReplyDraft
from tests.browser.conftest import TIMEOUT_MS, log_in
from tests.browser.test_browser_refunds import APPROVER, PHONE
from tests.factories.users import user_create
from tests.sre.agent_steps import proposed_patch, sre_settings  # noqa: F401 (fixture)
from tests.sre.conftest import repo  # noqa: F401 (fixture)
from tests.support.refund_steps import proposed_refund, script_reply

DESKTOP = {"width": 1440, "height": 900}
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
EVERYONE = [*APPROVER, "sre.approve_patch", "sre.view_patchproposal"]


def review_url(call_id: int) -> str:
    return f"/admin/agents/toolcall/{call_id}/review/"


def open_page(browser, live_server, viewport, *, perms=EVERYONE):
    context = browser.new_context(
        base_url=live_server.url, viewport=viewport, is_mobile=viewport == PHONE
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    log_in(page, perms=perms)
    return context, page


def width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def fits_a_phone(page) -> None:
    assert width(page) <= PHONE["width"], f"{page.url} is {width(page)} px wide at 390 px"


def on_screen(page, locator) -> None:
    """Reachable: scrolled to, inside the phone's width, not under the jump bar."""
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box


def save(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def waiting(worker, fake_anthropic, stripe_fake, sre_settings):  # noqa: F811
    """A refund, a reply and a patch, each waiting on a person."""
    refund = proposed_refund(worker, fake_anthropic)
    patch = proposed_patch(worker, fake_anthropic)
    return {"refund": refund, "patch": patch}


def reply_waits(worker, fake_anthropic, refund: Refund) -> ReplyDraft:
    """Someone approves the refund; Claude's reply to Bob then waits for a person."""
    reply_id = script_reply(fake_anthropic)
    with worker.committing():
        proposal_approve(
            tool_call_id=refund.tool_call_id, user=user_create(perms=["support.approve_refund"])
        )
    worker.drain()
    return ReplyDraft.objects.get(tool_call__tool_use_id=reply_id)


# --- a phone ---------------------------------------------------------------------------------


def test_no_page_scrolls_sideways_on_a_phone(
    browser, live_server, browser_db, worker, fake_anthropic, waiting
):
    refund, patch = waiting["refund"], waiting["patch"]
    context, page = open_page(browser, live_server, PHONE)
    try:
        page.goto("/admin/agents/toolcall/approvals/")
        expect(page.locator(f"#proposal-{refund.tool_call_id}")).to_be_visible()
        fits_a_phone(page)
        on_screen(page, page.locator(f"#proposal-{patch.tool_call_id} a.cs-review-link"))
        page.evaluate("window.scrollTo(0, 0)")
        save(page, "inbox-phone")

        page.goto(review_url(refund.tool_call_id))
        fits_a_phone(page)
        for part in ("#checks", "#payments", "#the-call"):
            on_screen(page, page.locator(part))
        on_screen(page, page.get_by_role("button", name="Approve $40.00"))
        on_screen(page, page.get_by_role("button", name="Reject"))
        # The bar at the bottom jumps to the decision with a thumb.
        expect(page.locator(".cs-jump")).to_be_visible()
        page.locator(".cs-jump a", has_text="Decide").click()
        expect(page.locator("#decide")).to_be_in_viewport()
        page.evaluate("window.scrollTo(0, 0)")
        save(page, "refund-review-phone")

        page.goto(review_url(patch.tool_call_id))
        fits_a_phone(page)
        on_screen(page, page.locator("#diff .cs-dl-add"))
        on_screen(page, page.get_by_role("button", name="Approve: make the branch locally"))
        page.evaluate("window.scrollTo(0, 0)")
        save(page, "diff-review-phone")

        draft = reply_waits(worker, fake_anthropic, refund)
        page.goto(review_url(draft.tool_call_id))
        fits_a_phone(page)
        on_screen(page, page.locator("#reply-body"))
        on_screen(page, page.get_by_role("button", name="Approve: send to bob@test.com"))
        # The decided refund fits too, and says who decided and what came of it.
        page.goto(review_url(refund.tool_call_id))
        fits_a_phone(page)
        expect(page.locator("#closed")).to_contain_text("This refund ran and succeeded.")
    finally:
        context.close()


def test_desktop_screenshots_and_the_diff_view(browser, live_server, browser_db, waiting):
    refund, patch = waiting["refund"], waiting["patch"]
    context, page = open_page(browser, live_server, DESKTOP)
    try:
        page.goto("/admin/agents/toolcall/approvals/")
        expect(page.locator(f"#proposal-{refund.tool_call_id}")).to_be_visible()
        save(page, "inbox-desktop")
        page.goto(review_url(refund.tool_call_id))
        # Claude's <scratchpad> is its notes, not raw tags.
        notes = page.locator("#conversation .cs-notes").first
        expect(notes).to_contain_text("Defective on day 2")
        expect(notes).not_to_contain_text("<scratchpad>")
        # Reject is a danger action, not a second Approve.
        approve = page.get_by_role("button", name="Approve $40.00")
        reject = page.get_by_role("button", name="Reject")
        colour = "el => getComputedStyle(el).backgroundColor"
        assert approve.evaluate(colour) != reject.evaluate(colour)
        save(page, "refund-review-desktop")

        page.goto(review_url(patch.tool_call_id))
        diff = page.locator("#diff")
        expect(diff.locator(".cs-diff-path")).to_have_text("app/api.py")
        expect(diff.locator(".cs-dl-add .cs-ln").nth(1)).to_have_attribute("data-n", "6")
        folded = diff.locator("details.cs-fold").first
        expect(folded).to_contain_text("unchanged line")
        assert folded.evaluate("el => el.open") is False
        folded.locator("summary").click()
        assert folded.evaluate("el => el.open") is True
        effect = page.locator("#approve-effect")
        expect(effect).to_contain_text("no git remote")
        expect(effect).not_to_contain_text("opens a pull request")
        save(page, "diff-review-desktop")
    finally:
        context.close()


# --- the keyboard ------------------------------------------------------------------------------


def test_the_keyboard_moves_rejects_and_approves_only_after_a_confirm(
    browser, live_server, browser_db, waiting, stripe_fake
):
    refund, patch = waiting["refund"], waiting["patch"]
    context, page = open_page(browser, live_server, DESKTOP)
    try:
        page.goto("/admin/agents/toolcall/approvals/")
        first, second = (f"#proposal-{refund.tool_call_id}", f"#proposal-{patch.tool_call_id}")
        page.keyboard.press("j")
        expect(page.locator(first)).to_have_class(lambda_class("cs-selected"))
        page.keyboard.press("j")
        expect(page.locator(second)).to_have_class(lambda_class("cs-selected"))
        expect(page.locator(first)).not_to_have_class(lambda_class("cs-selected"))
        page.keyboard.press("k")
        expect(page.locator(first)).to_have_class(lambda_class("cs-selected"))
        page.keyboard.press("?")
        expect(page.locator("#cs-shortcuts")).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.locator("#cs-shortcuts")).to_be_hidden()

        # "r" on the inbox opens the selected item's review with the reason in focus.
        page.keyboard.press("r")
        page.wait_for_url(f"**{review_url(refund.tool_call_id)}#reject")
        expect(page.locator("#reject-reason")).to_be_focused()
        # Typing in the field is typing, not shortcuts.
        page.keyboard.type("jak")
        expect(page.locator("#reject-reason")).to_have_value("jak")
        assert page.url.endswith("#reject")
        page.locator("#reject-reason").fill("")
        page.locator("body").click(position={"x": 5, "y": 400})

        # "a" goes to the confirm step; nothing is approved until it is confirmed.
        page.keyboard.press("a")
        confirm = page.locator("#approve-confirm")
        expect(confirm).to_be_visible()
        expect(confirm.get_by_role("button", name="Confirm: Approve $40.00")).to_be_focused()
        assert ToolCall.objects.get(pk=refund.tool_call_id).status == "awaiting_approval"
        page.keyboard.press("Escape")
        expect(confirm).to_be_hidden()
        assert ToolCall.objects.get(pk=refund.tool_call_id).status == "awaiting_approval"

        # "e" focuses the edit form; "j" goes on to the next proposal.
        page.locator("body").click(position={"x": 5, "y": 400})
        page.keyboard.press("e")
        expect(page.locator("#edit-amount")).to_be_focused()
        page.locator("body").click(position={"x": 5, "y": 400})
        page.keyboard.press("j")
        page.wait_for_url(f"**{review_url(patch.tool_call_id)}")
        page.keyboard.press("k")
        page.wait_for_url(f"**{review_url(refund.tool_call_id)}")

        # Confirmed, it is approved.
        page.keyboard.press("a")
        page.locator("#approve-confirm button.cs-approve").press("Enter")
        expect(page.locator(".messagelist")).to_contain_text("Approved process_refund")
        assert ToolCall.objects.get(pk=refund.tool_call_id).status == "queued"
    finally:
        context.close()


def lambda_class(name: str):
    import re

    return re.compile(rf"(^|\s){name}(\s|$)")


# --- live updates ---------------------------------------------------------------------------


def test_the_review_page_shows_the_decision_and_the_result_without_a_reload(
    browser, live_server, browser_db, worker, fake_anthropic, waiting, stripe_fake
):
    refund = waiting["refund"]
    context, page = open_page(browser, live_server, DESKTOP)
    try:
        page.goto(review_url(refund.tool_call_id))
        expect(page.locator("#proposal-state")).to_contain_text("Waiting for approval")
        page.fill("#reject-reason", "half typed")
        page.evaluate("window.__same_page = true")
        # Someone else approves it (another session), and the worker refunds.
        script_reply(fake_anthropic)
        ann = user_create(perms=["support.approve_refund"])
        with worker.committing():
            proposal_approve(tool_call_id=refund.tool_call_id, user=ann, note="Checked the order")
        expect(page.locator("#decided")).to_contain_text(f"Approved by {ann.username}")
        expect(page.locator("#decided")).to_contain_text("Checked the order")
        expect(page.locator("#decide-notice")).to_contain_text("Decided meanwhile")
        worker.drain()
        expect(page.locator("#proposal-state")).to_contain_text("Done")
        expect(page.locator("#outcome")).to_contain_text("Succeeded")
        # The same page (no reload), and what the reviewer typed is still there.
        assert page.evaluate("window.__same_page") is True
        expect(page.locator("#reject-reason")).to_have_value("half typed")
        # Final: the region stops asking.
        expect(page.locator("#review-live")).not_to_have_attribute("hx-trigger", "every 3s")
    finally:
        context.close()


def test_the_inbox_and_the_run_timeline_update_without_a_reload(
    browser, live_server, browser_db, worker, fake_anthropic, waiting, stripe_fake
):
    refund = waiting["refund"]
    context, page = open_page(
        browser, live_server, DESKTOP, perms=[*EVERYONE, "agents.view_agentrun"]
    )
    try:
        page.goto("/admin/agents/toolcall/approvals/")
        row = page.locator(f"#proposal-{refund.tool_call_id}")
        expect(row).to_be_visible()
        page.evaluate("window.__same_page = true")
        reply_id = script_reply(fake_anthropic)
        with worker.committing():
            proposal_approve(
                tool_call_id=refund.tool_call_id, user=user_create(perms=["support.approve_refund"])
            )
        expect(row).to_have_count(0)
        worker.drain()
        reply = ToolCall.objects.get(tool_use_id=reply_id)
        expect(page.locator(f"#proposal-{reply.pk}")).to_contain_text("Reply to bob@test.com")
        assert page.evaluate("window.__same_page") is True

        page.goto(f"/admin/agents/agentrun/{reply.run_id}/change/")
        timeline = page.locator("#timeline")
        expect(timeline).to_contain_text("reply_to_customer")
        page.evaluate("window.__same_page = true")
        fake_anthropic.push_text("The reply is sent.")
        with worker.committing():
            proposal_approve(tool_call_id=reply.pk, user=user_create(perms=["support.send_reply"]))
        worker.drain()
        expect(timeline.locator("#run-usage")).to_contain_text("Completed")
        expect(timeline).to_contain_text("The reply is sent.")
        assert page.evaluate("window.__same_page") is True
    finally:
        context.close()
