"""Backlog mode for the support desk: many tickets triaged in one Message Batch, same gates."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from agents import registry
from agents.models import AgentRun, BatchRequest, MessageBatch, Proposal, ToolCall
from agents.services import agents_sweep, proposal_approve
from support.models import Refund, ReplyDraft, Ticket
from support.services import ticket_ingest_email
from support.services.backlog import ticket_backlog_list
from support.services.refunds import refund_reject
from tests.factories.users import user_create
from tests.support import mails
from tests.support.refund_steps import BOB_EMAIL, proposed_refund

pytestmark = pytest.mark.django_db
S = AgentRun.Status
P = Proposal.State
REFUND = {"customer_email": "bob@test.com", "amount": 4000, "reason": "widget broke on day 2"}
WORK = "agents.tasks.batches_work_task"


@pytest.fixture(autouse=True)
def _batches_on(settings):
    settings.AGENTS_BATCH_ENABLED = True


def write(worker, n: int, sender: str, body: str, **kwargs) -> Ticket:
    raw = mails.plain(message_id=f"<backlog-{n}@test.com>", sender=sender, body=body)
    with worker.committing():
        result = ticket_ingest_email(raw=raw, source="webhook", **kwargs)
    return Ticket.objects.get(pk=result.ticket_id)


@pytest.fixture
def backlog(worker, monkeypatch) -> list[Ticket]:
    """Three tickets that came in while no support agent was configured: new, with no run."""
    with monkeypatch.context() as m:
        m.delitem(registry._toolsets, "support")
        tickets = [
            write(worker, 1, "Bob <bob@test.com>", BOB_EMAIL),
            write(worker, 2, "Carol <carol@test.com>", "Where is my order?"),
            write(worker, 3, "Dan <dan@test.com>", "How do I reset my password?"),
        ]
    worker.drain()
    assert list(ticket_backlog_list()) == tickets
    return tickets


def script_backlog(fake_anthropic) -> dict[str, str]:
    """Claude's first answers, in the tickets' order: a refund for Bob, replies for the others."""
    [refund] = fake_anthropic.push_tool_use(("process_refund", REFUND))
    [carol] = fake_anthropic.push_tool_use(("reply_to_customer", {"body": "It ships today."}))
    [dan] = fake_anthropic.push_tool_use(("reply_to_customer", {"body": "Use the reset link."}))
    return {"refund": refund, "carol": carol, "dan": dan}


def batches_work(worker):
    worker.run(worker_delivery())
    worker.drain()


def worker_delivery():
    from tests.worker import Delivery

    return Delivery(func=WORK, args=())


def test_a_backlog_goes_in_one_batch_and_every_proposal_waits_for_a_person(
    fake_anthropic, stripe_fake, worker, backlog, capsys
):
    ids = script_backlog(fake_anthropic)
    with worker.committing():
        call_command("support_backlog")
    out = capsys.readouterr().out
    assert "3 ticket(s) wait for a Message Batch" in out and "Submitted msgbatch_" in out
    [post] = [r for r in fake_anthropic.batch_requests if r.path == "/v1/messages/batches"]
    assert len(post.body["requests"]) == 3
    assert fake_anthropic.message_requests == []
    assert set(AgentRun.objects.values_list("status", flat=True)) == {S.BATCHED}
    assert {t.status for t in Ticket.objects.all()} == {Ticket.Status.TRIAGING}
    worker.drain()  # the runs' own step tasks find them in the batch and do nothing
    assert not ToolCall.objects.exists()

    fake_anthropic.batch_end()
    batches_work(worker)

    refund = Refund.objects.get(tool_call__tool_use_id=ids["refund"])
    assert refund.state == P.WAITING and refund.amount == 4000
    assert refund.charge_id == stripe_fake.bob_charge["id"]
    assert all(c["passed"] for c in refund.proposal.checks if c["hard"]), refund.proposal.checks
    for key in ("carol", "dan"):
        assert ReplyDraft.objects.get(tool_call__tool_use_id=ids[key]).state == P.WAITING
    assert {t.status for t in Ticket.objects.all()} == {Ticket.Status.AWAITING_APPROVAL}
    assert set(AgentRun.objects.values_list("status", flat=True)) == {S.AWAITING_APPROVAL}

    # Nothing moves without a person: not the sweep, not another poll, not a worker.
    with worker.committing():
        agents_sweep()
    batches_work(worker)
    assert stripe_fake.refund_posts == [] and Refund.objects.get().state == P.WAITING
    with pytest.raises(PermissionDenied):
        proposal_approve(tool_call_id=refund.tool_call_id, user=user_create())

    fake_anthropic.push_text("Refunded.")
    with worker.committing():
        proposal_approve(
            tool_call_id=refund.tool_call_id, user=user_create(perms=["support.approve_refund"])
        )
    worker.drain()
    refund.refresh_from_db()
    assert refund.state == P.DONE and len(stripe_fake.refund_posts) == 1
    assert len(fake_anthropic.message_requests) == 1  # the refund's result, the normal way


def test_a_refund_from_a_batch_is_proposed_exactly_like_one_made_at_once(
    fake_anthropic, stripe_fake, worker, backlog, settings
):
    fake_anthropic.push_tool_use(("process_refund", REFUND))
    with worker.committing():
        call_command("support_backlog", "--limit", "1")
    fake_anthropic.batch_end()
    batches_work(worker)
    batched = Refund.objects.get()
    batched_shape = shape(batched)
    # Rejected, so that the next refund on Bob's charge is not blocked by this one.
    fake_anthropic.push_text("Understood.")
    with worker.committing():
        refund_reject(
            refund_id=batched.pk,
            user=user_create(perms=["support.approve_refund"]),
            reason="Comparing.",
        )
    worker.drain()

    # The same ticket and the same proposal, made at once (backlog mode off).
    settings.AGENTS_BATCH_ENABLED = False
    fake_anthropic.push_tool_use(("process_refund", REFUND))
    raw = mails.plain(message_id="<again@test.com>", sender="Bob <bob@test.com>", body=BOB_EMAIL)
    with worker.committing():
        ticket_ingest_email(raw=raw, source="webhook", batch=True)  # ignored: mode is off
    worker.drain()
    at_once = Refund.objects.exclude(pk=batched.pk).get()
    assert batched_shape == shape(at_once)
    assert BatchRequest.objects.count() == 1


def test_ingest_with_batch_holds_each_new_ticket_for_a_batch(fake_anthropic, worker, tmp_path):
    path = tmp_path / "old.eml"
    path.write_bytes(mails.plain(message_id="<old-1@test.com>"))
    with worker.committing():
        call_command("ingest_email", str(path), "--batch")
    worker.drain()
    assert AgentRun.objects.get().status == S.BATCHED
    assert BatchRequest.objects.get().state == BatchRequest.State.HELD
    fake_anthropic.push_text("Sorry to hear it; a colleague will look at it.")
    batches_work(worker)
    assert MessageBatch.objects.get().status == MessageBatch.Status.IN_PROGRESS


def test_backlog_commands_refuse_when_backlog_mode_is_off(worker, backlog, settings, tmp_path):
    settings.AGENTS_BATCH_ENABLED = False
    with pytest.raises(CommandError, match="AGENTS_BATCH_ENABLED"):
        call_command("support_backlog")
    path = tmp_path / "old.eml"
    path.write_bytes(mails.plain(message_id="<old-2@test.com>"))
    with pytest.raises(CommandError, match="AGENTS_BATCH_ENABLED"):
        call_command("ingest_email", str(path), "--batch")
    assert not AgentRun.objects.exists()


def test_dry_run_lists_the_backlog_and_starts_nothing(worker, backlog, capsys):
    call_command("support_backlog", "--dry-run")
    out = capsys.readouterr().out
    assert "bob@test.com" in out and "3 ticket(s) in the backlog." in out
    assert not AgentRun.objects.exists()


def shape(refund: Refund) -> tuple:
    call = ToolCall.objects.select_related("proposal").get(pk=refund.tool_call_id)
    return (
        call.status,
        call.requires_approval,
        call.approval_permission,
        call.proposal.approvals_required,
        [(c["name"], c["passed"], c["hard"]) for c in call.proposal.checks],
        refund.amount,
        refund.charge_id,
    )


def changelist_triage(client: Client, tickets: list[Ticket]):
    return client.post(
        reverse("admin:support_ticket_changelist"),
        {"action": "triage_in_batch", "_selected_action": [t.pk for t in tickets]},
        follow=True,
    )


def test_the_ticket_list_action_holds_the_tickets_and_a_worker_submits(
    fake_anthropic, worker, backlog
):
    client = Client()
    client.force_login(user_create(perms=["support.view_ticket", "support.change_ticket"]))
    fake_anthropic.push_text("One.")
    fake_anthropic.push_text("Two.")
    with worker.committing():
        response = changelist_triage(client, backlog[:2])
    assert response.status_code == 200
    assert "2 ticket(s) wait for a Message Batch" in response.content.decode()
    assert fake_anthropic.batch_requests == []  # never from the request itself
    assert [d.func for d in worker.queued()].count(WORK) == 1
    worker.drain()
    assert MessageBatch.objects.get().requests.count() == 2


def test_the_action_needs_permission_to_change_tickets(worker, backlog):
    client = Client()
    client.force_login(user_create(perms=["support.view_ticket"]))
    page = client.get(reverse("admin:support_ticket_changelist")).content.decode()
    assert "triage_in_batch" not in page
    changelist_triage(client, backlog)
    assert not AgentRun.objects.exists()


def test_tickets_triaged_already_are_skipped(fake_anthropic, stripe_fake, worker, capsys):
    proposed_refund(worker, fake_anthropic)  # Bob's ticket, triaged the normal way
    from support.services.backlog import tickets_triage_in_batch

    report = tickets_triage_in_batch(ticket_ids=[Ticket.objects.get().pk])
    assert report.skipped and not report.held and not BatchRequest.objects.exists()
