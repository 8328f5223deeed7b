"""The demo's recording: the replay agent reads api.py, edits it and proposes a .get fix."""

from __future__ import annotations

import pytest

from agents.models import AgentRun
from agents.selectors import proposal_inbox
from sre.models import Incident, PatchProposal
from tests.sre.agent_steps import code_incident, start  # noqa: F401

pytestmark = pytest.mark.django_db


def test_the_keyerror_recording_ends_in_a_patch_waiting_for_review(worker, sre_settings):
    sre_settings.AGENTS_LLM_BACKEND = "replay"
    start(worker, code_incident())
    run = AgentRun.objects.get()
    assert run.backend == "replay" and run.status == AgentRun.Status.AWAITING_APPROVAL
    assert [c.tool_name for c in run.tool_calls.order_by("turn")] == [
        "read_file",
        "edit_file",
        "create_pull_request",
    ]
    patch = PatchProposal.objects.get()
    assert patch.status == PatchProposal.Status.PROPOSED
    assert all(c["passed"] for c in patch.checks), patch.checks
    assert list(proposal_inbox().values_list("pk", flat=True)) == [patch.tool_call_id]
    assert '+    profile = payload.get("user_profile", {})' in patch.diff
    assert "Hypothesis" in run.messages[3]["content"][0]["text"]
    assert Incident.objects.get().status == Incident.Status.PATCH_PROPOSED
    # A replay of recorded replies is paid for by nobody: the run and its calls cost $0.
    assert run.cost_usd == 0 and run.model_calls.count() == 3
    assert all(call.cost_usd == 0 for call in run.model_calls.all())
