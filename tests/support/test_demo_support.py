"""The demo's seed: Bob's email becomes a ticket once, and the replay agent proposes $40."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from agents.models import AgentRun, ToolCall
from agents.selectors import proposal_inbox
from support.models import Refund, Ticket
from support.payments import gateway_get

pytestmark = pytest.mark.django_db


def seed(worker) -> str:
    out = io.StringIO()
    with worker.committing():
        call_command("demo_support", stdout=out)
    worker.drain()
    return out.getvalue()


def test_the_demo_seeds_bobs_refund_for_approval_once(worker, settings):
    settings.AGENTS_LLM_BACKEND = "replay"
    settings.STRIPE_API_KEY = ""
    gateway_get().reset()
    out = seed(worker)
    assert "Demo ticket #" in out and "its refund waits in the Inbox" in out
    ticket = Ticket.objects.get()
    assert ticket.customer_email == "bob@test.com"
    assert ticket.status == Ticket.Status.AWAITING_APPROVAL
    refund = Refund.objects.get()
    call = ToolCall.objects.get(pk=refund.tool_call_id)
    assert call.tool_name == "process_refund" and call.input_proposed["amount"] == 4000
    assert call.input_proposed["customer_email"] == "bob@test.com"
    assert refund.status == Refund.Status.PROPOSED and refund.charge_id == "ch_sandbox_bob_widget"
    assert AgentRun.objects.get().backend == "replay"
    # It waits in the one inbox, like every proposal, for a person with the permission.
    [waiting] = proposal_inbox()
    assert waiting.tool_call_id == call.pk and waiting.summary.startswith("$40.00 to bob@test.com")

    assert "is there already (awaiting approval; refund #" in seed(worker)
    assert Ticket.objects.count() == 1 and Refund.objects.count() == 1
