"""A proposal's checks: when proposed, at every approval, right before it runs; and their errors.

Invariant: nothing runs unless its checks passed on live data at its last approval and again
just before it ran. Errors while checking are classified: transient ones are retried with a
delay and a cap, anything else fails the call at once; no call stays `preparing`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import AgentRun, AuditEvent, Proposal, ToolCall
from agents.registry import Preparation, RetryLater, toolset_get
from agents.services import (
    ChecksUnavailable,
    InvalidTransition,
    ProposalBlocked,
    agents_sweep,
    proposal_approve,
)
from tests.agents.helpers import SHIP, assert_status, start, tool_results
from tests.factories.users import user_create
from tests.toolbox.models import Shipment, Widget

pytestmark = pytest.mark.django_db
TC = ToolCall.Status


def approver():
    return user_create(perms=["toolbox.approve_shipment"])


def swap(monkeypatch, **changes):
    """Replace the toolbox's ship_widget proposal type's parts for one test."""
    toolset = toolset_get("toolbox")
    real = toolset.tools["ship_widget"]
    tool = replace(real, proposal=replace(real.proposal, **changes))
    monkeypatch.setitem(toolset.tools, "ship_widget", tool)
    return real


def proposed(fake_anthropic, worker, ship=SHIP, *, then: str = "") -> ToolCall:
    """Claude proposes a shipment; `then` is its answer to a result that comes at once."""
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", ship))
    if then:
        fake_anthropic.push_text(then)
    start(worker)
    worker.drain()
    return ToolCall.objects.get(tool_use_id=ship_id)


def later(worker, minutes: float) -> None:
    with worker.committing():
        agents_sweep(now=timezone.now() + timedelta(minutes=minutes))
    worker.drain()


def test_checks_run_before_review_and_are_recorded(fake_anthropic, worker, widgets):
    call = proposed(fake_anthropic, worker, {**SHIP, "quantity": 6})
    assert_status(call.run, AgentRun.Status.AWAITING_APPROVAL)
    assert call.status == TC.AWAITING_APPROVAL
    expected = [
        ("widget exists", True, True),
        ("in stock", True, True),
        ("small order", False, False),  # a soft failure: shown to the reviewer, not blocking
    ]
    assert [(c["name"], c["passed"], c["hard"]) for c in call.checks] == expected
    proposal = Proposal.objects.get(pk=call.pk)
    assert [(c["name"], c["passed"], c["hard"]) for c in proposal.checks] == expected
    assert proposal.checked_in == "proposal" and proposal.checked_at is not None
    assert proposal.summary == "6 × gear to 1 Main St"
    event = AuditEvent.objects.get(tool_call=call, kind="proposal.checked")
    assert event.message == "10 gear in stock before this shipment."


def test_a_hard_failure_blocks_the_call_and_claude_is_told(fake_anthropic, worker, widgets):
    call = proposed(
        fake_anthropic,
        worker,
        {**SHIP, "name": "sprocket"},
        then="Only one sprocket is in stock; I will ask the customer.",
    )
    assert_status(call.run, AgentRun.Status.COMPLETED)
    assert call.status == TC.BLOCKED and call.decision == ToolCall.Decision.BLOCKED
    [result] = tool_results(fake_anthropic.message_requests[-1])
    assert result["is_error"] is True
    assert "cannot be approved" in result["content"] and "in stock: 1 in stock" in result["content"]
    with pytest.raises(InvalidTransition):
        proposal_approve(tool_call_id=call.pk, user=approver())
    assert Shipment.objects.count() == 0


def test_authorize_applies_the_domains_rule_on_every_approval(fake_anthropic, worker, widgets):
    call = proposed(fake_anthropic, worker)
    with pytest.raises(InvalidTransition, match="not raise it"):
        proposal_approve(
            tool_call_id=call.pk, user=approver(), edited_input={**SHIP, "quantity": 3}
        )
    call.refresh_from_db()
    assert call.status == TC.AWAITING_APPROVAL and call.decision is None


def test_a_check_that_fails_at_approval_blocks_it_and_claude_is_told(
    fake_anthropic, worker, widgets
):
    call = proposed(fake_anthropic, worker)
    Widget.objects.filter(name="gear").update(stock=1)  # sold meanwhile
    fake_anthropic.push_text("Out of stock; I will tell the customer.")
    with worker.committing(), pytest.raises(ProposalBlocked, match="in stock: 1 in stock"):
        proposal_approve(tool_call_id=call.pk, user=approver())
    worker.drain()
    call.refresh_from_db()
    assert call.status == TC.BLOCKED and call.decided_by is not None
    proposal = Proposal.objects.get(pk=call.pk)
    assert proposal.checked_in == "approval" and not proposal.approvals.exists()
    [result] = tool_results(fake_anthropic.message_requests[-1])
    assert result["is_error"] and "Checks failed when" in result["content"]
    assert Shipment.objects.count() == 0


def test_an_edit_that_fails_the_checks_changes_nothing(fake_anthropic, worker, widgets):
    call = proposed(fake_anthropic, worker, {**SHIP, "quantity": 5})
    Widget.objects.filter(name="gear").update(stock=4)
    from agents.services import InvalidToolInput

    with pytest.raises(InvalidToolInput, match="Your edit fails the checks"):
        proposal_approve(
            tool_call_id=call.pk,
            user=approver(),
            edited_input={**SHIP, "quantity": 5, "address": "2 Elm St"},
        )
    call.refresh_from_db()
    assert call.status == TC.AWAITING_APPROVAL and call.input_executed is None


def test_a_check_that_fails_right_before_running_stops_it(fake_anthropic, worker, widgets):
    call = proposed(fake_anthropic, worker)
    with worker.committing():
        proposal_approve(tool_call_id=call.pk, user=approver())
    Widget.objects.filter(name="gear").update(stock=0)  # between approval and the worker
    fake_anthropic.push_text("Could not ship.")
    worker.drain()
    call.refresh_from_db()
    assert call.status == TC.BLOCKED and call.decision == ToolCall.Decision.APPROVED
    assert "right before it would have run" in call.result
    assert Proposal.objects.get(pk=call.pk).checked_in == "execution"
    assert Shipment.objects.count() == 0


def test_transient_errors_while_checking_are_retried_then_fail_visibly(
    fake_anthropic, worker, widgets, monkeypatch, settings
):
    settings.AGENTS_CHECK_MAX_ATTEMPTS = 3
    calls = []

    def unreachable(context):
        calls.append(context.phase)
        raise ConnectionError("inventory service is down")

    real = swap(monkeypatch, gather=unreachable)
    call = proposed(fake_anthropic, worker)
    assert call.status == TC.PREPARING and call.checks is None
    proposal = Proposal.objects.get(pk=call.pk)
    assert proposal.check_attempts == 1 and "inventory service is down" in proposal.check_error
    with pytest.raises(InvalidTransition):
        proposal_approve(tool_call_id=call.pk, user=approver())  # nobody approves meanwhile

    later(worker, 0.5)  # not due yet: the delay has not passed
    assert calls == ["proposal"]
    later(worker, 5)
    assert Proposal.objects.get(pk=call.pk).check_attempts == 2
    fake_anthropic.push_text("I could not check the stock.")
    later(worker, 30)
    call.refresh_from_db()
    assert call.status == TC.FAILED and "after 3 tries" in call.result
    assert_status(call.run, AgentRun.Status.COMPLETED)
    [result] = tool_results(fake_anthropic.message_requests[-1])
    assert result["is_error"] and "inventory service is down" in result["content"]
    assert len(calls) == 3
    monkeypatch.setitem(toolset_get("toolbox").tools, "ship_widget", real)


def test_transient_errors_then_recovery(fake_anthropic, worker, widgets, monkeypatch):
    down = [True]

    def flaky(context):
        if down[0]:
            raise RetryLater("inventory service timed out")

    swap(monkeypatch, gather=flaky)
    call = proposed(fake_anthropic, worker)
    assert call.status == TC.PREPARING
    down[0] = False
    later(worker, 5)
    call.refresh_from_db()
    assert call.status == TC.AWAITING_APPROVAL and call.checks


def test_any_other_error_while_checking_fails_the_call_at_once(
    fake_anthropic, worker, widgets, monkeypatch
):
    def broken(context):
        raise ValueError("integer out of range")

    swap(monkeypatch, check=broken)
    call = proposed(fake_anthropic, worker, then="The shipment could not be checked.")
    assert call.status == TC.FAILED and "ValueError: integer out of range" in call.result
    assert_status(call.run, AgentRun.Status.COMPLETED)


def test_checks_unavailable_at_approval_change_nothing(
    fake_anthropic, worker, widgets, monkeypatch
):
    call = proposed(fake_anthropic, worker)

    def down(context):
        raise TimeoutError("inventory service timed out")

    swap(monkeypatch, gather=down)
    with pytest.raises(ChecksUnavailable, match="nothing changed"):
        proposal_approve(tool_call_id=call.pk, user=approver())
    call.refresh_from_db()
    assert call.status == TC.AWAITING_APPROVAL
    assert not Proposal.objects.get(pk=call.pk).approvals.exists()


def test_a_transient_error_before_running_is_retried_with_a_cap(
    fake_anthropic, worker, widgets, monkeypatch, settings
):
    settings.AGENTS_EXECUTE_MAX_ATTEMPTS = 2
    call = proposed(fake_anthropic, worker)
    with worker.committing():
        proposal_approve(tool_call_id=call.pk, user=approver())

    def down(context):
        if context.phase == "execution":
            raise ConnectionError("inventory service is down")
        return None

    swap(monkeypatch, gather=down)
    worker.drain()
    call.refresh_from_db()
    assert call.status == TC.QUEUED and call.next_attempt_at is not None and call.attempts == 1
    fake_anthropic.push_text("Could not ship.")
    later(worker, 60)
    call.refresh_from_db()
    assert call.status == TC.FAILED and "failed 2 times" in call.result
    assert Shipment.objects.count() == 0


def test_checks_see_the_edited_input(fake_anthropic, worker, widgets, monkeypatch):
    seen = []

    def check(context):
        seen.append((context.phase, context.value.quantity))
        return Preparation()

    swap(monkeypatch, check=check)
    call = proposed(fake_anthropic, worker, {**SHIP, "quantity": 2})
    with worker.committing():
        proposal_approve(
            tool_call_id=call.pk, user=approver(), edited_input={**SHIP, "quantity": 1}
        )
    fake_anthropic.push_text("Shipped one.")
    worker.drain()
    assert seen == [("proposal", 2), ("approval", 1), ("execution", 1)]
    assert Shipment.objects.get().quantity == 1


def test_checks_that_never_finish_have_a_deadline(fake_anthropic, worker, widgets, monkeypatch):
    def hangs(context):
        raise SystemExit("the worker was killed while reading")  # no answer, no exception kept

    swap(monkeypatch, gather=hangs)
    [ship_id] = fake_anthropic.push_tool_use(("ship_widget", SHIP))
    start(worker)
    with pytest.raises(SystemExit):
        worker.drain()
    call = ToolCall.objects.get(tool_use_id=ship_id)
    assert call.status == TC.PREPARING
    fake_anthropic.push_text("The checks never finished; I will tell the customer.")
    with worker.committing():
        agents_sweep(now=timezone.now() + timedelta(hours=4))
    worker.drain()
    call.refresh_from_db()
    assert call.status == TC.FAILED and "did not finish" in call.result
    assert_status(call.run, AgentRun.Status.COMPLETED)


def test_an_approved_call_whose_run_is_cancelled_before_a_worker_takes_it_never_runs(
    fake_anthropic, worker, widgets
):
    from agents.services import run_cancel

    call = proposed(fake_anthropic, worker)
    person = user_create(perms=["toolbox.approve_shipment", "agents.cancel_agentrun"])
    with worker.committing():
        proposal_approve(tool_call_id=call.pk, user=person)
    assert worker.queued()  # the execution task waits in the broker
    with worker.committing():
        run_cancel(run_id=call.run_id, user=person, reason="Customer withdrew")
    worker.drain()
    call.refresh_from_db()
    assert call.status == TC.CANCELLED and call.decision == ToolCall.Decision.APPROVED
    assert Proposal.objects.get(pk=call.pk).state == Proposal.State.CANCELLED
    assert Shipment.objects.count() == 0
