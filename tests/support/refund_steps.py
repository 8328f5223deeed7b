"""Steps shared by the refund tests: Bob's ticket, a scripted Claude, a Stripe that speaks HTTP."""

from __future__ import annotations

from agents.models import AgentRun, ToolCall
from support.models import Refund, ReplyDraft, Ticket
from support.services import ticket_ingest_email
from tests.support import mails

BOB_EMAIL = "My widget broke on day 2. My email is bob@test.com. I want my $40 back."


def bob_writes(worker, *, body: str = BOB_EMAIL, sender: str = "bob@test.com") -> Ticket:
    raw = mails.plain(sender=f"Bob <{sender}>", subject="Broken widget", body=body)
    with worker.committing():
        result = ticket_ingest_email(raw=raw, source="webhook")
    return Ticket.objects.get(pk=result.ticket_id)


def script_until_refund(fake_anthropic, *, amount: int = 4000, email: str = "bob@test.com") -> str:
    """Claude looks Bob up, lists his payments and proposes the refund; returns its tool_use id."""
    fake_anthropic.push_tool_use(("find_customer", {"email": "bob@test.com"}))
    fake_anthropic.push_tool_use(("list_payments", {"customer_email": "bob@test.com"}))
    [refund_id] = fake_anthropic.push_tool_use(
        (
            "process_refund",
            {"customer_email": email, "amount": amount, "reason": "widget broke on day 2"},
        ),
        text="<scratchpad>Defective on day 2; $40 is 4000 cents.</scratchpad>",
    )
    return refund_id


def script_reply(fake_anthropic, text: str = "Hi Bob, your $40.00 refund is on its way.") -> str:
    """Claude answers the refund's result with a reply, which waits for a person; its id."""
    [reply_id] = fake_anthropic.push_tool_use(("reply_to_customer", {"body": text}))
    return reply_id


def reply_send(worker, fake_anthropic, reply_id: str, *, user=None, then: str = "Sent.") -> None:
    """A person approves Claude's reply; it is mailed and Claude finishes."""
    from agents.services import proposal_approve
    from tests.factories.users import user_create

    fake_anthropic.push_text(then)
    call = ToolCall.objects.get(tool_use_id=reply_id)
    with worker.committing():
        proposal_approve(
            tool_call_id=call.pk, user=user or user_create(perms=["support.send_reply"])
        )
    worker.drain()


def proposed_refund(worker, fake_anthropic, *, then: str | None = None, **kwargs) -> Refund:
    """Bob writes and Claude proposes a refund; `then` is Claude's answer to an immediate result."""
    tool_use_id = script_until_refund(fake_anthropic, **kwargs)
    if then:
        fake_anthropic.push_text(then)
    bob_writes(worker)
    worker.drain()
    return Refund.objects.get(tool_call__tool_use_id=tool_use_id)


def run_of(refund: Refund) -> AgentRun:
    return AgentRun.objects.get(pk=ToolCall.objects.get(pk=refund.tool_call_id).run_id)


def proposed_reply(
    worker, fake_anthropic, text: str = "Hi Bob, sorry about the widget. A colleague will help."
) -> ReplyDraft:
    """Bob writes and Claude answers at once with a reply, which waits for a person."""
    [reply_id] = fake_anthropic.push_tool_use(("reply_to_customer", {"body": text}))
    bob_writes(worker)
    worker.drain()
    return ReplyDraft.objects.get(tool_call__tool_use_id=reply_id)
