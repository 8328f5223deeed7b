"""The basic ticket pages: a list, a read-only thread; no adding, changing or deleting."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from support.models import RejectedEmail, Ticket
from support.services import ticket_ingest_email
from tests.factories.users import user_create
from tests.support import mails

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(user_create(perms=["support.view_ticket", "support.view_rejectedemail"]))
    return client


def make_tickets(count: int) -> None:
    for i in range(count):
        ticket_ingest_email(raw=mails.plain(message_id=f"<m{i}-{count}@test.com>"), source="file")


def test_the_list_shows_tickets_and_flags(staff_client):
    ticket_ingest_email(raw=mails.AUTH_FAILED, source="file")
    ticket_ingest_email(raw=mails.HTML_HIDDEN_INJECTION, source="file")
    response = staff_client.get(reverse("admin:support_ticket_changelist"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Refund please" in body and "SPF failed, DMARC failed" in body
    assert "hidden content dropped" in body
    assert "Add ticket" not in body


def test_the_list_query_count_does_not_grow_with_rows(staff_client):
    make_tickets(2)
    with CaptureQueriesContext(connection) as few:
        staff_client.get(reverse("admin:support_ticket_changelist"))
    make_tickets(8)
    with CaptureQueriesContext(connection) as many:
        response = staff_client.get(reverse("admin:support_ticket_changelist"))
    assert response.content.decode().count('class="field-customer_email"') == 10
    assert len(many) == len(few)


def test_the_ticket_page_shows_the_thread_read_only(staff_client):
    result = ticket_ingest_email(raw=mails.HTML_HIDDEN_INJECTION, source="file")
    ticket_ingest_email(raw=mails.BASE64_WITH_ATTACHMENTS, source="file")
    attached = Ticket.objects.exclude(pk=result.ticket_id).get()
    response = staff_client.get(reverse("admin:support_ticket_change", args=[result.ticket_id]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Hello, where is my order #1234?" in body
    assert "Hidden HTML content was dropped" in body
    assert 'name="_save"' not in body  # nothing to save: statuses change through services
    response = staff_client.get(reverse("admin:support_ticket_change", args=[attached.pk]))
    assert "領収書.pdf (application/pdf, 42 bytes)" in response.content.decode()
    assert (
        staff_client.post(
            reverse("admin:support_ticket_change", args=[attached.pk]), {"status": "resolved"}
        ).status_code
        == 403
    )
    assert staff_client.get(reverse("admin:support_ticket_add")).status_code == 403
    delete = reverse("admin:support_ticket_delete", args=[attached.pk])
    assert staff_client.get(delete).status_code == 403


def test_rejected_mail_is_listed_with_its_reason_and_raw_text(staff_client):
    ticket_ingest_email(raw=b"Subject: hi\r\n\r\n<b>no sender</b>\r\n", source="imap")
    rejected = RejectedEmail.objects.get()
    response = staff_client.get(reverse("admin:support_rejectedemail_changelist"))
    assert "The message has no From header." in response.content.decode()
    response = staff_client.get(reverse("admin:support_rejectedemail_change", args=[rejected.pk]))
    assert "&lt;b&gt;no sender&lt;/b&gt;" in response.content.decode()


def test_staff_without_the_permission_see_nothing(client):
    client.force_login(user_create())
    assert client.get(reverse("admin:support_ticket_changelist")).status_code == 403
