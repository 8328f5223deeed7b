"""The ticket page: drafted replies sent as is or edited, staff's own reply, aliases."""

from __future__ import annotations

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from support.models import CustomerAlias, Message, ReplyDraft, Ticket
from tests.factories.users import user_create
from tests.support.refund_steps import bob_writes

pytestmark = pytest.mark.django_db
D = ReplyDraft.Status
SENDER_PERMS = ["support.view_ticket", "support.send_reply", "support.add_customeralias"]


@pytest.fixture
def ticket(worker) -> Ticket:
    ticket = bob_writes(worker)
    worker.take()  # the agent's run is not under test here
    ReplyDraft.objects.create(ticket=ticket, body="Hi Bob, your refund is on its way.")
    return ticket


def page(ticket: Ticket) -> str:
    return reverse("admin:support_ticket_change", args=[ticket.pk])


def reply_url(ticket: Ticket) -> str:
    return reverse("admin:support_ticket_reply", args=[ticket.pk])


def login(client: Client, perms=SENDER_PERMS):
    user = user_create(perms=perms)
    client.force_login(user)
    return user


def text(response) -> str:
    return response.content.decode()


def test_the_page_offers_send_edit_discard_and_an_own_reply(client, ticket):
    login(client)
    body = text(client.get(page(ticket)))
    draft = ticket.drafts.get()
    assert f'id="draft-{draft.pk}"' in body and "Hi Bob, your refund is on its way." in body
    for button in ('value="send"', 'value="send_edited"', 'value="discard"'):
        assert button in body
    assert 'id="own-reply"' in body and 'id="alias-email"' in body
    assert "The thread, in and out" in body and "My widget broke on day 2" in body


def test_view_only_staff_see_the_draft_but_no_buttons(client, ticket):
    login(client, ["support.view_ticket"])
    body = text(client.get(page(ticket)))
    assert "Hi Bob, your refund is on its way." in body and "support.send_reply" in body
    assert 'value="send_edited"' not in body and 'id="own-reply"' not in body
    assert 'id="alias-email"' not in body
    draft = ticket.drafts.get()
    assert client.post(reply_url(ticket), {"action": "send", "draft": draft.pk}).status_code == 403
    alias = reverse("admin:support_ticket_alias", args=[ticket.pk])
    assert client.post(alias, {"email": "bob@work.com"}).status_code == 403
    assert ticket.drafts.get().status == D.DRAFT and not CustomerAlias.objects.exists()


def test_send_as_is_from_the_page(client, ticket, worker):
    login(client)
    draft = ticket.drafts.get()
    response = client.post(
        reply_url(ticket), {"action": "send", "draft": draft.pk, "body": "Changed."}, follow=True
    )
    assert "you changed reply" in text(response) and not worker.queued()
    with worker.committing():
        response = client.post(
            reply_url(ticket),
            {"action": "send", "draft": draft.pk, "body": draft.body + "\r\n"},
            follow=True,
        )
    assert "is queued; a worker sends it now" in text(response)
    assert mail.outbox == []  # the request only queues
    worker.drain()
    [sent] = mail.outbox
    assert sent.body == "Hi Bob, your refund is on its way."
    assert sent.extra_headers["In-Reply-To"] == "<bob-1@test.com>"
    body = text(client.get(page(ticket)))
    assert "Sent by user" in body and sent.extra_headers["Message-ID"].strip("<>") in body
    assert "Waiting on customer" in body and "sent by user" in body  # the thread's new message
    response = client.post(reply_url(ticket), {"action": "send", "draft": draft.pk}, follow=True)
    assert "Nothing was changed" in text(response) and len(mail.outbox) == 1


def test_send_edited_and_discard(client, ticket, worker):
    login(client)
    draft = ticket.drafts.get()
    other = ReplyDraft.objects.create(ticket=ticket, body="A second thought.")
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


def test_staff_write_their_own_reply_from_the_page(client, ticket, worker):
    login(client)
    with worker.committing():
        client.post(reply_url(ticket), {"action": "send", "body": "Hello from a person."})
    worker.drain()
    assert mail.outbox[0].body == "Hello from a person."
    assert ticket.drafts.filter(drafted_by_run=None, status=D.SENT).exists()


def test_a_draft_of_another_ticket_is_not_found(client, ticket, worker):
    login(client)
    other = Ticket.objects.create(customer_email="carol@test.com", subject="Another")
    foreign = ReplyDraft.objects.create(ticket=other, body="x")
    response = client.post(reply_url(ticket), {"action": "send", "draft": foreign.pk})
    assert response.status_code == 404
    assert client.get(reply_url(ticket)).status_code == 405


def test_a_failed_send_shows_the_error_and_can_be_sent_again(client, ticket, worker, settings):
    login(client)
    draft = ticket.drafts.get()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 5
    with worker.committing():
        client.post(reply_url(ticket), {"action": "send", "draft": draft.pk})
    worker.drain()
    body = text(client.get(page(ticket)))
    assert "The last attempt was not sent" in body and "ConnectionRefusedError" in body
    assert 'value="send"' in body


def test_an_unconfirmed_send_is_shown_as_ambiguous(client, ticket, worker, monkeypatch):
    login(client)
    draft = ticket.drafts.get()
    with worker.committing():
        client.post(reply_url(ticket), {"action": "send", "draft": draft.pk})
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


def test_the_ticket_page_costs_the_same_for_any_number_of_drafts_and_messages(
    client, ticket, worker
):
    login(client)
    with CaptureQueriesContext(connection) as few:
        assert client.get(page(ticket)).status_code == 200
    for i in range(4):
        ReplyDraft.objects.create(ticket=ticket, body=f"Draft {i}")
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
    assert text(response).count('class="cs-message cs-assistant cs-draft"') == 5
    assert len(many) == len(few)
