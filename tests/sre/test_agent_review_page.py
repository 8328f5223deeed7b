"""The patch review page: the diff escaped and coloured, Approve / Reject checked again on POST."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.urls import reverse

from sre.models import PatchProposal
from tests.factories.users import user_create
from tests.sre.agent_steps import proposed_patch

pytestmark = pytest.mark.django_db
P = PatchProposal.Status


@pytest.fixture
def patch(fake_anthropic, worker, sre_settings):
    return proposed_patch(worker, fake_anthropic)


def test_the_page_shows_the_diff_scratchpad_checks_and_traceback(client, patch):
    client.force_login(user_create(perms=["sre.view_patchproposal", "sre.approve_patch"]))
    response = client.get(reverse("admin:sre_patchproposal_review", args=[patch.pk]))
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
    assert 'id="decide"' in html
    list_page = client.get(reverse("admin:sre_patchproposal_changelist"))
    assert list_page.status_code == 200 and "Review" in list_page.content.decode()


def test_a_viewer_without_the_permission_sees_no_buttons_and_cannot_post(client, patch):
    client.force_login(user_create(perms=["sre.view_patchproposal"]))
    url = reverse("admin:sre_patchproposal_review", args=[patch.pk])
    assert 'id="decide"' not in client.get(url).content.decode()
    client.post(url, {"approve": "1"})
    assert PatchProposal.objects.get(pk=patch.pk).status == P.PROPOSED


def test_reject_on_the_page_needs_a_reason_and_tells_claude(client, patch, fake_anthropic, worker):
    client.force_login(user_create(perms=["sre.view_patchproposal", "sre.approve_patch"]))
    url = reverse("admin:sre_patchproposal_review", args=[patch.pk])
    client.post(url, {"reject": "1", "reason": ""})
    assert PatchProposal.objects.get(pk=patch.pk).status == P.PROPOSED
    fake_anthropic.push_text("Understood.")
    with worker.committing():
        client.post(url, {"reject": "1", "reason": "Fix the upstream client instead"})
    worker.drain()
    patch.refresh_from_db()
    assert patch.status == P.REJECTED and patch.reject_reason == "Fix the upstream client instead"
