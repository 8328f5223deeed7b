"""POST /hooks/github/: a signed pull_request event closes the patch; merged resolves."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from sre.models import Incident, PatchProposal
from sre.services.patches import patch_approve
from tests.factories.users import user_create
from tests.sre.agent_steps import (  # noqa: F401
    proposed_patch,
)

pytestmark = pytest.mark.django_db
P = PatchProposal.Status


@pytest.fixture
def open_pr(fake_anthropic, worker, wired, github_fake):
    """A patch approved and published for real: its pull request is open on (fake) GitHub."""
    patch = proposed_patch(worker, fake_anthropic)
    github_fake.branches.add(patch.branch)
    fake_anthropic.push_text("The pull request is open.")
    with worker.committing():
        patch_approve(patch_id=patch.pk, user=user_create(perms=["sre.approve_patch"]))
    worker.drain()
    patch = PatchProposal.objects.get(pk=patch.pk)
    assert patch.status == P.PR_OPEN and patch.pr_number
    assert Incident.objects.get(pk=patch.incident_id).status == Incident.Status.PR_OPEN
    return patch


def post(client, payload: dict, *, secret: str = "s3cret", event: str = "pull_request"):
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return client.post(
        "/hooks/github/",
        data=body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=signature,
        HTTP_X_GITHUB_EVENT=event,
    )


def closed(patch: PatchProposal, *, merged: bool) -> dict:
    return {
        "action": "closed",
        "pull_request": {
            "number": patch.pr_number,
            "merged": merged,
            "head": {"ref": patch.branch},
        },
    }


def test_a_merged_pull_request_resolves_the_incident(client, open_pr):
    response = post(client, closed(open_pr, merged=True))
    assert response.status_code == 200, response.content
    open_pr.refresh_from_db()
    assert open_pr.status == P.MERGED and open_pr.pr_state == PatchProposal.PullRequest.MERGED
    incident = Incident.objects.get(pk=open_pr.incident_id)
    assert incident.status == Incident.Status.RESOLVED
    assert post(client, closed(open_pr, merged=True)).status_code == 200  # a redelivery

    # A later occurrence reopens it (the rule: tests/sre/test_incidents.py).
    assert incident.resolved_at is not None


def test_a_closed_pull_request_sends_the_incident_back_to_investigation(client, open_pr):
    """It said "Pull request open" after the pull request was closed: the fix did not land."""
    assert post(client, closed(open_pr, merged=False)).status_code == 200
    open_pr.refresh_from_db()
    assert open_pr.status == P.CLOSED
    incident = Incident.objects.get(pk=open_pr.incident_id)
    assert incident.status == Incident.Status.INVESTIGATING
    assert "closed without merging" in incident.status_reason


def test_a_bad_signature_is_refused_and_changes_nothing(client, open_pr):
    response = post(client, closed(open_pr, merged=True), secret="wrong")
    assert response.status_code == 403
    assert PatchProposal.objects.get(pk=open_pr.pk).status == P.PR_OPEN


def test_other_events_and_unknown_pull_requests_are_ignored(client, open_pr):
    assert "ignored" in post(client, {"zen": "hi"}, event="ping").json()["done"]
    other = {"action": "closed", "pull_request": {"number": 99, "merged": True, "head": {}}}
    assert post(client, other).json()["done"] == "not ours"
    # The same number on another branch is not ours either.
    elsewhere = closed(open_pr, merged=True)
    elsewhere["pull_request"]["head"]["ref"] = "someone/else"
    assert post(client, elsewhere).json()["done"] == "not ours"
    assert PatchProposal.objects.get(pk=open_pr.pk).status == P.PR_OPEN
    assert client.get("/hooks/github/").status_code == 405
