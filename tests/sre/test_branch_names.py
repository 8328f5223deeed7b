"""Branch names stay readable and bounded; commit messages link to the console as served."""

from __future__ import annotations

from pathlib import Path

import pytest

from sre.services.patches import BRANCH_SLUG_MAX, branch_name, patch_approve
from tests.factories.users import user_create
from tests.sre.agent_steps import proposed_patch
from tests.sre.conftest import git


@pytest.mark.parametrize(
    ("title", "branch"),
    [
        (
            "Fix KeyError: 'user_profile' in app/api.py handler",
            "sre/incident-7-fix-keyerror-user_profile-in-app-api-py-handler",
        ),
        ("Ünïcode — dashes…", "sre/incident-7-unicode-dashes"),
        ("../../etc/passwd.lock", "sre/incident-7-etc-passwd-lock"),
        ("!!!", "sre/incident-7-fix"),
    ],
)
def test_path_separators_and_dots_become_dashes(title, branch):
    assert branch_name(incident_id=7, title=title) == branch


def test_a_long_title_is_cut_at_a_word_within_the_bound():
    title = "Fix AttributeError in services/billing/invoices/renderer.py when totals are empty"
    name = branch_name(incident_id=7, title=title)
    slug = name.removeprefix("sre/incident-7-")
    assert len(slug) <= BRANCH_SLUG_MAX and not slug.endswith("-")
    assert slug == "fix-attributeerror-in-services-billing-invoices"
    assert branch_name(incident_id=7, title="x" * 300).endswith("-" + "x" * BRANCH_SLUG_MAX)


@pytest.mark.django_db
def test_the_commit_message_links_to_the_console_url(fake_anthropic, worker, sre_settings):
    sre_settings.CONSOLE_URL = "http://10.1.2.3:8080/"
    patch = proposed_patch(worker, fake_anthropic)
    assert (
        patch.branch == f"sre/incident-{patch.incident_id}-fix-keyerror-user_profile-in-app-api-py"
    )
    fake_anthropic.push_text("Done.")
    with worker.committing():
        patch_approve(patch_id=patch.pk, user=user_create(perms=["sre.approve_patch"]))
    worker.drain()
    scratch = Path(sre_settings.SRE_SCRATCH_DIR) / f"incident-{patch.incident_id}"
    body = git(scratch, "log", "-1", "--format=%B", patch.branch)
    assert f"Incident: http://10.1.2.3:8080/admin/sre/incident/{patch.incident_id}/change/" in body
