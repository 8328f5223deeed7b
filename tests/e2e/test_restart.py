"""A run paused for approval resumes correctly after every process was restarted."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e

SHIP = {"name": "gear", "quantity": 2, "address": "1 Main St"}


def test_a_paused_run_survives_a_restart_of_every_process(site, fake_anthropic):
    [ship_id] = fake_anthropic.push_tool_use(
        ("ship_widget", SHIP), text="<scratchpad>ok</scratchpad>"
    )
    run_id = site.python(
        "from tests.toolbox.models import Widget\n"
        "from agents.services import run_start\n"
        "Widget.objects.create(name='gear', stock=10)\n"
        "print(run_start(toolset='toolbox', user_message='Ship two gears to 1 Main St.').pk)"
    )

    first = site.worker_start()
    site.wait_for(f"SELECT status FROM agents_agentrun WHERE id = {run_id}", "awaiting_approval")
    site.worker_kill(first)  # no process holds the paused run
    assert site.query("SELECT count(*) FROM toolbox_shipment") == [(0,)]
    assert len(fake_anthropic.message_requests) == 1

    # A person approves from a new process, with no worker running.
    site.python(
        "from django.contrib.auth.models import Permission, User\n"
        "from agents.models import ToolCall\n"
        "from agents.services import proposal_approve\n"
        "u = User.objects.create_user('alice', is_staff=True)\n"
        "u.user_permissions.add(Permission.objects.get(codename='approve_shipment'))\n"
        "u = User.objects.get(pk=u.pk)\n"
        f"proposal_approve(tool_call_id=ToolCall.objects.get(tool_use_id='{ship_id}').pk, user=u)"
    )
    fake_anthropic.push_text("Two gears are on their way.")

    second = site.worker_start()
    site.wait_for(f"SELECT status FROM agents_agentrun WHERE id = {run_id}", "completed")
    site.worker_kill(second)

    assert site.query("SELECT quantity FROM toolbox_shipment") == [(2,)]
    assert site.query(
        f"SELECT status, decision FROM agents_toolcall WHERE tool_use_id = '{ship_id}'"
    ) == [("succeeded", "approved")]
    last = fake_anthropic.message_requests[-1].body["messages"][-1]["content"]
    assert last[0]["tool_use_id"] == ship_id and last[0]["is_error"] is False
    assert json.loads(last[0]["content"])["quantity"] == 2
    assert len(fake_anthropic.message_requests) == 2
