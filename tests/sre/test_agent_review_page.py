"""A patch is reviewed on the engine's one review page: the diff escaped and coloured, its
checks, Approve (as proposed) or Reject with a reason, each checked again on POST."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from agents.models import Approval, ToolCall
from sre.models import PatchProposal
from tests.factories.users import user_create
from tests.sre.agent_steps import proposed_patch, tool_result

pytestmark = pytest.mark.django_db
P = PatchProposal.Status
APPROVER = ["sre.view_patchproposal", "sre.approve_patch"]
INBOX = reverse("admin:agents_toolcall_approvals")
# No remote and no GitHub in sre_settings: approving makes a local branch, and says so.
APPROVE_LABEL = "Approve: make the branch locally (no push, no pull request)"


@pytest.fixture
def patch(fake_anthropic, worker, sre_settings):
    return proposed_patch(worker, fake_anthropic)


def review_url(patch: PatchProposal) -> str:
    return reverse("admin:agents_toolcall_review", args=[patch.tool_call_id])


def status(patch: PatchProposal) -> str:
    return PatchProposal.objects.select_related("tool_call").get(pk=patch.pk).status


def inbox(client) -> list[int]:
    return [row["call"].pk for row in client.get(INBOX).context["rows"]]


def test_the_page_shows_the_diff_scratchpad_checks_and_traceback(client, patch):
    client.force_login(user_create(perms=APPROVER))
    # The patch's own addresses lead to the one review page.
    old = client.get(reverse("admin:sre_patchproposal_review", args=[patch.pk]))
    assert old.status_code == 302 and old["Location"] == review_url(patch)
    change = client.get(reverse("admin:sre_patchproposal_change", args=[patch.pk]))
    assert change.status_code == 302 and change["Location"] == review_url(patch)

    response = client.get(review_url(patch))
    assert response.status_code == 200
    html = response.content.decode()
    added = re.search(
        r'<span class="add">(.*?)</span>\n?(?=<span class="(?:add|del|ctx|hunk)"|</div>)',
        html,
        re.S,
    )
    assert added is not None and 'class="hl-' in added.group(1)  # the code is highlighted
    text = unescape(re.sub(r"<[^>]+>", "", added.group(1)))
    assert text == '+    profile = payload.get("user_profile", {})'
    assert "Hypothesis: upstream omits user_profile" in html
    assert "patch applies to the live tree" in html and "KeyError: &#x27;user_profile&#x27;" in html
    assert f"Patch #{patch.pk}" in html and patch.branch in html
    # Approve as proposed or reject: a patch is not edited on the page.
    assert 'id="approve-form"' in html and APPROVE_LABEL in html
    assert "open the pull request" not in html
    assert 'id="reject-form"' in html and 'id="edit-form"' not in html

    list_page = client.get(reverse("admin:sre_patchproposal_changelist"))
    assert list_page.status_code == 200
    listed = list_page.content.decode()
    assert "Review" in listed and review_url(patch) in listed
    assert P.PROPOSED.label in listed


def test_an_unknown_patch_goes_back_to_the_list_with_a_message(client, patch):
    client.force_login(user_create(perms=APPROVER))
    for missing in ("999", "nope"):
        response = client.get(reverse("admin:sre_patchproposal_review", args=[missing]))
        assert response.status_code == 302
        assert response["Location"] == reverse("admin:sre_patchproposal_changelist")
        assert f"There is no patch #{missing}" in str(list(get_messages(response.wsgi_request)))


def test_a_viewer_without_the_permission_sees_no_buttons_and_cannot_post(client, patch):
    client.force_login(user_create(perms=["sre.view_patchproposal", "agents.view_toolcall"]))
    html = client.get(review_url(patch)).content.decode()
    assert 'id="no-permission"' in html and "sre.approve_patch" in html
    assert 'id="approve-form"' not in html and 'id="reject-form"' not in html
    assert client.post(review_url(patch), {"action": "approve"}).status_code == 403
    assert client.post(review_url(patch), {"action": "reject", "reason": "x"}).status_code == 403
    assert status(patch) == P.PROPOSED

    client.force_login(user_create(perms=["sre.view_patchproposal"]))
    assert client.post(review_url(patch), {"action": "approve"}).status_code == 403
    assert status(patch) == P.PROPOSED


def test_approve_on_the_page_publishes_once_and_returns_to_the_inbox(
    client, patch, fake_anthropic, worker
):
    reviewer = user_create(perms=APPROVER)
    client.force_login(reviewer)
    assert inbox(client) == [patch.tool_call_id]
    fake_anthropic.push_text("The branch is ready.")
    with worker.committing():
        response = client.post(review_url(patch), {"action": "approve", "note": "Looks right"})
    assert response.status_code == 302 and response["Location"] == INBOX
    worker.drain()
    assert status(patch) == P.PUBLISHED
    [approval] = Approval.objects.filter(proposal_id=patch.tool_call_id)
    assert approval.user == reviewer and approval.note == "Looks right"
    call = ToolCall.objects.get(pk=patch.tool_call_id)
    assert call.decided_by == reviewer and call.status == ToolCall.Status.SUCCEEDED
    assert inbox(client) == []
    # A second POST (a double click) changes nothing and says why.
    again = client.post(review_url(patch), {"action": "approve"}, follow=True)
    assert "Nothing was changed" in again.content.decode()
    assert Approval.objects.filter(proposal_id=patch.tool_call_id).count() == 1


def test_reject_on_the_page_needs_a_reason_and_tells_claude(client, patch, fake_anthropic, worker):
    reviewer = user_create(perms=APPROVER)
    client.force_login(reviewer)
    url = review_url(patch)
    empty = client.post(url, {"action": "reject", "reason": ""})
    assert empty.status_code == 200 and "needs a reason" in empty.content.decode()
    assert status(patch) == P.PROPOSED
    fake_anthropic.push_text("Understood.")
    with worker.committing():
        response = client.post(
            url, {"action": "reject", "reason": "Fix the upstream client instead"}
        )
    assert response.status_code == 302 and response["Location"] == INBOX
    worker.drain()
    assert status(patch) == P.REJECTED
    call = ToolCall.objects.get(pk=patch.tool_call_id)
    assert call.decided_by == reviewer
    assert call.decision_reason == "Fix the upstream client instead"
    result = tool_result(fake_anthropic, call.tool_use_id)
    assert result["is_error"] and "Fix the upstream client instead" in result["content"]
    html = client.get(url).content.decode()
    assert "Fix the upstream client instead" in html and 'id="approve-form"' not in html


def test_an_edit_posted_for_a_patch_changes_nothing(client, fake_anthropic, worker, sre_settings):
    patch = proposed_patch(worker, fake_anthropic)
    client.force_login(user_create(perms=["sre.approve_patch"]))
    url = f"/admin/agents/toolcall/{patch.tool_call_id}/review/"
    response = client.post(url, {"action": "edit", "edited_input": "{}"})
    assert response.status_code == 200
    assert "approved as proposed or rejected" in response.content.decode()
    assert ToolCall.objects.get(pk=patch.tool_call_id).status == ToolCall.Status.AWAITING_APPROVAL
    assert PatchProposal.objects.get(pk=patch.pk).status == PatchProposal.Status.PROPOSED


def _grow(patch: PatchProposal, rows: int, start: int) -> None:
    """More error lines and windows for the incident, and more proposals waiting elsewhere."""
    from datetime import timedelta

    from sre.models import ErrorRequest, IncidentWindow
    from tests.factories.proposals import proposal_waiting

    incident = patch.incident
    for i in range(start, start + rows):
        ErrorRequest.objects.create(
            incident=incident,
            occurred_at=incident.first_seen_at,
            status=500,
            method="GET",
            path=f"/api/profile/{i}",
            line=f'10.0.0.7 - - "GET /api/profile/{i} HTTP/1.1" 500 1',
        )
        IncidentWindow.objects.create(
            incident=incident,
            window_start=incident.first_seen_at - timedelta(minutes=5 * i),
            count=i,
        )
        proposal_waiting(
            toolset="toolbox",
            tool_name="ship_widget",
            permission="toolbox.approve_shipment",
            input={"name": "gear", "quantity": 1, "address": f"{i} Main St"},
        )


@pytest.mark.parametrize("live", [False, True], ids=["page", "live part"])
def test_the_patch_review_page_costs_the_same_at_5_and_50_rows(client, patch, live):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(user_create(perms=APPROVER))
    name = "admin:agents_toolcall_review_live" if live else "admin:agents_toolcall_review"
    url = reverse(name, args=[patch.tool_call_id])
    counts = []
    for rows, start in ((5, 0), (45, 5)):
        _grow(patch, rows, start)
        client.get(url)
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        counts.append(len(captured))
    assert counts[0] == counts[1], counts
    assert counts[1] <= 20, counts
