"""The ticket page: Claude's replies with where they stand, staff's own replies, aliases.

Claude's reply is a proposal, decided on its review page like any other; the ticket page shows
it and links there. Staff's own replies are sent from the ticket page.
"""

from __future__ import annotations

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from agents.models import Proposal
from support.models import CustomerAlias, Message, ReplyDraft, Ticket
from support.services import ticket_ingest_email
from tests.factories.users import user_create
from tests.support import mails
from tests.support.console_steps import reply_waiting
from tests.support.refund_steps import bob_writes, proposed_reply

pytestmark = pytest.mark.django_db
D = ReplyDraft.Status
P = Proposal.State
SENDER_PERMS = ["support.view_ticket", "support.send_reply", "support.add_customeralias"]
CLAUDE = "Hi Bob, your refund is on its way."


@pytest.fixture
def claudes(fake_anthropic, worker) -> ReplyDraft:
    """Bob's ticket, and Claude's reply to it waiting for a person."""
    return proposed_reply(worker, fake_anthropic, CLAUDE)


@pytest.fixture
def ticket(worker) -> Ticket:
    """Bob's ticket with no agent run under test."""
    ticket = bob_writes(worker)
    worker.take()
    return ticket


def page(ticket: Ticket | int) -> str:
    return reverse("admin:support_ticket_change", args=[getattr(ticket, "pk", ticket)])


def reply_url(ticket: Ticket | int) -> str:
    return reverse("admin:support_ticket_reply", args=[getattr(ticket, "pk", ticket)])


def review(draft: ReplyDraft) -> str:
    return reverse("admin:agents_toolcall_review", args=[draft.tool_call_id])


def login(client: Client, perms=SENDER_PERMS):
    user = user_create(perms=perms)
    client.force_login(user)
    return user


def text(response) -> str:
    return response.content.decode()


def draft_buttons(draft: ReplyDraft) -> str:
    return f'name="draft" value="{draft.pk}"'


# --- Claude's reply -----------------------------------------------------------------------------


def test_the_page_shows_claudes_reply_with_its_state_and_a_link_to_its_review_page(client, claudes):
    login(client)
    body = text(client.get(page(claudes.ticket_id)))
    assert f'id="draft-{claudes.pk}"' in body and CLAUDE in body
    assert "drafted by Claude in <a" in body and f"run #{claudes.drafted_by_run_id}" in body
    assert '<strong class="cs-draft-status">Not sent</strong>' in body
    assert '<strong class="cs-draft-state">Waiting for approval</strong>' in body
    assert f'href="{review(claudes)}"' in body and "nothing is sent until a person" in body
    # No send buttons for a proposal: it is decided on its review page.
    assert draft_buttons(claudes) not in body
    assert 'value="send_edited"' not in body and 'value="discard"' not in body
    assert 'id="own-reply"' in body and 'id="alias-email"' in body
    assert "The thread, in and out" in body and "My widget broke on day 2" in body


def test_view_only_staff_see_the_reply_but_no_forms(client, claudes):
    login(client, ["support.view_ticket"])
    body = text(client.get(page(claudes.ticket_id)))
    assert CLAUDE in body and "Waiting for approval" in body
    assert 'id="own-reply"' not in body and 'id="alias-email"' not in body
    post = client.post(reply_url(claudes.ticket_id), {"action": "send", "body": "Hi"})
    assert post.status_code == 403
    alias = reverse("admin:support_ticket_alias", args=[claudes.ticket_id])
    assert client.post(alias, {"email": "bob@work.com"}).status_code == 403
    claudes.refresh_from_db()
    assert claudes.status == D.DRAFT and not CustomerAlias.objects.exists()


@pytest.mark.parametrize(
    "data",
    [
        {"action": "send"},
        {"action": "send", "body": CLAUDE},
        {"action": "send_edited", "body": "Edited."},
        {"action": "discard"},
    ],
)
def test_claudes_reply_cannot_be_sent_or_discarded_from_the_ticket_page(
    client, claudes, worker, data
):
    login(client)
    response = client.post(reply_url(claudes.ticket_id), {**data, "draft": claudes.pk}, follow=True)
    body = text(response)
    assert "Nothing was changed" in body and "Claude&#x27;s proposal" in body
    assert "on its review page" in body
    assert not worker.queued() and mail.outbox == []
    claudes.refresh_from_db()
    assert (claudes.state, claudes.status) == (P.WAITING, D.DRAFT)


def test_approved_on_its_review_page_the_reply_is_sent_and_the_ticket_page_says_so(
    client, claudes, fake_anthropic, worker
):
    login(client)
    review_page = text(client.get(review(claudes)))
    assert f"Reply #{claudes.pk} to bob@test.com" in review_page and CLAUDE in review_page
    assert "Approve: send to bob@test.com" in review_page and 'id="edit-form"' in review_page
    fake_anthropic.push_text("The reply is sent.")
    with worker.committing():
        response = client.post(review(claudes), {"action": "approve"})
    assert response.status_code == 302 and mail.outbox == []  # the request only approves
    worker.drain()
    [sent] = mail.outbox
    assert sent.body == CLAUDE and sent.extra_headers["In-Reply-To"] == "<bob-1@test.com>"
    body = text(client.get(page(claudes.ticket_id)))
    assert '<strong class="cs-draft-state">Done</strong>' in body
    assert "Sent by user" in body and sent.extra_headers["Message-ID"].strip("<>") in body
    assert "Waiting on customer" in body and "sent by user" in body  # the thread's new message
    assert "edited before sending" not in body


def test_edited_on_its_review_page_the_edit_is_sent(client, claudes, fake_anthropic, worker):
    login(client)
    fake_anthropic.push_text("The edited reply is sent.")
    with worker.committing():
        client.post(review(claudes), {"action": "edit", "body": "Hi Bob,\r\nrefunded: $40.00."})
    worker.drain()
    assert [m.body for m in mail.outbox] == ["Hi Bob,\nrefunded: $40.00."]
    claudes.refresh_from_db()
    assert claudes.body == CLAUDE and claudes.sent_body == "Hi Bob,\nrefunded: $40.00."
    body = text(client.get(page(claudes.ticket_id)))
    assert "edited before sending" in body and "refunded: $40.00." in body
    assert "As sent (edited)" in text(client.get(review(claudes)))


def test_rejected_on_its_review_page_the_reply_is_not_sent(client, claudes, fake_anthropic, worker):
    login(client)
    fake_anthropic.push_text("Understood.")
    with worker.committing():
        client.post(review(claudes), {"action": "reject", "reason": "Promise nothing yet."})
    worker.drain()
    body = text(client.get(page(claudes.ticket_id)))
    assert '<strong class="cs-draft-state">Rejected</strong>' in body
    assert "Rejected: not sent (Promise nothing yet.)" in body
    assert draft_buttons(claudes) not in body and mail.outbox == []


# --- staff's own replies ------------------------------------------------------------------------


def test_staff_write_their_own_reply_from_the_page(client, ticket, worker):
    login(client)
    with worker.committing():
        response = client.post(
            reply_url(ticket), {"action": "send", "body": "Hello from a person."}, follow=True
        )
    assert "is queued; a worker sends it now" in text(response)
    assert mail.outbox == []  # the request only queues
    worker.drain()
    assert mail.outbox[0].body == "Hello from a person."
    assert ticket.drafts.filter(tool_call=None, drafted_by_run=None, status=D.SENT).exists()
    body = text(client.get(page(ticket)))
    assert "written by user" in body and "Sent by user" in body
    response = client.post(reply_url(ticket), {"action": "send"}, follow=True)
    assert "Write the reply first" in text(response) and len(mail.outbox) == 1


def test_an_unsent_staff_reply_is_sent_as_is_edited_or_discarded(client, ticket, worker):
    login(client)
    draft = ReplyDraft.objects.create(ticket=ticket, body="Hi Bob, it is on its way.")
    other = ReplyDraft.objects.create(ticket=ticket, body="A second thought.")
    body = text(client.get(page(ticket)))
    assert draft_buttons(draft) in body and 'value="send_edited"' in body
    response = client.post(
        reply_url(ticket), {"action": "send", "draft": draft.pk, "body": "Changed."}, follow=True
    )
    assert "you changed reply" in text(response) and not worker.queued()
    response = client.post(reply_url(ticket), {"action": "send_edited", "draft": draft.pk})
    assert response.status_code == 302
    assert "Write the reply first" in text(client.get(page(ticket)))
    with worker.committing():
        client.post(
            reply_url(ticket), {"action": "send_edited", "draft": draft.pk, "body": "Edited."}
        )
    worker.drain()
    assert mail.outbox[0].body == "Edited."
    response = client.post(reply_url(ticket), {"action": "discard", "draft": other.pk}, follow=True)
    assert "discarded; nothing was sent" in text(response) and "1 discarded draft" in text(response)
    other.refresh_from_db()
    assert other.status == D.DISCARDED and len(mail.outbox) == 1
    response = client.post(reply_url(ticket), {"action": "send", "draft": draft.pk}, follow=True)
    assert "Nothing was changed" in text(response) and len(mail.outbox) == 1


def test_a_draft_of_another_ticket_is_not_found(client, ticket):
    login(client)
    other = Ticket.objects.create(customer_email="carol@test.com", subject="Another")
    foreign = ReplyDraft.objects.create(ticket=other, body="x")
    response = client.post(reply_url(ticket), {"action": "send", "draft": foreign.pk})
    assert response.status_code == 404
    assert client.get(reply_url(ticket)).status_code == 405


def test_a_failed_send_shows_the_error_and_can_be_sent_again(client, ticket, worker, settings):
    login(client)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 5
    with worker.committing():
        client.post(reply_url(ticket), {"action": "send", "body": "Hello Bob."})
    worker.drain()
    draft = ticket.drafts.get()
    body = text(client.get(page(ticket)))
    assert "The last attempt was not sent" in body and "ConnectionRefusedError" in body
    assert draft_buttons(draft) in body
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with worker.committing():
        client.post(reply_url(ticket), {"action": "send", "draft": draft.pk})
    worker.drain()
    assert [m.body for m in mail.outbox] == ["Hello Bob."]


def test_an_unconfirmed_send_is_shown_as_ambiguous(client, ticket, worker, monkeypatch):
    login(client)
    with worker.committing():
        client.post(reply_url(ticket), {"action": "send", "body": "Hello Bob."})
    body = text(client.get(page(ticket)))
    assert "Queued: a worker sends it shortly" in body and 'value="requeue"' in body
    monkeypatch.setattr(
        "support.services.replies._record_sent", lambda *a: (_ for _ in ()).throw(SystemExit)
    )
    with pytest.raises(SystemExit):
        worker.drain()
    body = text(client.get(page(ticket)))
    assert "may or may not have left" in body and "<strong>not</strong> be sent again" in body
    assert 'value="requeue"' not in body


def test_confirm_an_alias(client, ticket):
    user = login(client)
    alias = reverse("admin:support_ticket_alias", args=[ticket.pk])
    response = client.post(alias, {"email": " bob@work.example "}, follow=True)
    assert "&#x27;bob@work.example&#x27; is confirmed as this customer" in text(response)
    assert CustomerAlias.objects.get().confirmed_by == user
    assert "bob@work.example · confirmed by" in text(response)


def test_the_ticket_page_costs_the_same_for_any_number_of_replies_and_messages(client, claudes):
    login(client)
    ticket = claudes.ticket
    with CaptureQueriesContext(connection) as few:
        assert client.get(page(ticket)).status_code == 200
    for i in range(4):
        reply_waiting(ticket=ticket, body=f"Claude's draft {i}")
        ReplyDraft.objects.create(ticket=ticket, body=f"Staff's draft {i}")
        Message.objects.create(
            ticket=ticket,
            direction="in",
            source="file",
            message_id=f"<more-{i}@test.com>",
            from_email="bob@test.com",
            raw=b"x",
            received_at=ticket.created_at,
        )
    with CaptureQueriesContext(connection) as many:
        response = client.get(page(ticket))
    assert text(response).count('class="cs-message cs-assistant cs-draft"') == 9
    assert text(response).count('class="cs-draft-state"') == 5
    assert len(many) == len(few)


def test_an_approved_reply_the_mail_server_refused_shows_its_next_try(
    client, claudes, worker, settings
):
    login(client)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 5
    with worker.committing():
        client.post(review(claudes), {"action": "approve"})
    worker.drain()
    body = text(client.get(page(claudes.ticket_id)))
    assert '<strong class="cs-draft-state">Approved, queued to run</strong>' in body
    assert "Approved: a worker sends it; the next try is at" in body
    assert "ConnectionRefusedError" in body and "Nothing reached the customer." in body
    assert draft_buttons(claudes) not in body and mail.outbox == []


@pytest.mark.parametrize(
    ("results", "shown", "alarm"),
    [
        ("spf=pass; dkim=pass; dmarc=pass", "No failure reported", False),
        ("spf=fail; dkim=pass; dmarc=fail", "SPF and DMARC failed", True),
    ],
)
def test_the_ticket_page_draws_only_a_real_authentication_failure_in_red(
    client, results, shown, alarm
):
    """SPF/DMARC "failed: no" used to be a red cross, which reads as an alarm."""
    raw = mails.plain(headers=f"Authentication-Results: mx.countersign.example; {results}\n")
    result = ticket_ingest_email(raw=raw, source="webhook")
    login(client, perms=["support.view_ticket"])
    body = text(client.get(page(result.ticket_id)))
    assert shown in body
    assert ('class="cs-badge cs-error">SPF' in body) is alarm
    assert "icon-no.svg" not in body  # no "False" cross anywhere on the page
