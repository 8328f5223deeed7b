"""Try to break the proposal invariants with random sequences of everything people and workers do.

Hypothesis drives proposals through approvals (one or two people), edits, rejections,
cancellations, expiry, stock changes between the steps, lost and duplicated tasks, and checks
after every step:
- nothing runs without the approvals it needs, from different people, and nothing runs twice;
- the checks held at the last approval and just before it ran (stock never goes negative);
- no call waits in a finished run, and the inbox lists exactly the calls that wait;
- every closed call has its result, and its proposal's state follows its status.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from datetime import timedelta

import pytest
from django.db.models import Count
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from agents.models import AgentRun, Approval, AuditEvent, Proposal, ToolCall
from agents.registry import toolset_get
from agents.selectors import proposal_inbox
from agents.services import (
    ChecksUnavailable,
    InvalidToolInput,
    InvalidTransition,
    agents_sweep,
    proposal_approve,
    proposal_reject,
    run_cancel,
    run_start,
)
from tests.factories.users import user_create
from tests.toolbox.models import Shipment, Widget

pytestmark = pytest.mark.django_db
TC = ToolCall.Status
OPEN = (TC.PREPARING, TC.AWAITING_APPROVAL, TC.QUEUED, TC.EXECUTING)


def responder(fake):
    """A model that ships what the first message asks for, and ends its turn on any result."""

    def answer(body):
        last = body["messages"][-1]
        if any(b.get("type") == "tool_result" for b in last["content"]):
            return fake._message(body, [{"type": "text", "text": "Noted."}], "end_turn", 5)
        quantity = int(body["messages"][0]["content"][0]["text"].split()[1])
        use = {"name": "gear", "quantity": quantity, "address": "1 Main St"}
        content = [
            {"type": "tool_use", "id": f"toolu_{fake._next()}", "name": "ship_widget", "input": use}
        ]
        return fake._message(body, content, "tool_use", 20)

    return answer


class Endless(deque):
    """A script that never runs dry: every request gets the same answering function."""

    def __init__(self, item) -> None:
        super().__init__()
        self.item = item

    def popleft(self):
        return self.item

    def __bool__(self) -> bool:
        return True


class Proposals(RuleBasedStateMachine):
    calls = Bundle("calls")

    def __init__(self, fake, worker):
        super().__init__()
        self.fake, self.worker = fake, worker
        self.people = [
            user_create(perms=["toolbox.approve_shipment", "agents.cancel_agentrun"])
            for _ in range(3)
        ]
        self.now = timezone.now()

    @initialize()
    def stock(self):
        Widget.objects.update_or_create(name="gear", defaults={"stock": 12})

    @rule(target=calls, quantity=st.integers(min_value=1, max_value=6))
    def propose(self, quantity):
        with self.worker.committing():
            run = run_start(toolset="toolbox", user_message=f"ship {quantity} gears")
        self.worker.drain(limit=1000)
        call = ToolCall.objects.filter(run=run, tool_name="ship_widget").first()
        return call.pk if call else 0

    @rule(call=calls, who=st.integers(0, 2), edit=st.none() | st.integers(1, 6))
    def approve(self, call, who, edit):
        if not call:
            return
        tool_call = ToolCall.objects.get(pk=call)
        edited = {**tool_call.input_proposed, "quantity": edit} if edit else None
        try:
            with self.worker.committing():
                proposal_approve(tool_call_id=call, user=self.people[who], edited_input=edited)
        except (InvalidTransition, InvalidToolInput, ChecksUnavailable, PermissionError):
            pass
        except Exception as error:  # PermissionDenied for a second approval by the same person
            assert type(error).__name__ == "PermissionDenied", error

    @rule(call=calls, who=st.integers(0, 2))
    def reject(self, call, who):
        if not call:
            return
        try:
            with self.worker.committing():
                proposal_reject(tool_call_id=call, user=self.people[who], reason="Not now")
        except InvalidTransition:
            pass

    @rule(call=calls)
    def cancel(self, call):
        if not call:
            return
        run_id = ToolCall.objects.get(pk=call).run_id
        try:
            with self.worker.committing():
                run_cancel(run_id=run_id, user=self.people[0], reason="Withdrawn")
        except InvalidTransition:
            pass

    @rule(stock=st.integers(0, 12))
    def stock_changes(self, stock):
        Widget.objects.filter(name="gear").update(stock=stock)

    @rule()
    def a_task_is_lost(self):
        self.worker.take()

    @rule()
    def a_task_is_delivered_twice(self):
        queued = self.worker.queued()
        if queued:
            self.worker.run(queued[0])

    @rule(hours=st.sampled_from([0.05, 1, 100]))
    def time_passes(self, hours):
        self.now += timedelta(hours=hours)
        with self.worker.committing():
            agents_sweep(now=self.now)

    @rule()
    def workers_run(self):
        self.worker.drain(limit=1000)

    @invariant()
    def nothing_runs_without_its_approvals_and_nothing_runs_twice(self):
        for shipment in Shipment.objects.all():
            call = ToolCall.objects.get(idempotency_key=shipment.idempotency_key)
            proposal = Proposal.objects.get(pk=call.pk)
            approvers = list(
                Approval.objects.filter(proposal=proposal).values_list("user", flat=True)
            )
            assert len(set(approvers)) == len(approvers) >= proposal.approvals_required
            assert call.decision == ToolCall.Decision.APPROVED
            assert shipment.quantity == call.effective_input["quantity"]
            # The checks ran, and passed, at its last approval and right before it ran.
            phases = [
                (e.data["phase"], e.data["blocked"])
                for e in AuditEvent.objects.filter(tool_call=call, kind="proposal.checked")
            ]
            assert ("execution", False) in phases and ("approval", False) in phases, phases
        duplicated = (
            Shipment.objects.values("idempotency_key").annotate(n=Count("id")).filter(n__gt=1)
        )
        assert not duplicated.exists()

    @invariant()
    def the_checks_held_stock_never_goes_negative(self):
        assert Widget.objects.get(name="gear").stock >= 0

    @invariant()
    def nothing_waits_in_a_finished_run_and_the_inbox_is_what_waits(self):
        stuck = ToolCall.objects.filter(status__in=OPEN[:3], run__status__in=AgentRun.FINISHED)
        assert not stuck.exists(), list(stuck.values("pk", "status", "run__status"))
        waiting = set(
            ToolCall.objects.filter(status=TC.AWAITING_APPROVAL).values_list("pk", flat=True)
        )
        assert set(proposal_inbox().values_list("pk", flat=True)) == waiting

    @invariant()
    def a_closed_call_has_its_result_and_its_state_follows(self):
        for call in ToolCall.objects.filter(tool_name="ship_widget").select_related("proposal"):
            state = call.proposal.state
            if call.status in OPEN:
                assert call.finished_at is None
            else:
                assert call.finished_at is not None and call.result
                assert state not in Proposal.OPEN
            if call.status in (TC.QUEUED, TC.EXECUTING, TC.SUCCEEDED):
                given = call.proposal.approvals.count()
                assert given >= call.proposal.approvals_required, (call.pk, given)


def test_the_proposal_invariants_hold_whatever_happens(fake_anthropic, worker, monkeypatch):
    tools = toolset_get("toolbox").tools
    real = tools["ship_widget"]
    # Above three gears, two different people must approve.
    two_person = replace(
        real.proposal, approvals=lambda context: 2 if context.value.quantity > 3 else 1
    )
    monkeypatch.setitem(tools, "ship_widget", replace(real, proposal=two_person))
    fake_anthropic._next = iter(range(1, 10**9)).__next__
    script = fake_anthropic._script
    fake_anthropic._script = Endless(responder(fake_anthropic))
    try:
        run_state_machine_as_test(
            lambda: Proposals(fake_anthropic, worker),
            settings=settings(
                max_examples=20,
                stateful_step_count=20,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
            ),
        )
    finally:
        fake_anthropic._script = script
