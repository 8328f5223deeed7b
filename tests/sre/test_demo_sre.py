"""The SRE demo's seed: the sample service's incident, and the replay agent's .get diff, once."""

from __future__ import annotations

import io
import subprocess

import pytest
from django.core.management import call_command

from agents.models import AgentRun, ToolCall
from agents.selectors import proposal_inbox
from sre.models import Incident, LogSource, PatchProposal

pytestmark = pytest.mark.django_db


def seed(worker) -> str:
    out = io.StringIO()
    with worker.committing():
        call_command("demo_sre", stdout=out)
    worker.drain()
    return out.getvalue()


def test_the_demo_seeds_the_keyerror_incident_and_its_patch_for_review_once(
    worker, settings, tmp_path
):
    settings.BASE_DIR = tmp_path
    settings.SRE_REPO_ROOT = str(tmp_path / "var" / "demo-shop")
    settings.SRE_SCRATCH_DIR = str(tmp_path / "var" / "sre-scratch")
    settings.SRE_DENY_PATHS = []
    settings.SRE_CHECK_COMMAND = ""
    settings.SRE_GIT_REMOTE = ""
    settings.AGENTS_LLM_BACKEND = "replay"

    output = seed(worker)
    assert "as a git repository" in output and "Demo incident #" in output
    repo = tmp_path / "var" / "demo-shop"
    log = subprocess.run(
        ["git", "-C", str(repo), "log", "--oneline"], check=True, capture_output=True, text=True
    ).stdout
    assert len(log.splitlines()) == 1
    assert 'payload["user_profile"]' in (repo / "app" / "api.py").read_text()
    assert not (repo / "logs").exists()
    assert set(LogSource.objects.values_list("kind", "read_existing")) == {
        ("django", True),
        ("nginx_access", True),
    }

    incident = Incident.objects.get()
    assert incident.title == "KeyError: 'user_profile' (app/api.py in handler)"
    assert incident.exception_type == "KeyError" and incident.occurrences == 14
    assert incident.requests.count() == 14
    assert incident.status == Incident.Status.PATCH_PROPOSED
    run = AgentRun.objects.get()
    assert run.backend == "replay" and run.status == AgentRun.Status.AWAITING_APPROVAL
    assert [c.tool_name for c in run.tool_calls.order_by("turn")] == [
        "read_file",
        "edit_file",
        "create_pull_request",
    ]
    read = ToolCall.objects.get(run=run, tool_name="read_file")
    assert read.input_proposed == {"path": "app/api.py"}
    patch = PatchProposal.objects.get()
    assert patch.status == PatchProposal.Status.PROPOSED
    assert all(c["passed"] for c in patch.checks), patch.checks
    # It waits in the one inbox, for the engine's review page.
    assert list(proposal_inbox().values_list("pk", flat=True)) == [patch.tool_call_id]
    assert patch.changed_files == ["app/api.py"]
    assert '+    profile = payload.get("user_profile", {})' in patch.diff
    assert '-    profile = payload["user_profile"]' in patch.diff
    # The live tree is untouched; only the scratch copy was edited.
    assert 'payload["user_profile"]' in (repo / "app" / "api.py").read_text()

    output = seed(worker)
    assert f"Demo incident #{incident.pk} is there already (patch proposed; patch #" in output
    assert "waiting for review" in output
    assert (Incident.objects.count(), AgentRun.objects.count(), PatchProposal.objects.count()) == (
        1,
        1,
        1,
    )
    assert LogSource.objects.count() == 2
