"""The refund and reply review pages cost the same whatever else waits or the thread holds."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from support.models import Message
from tests.factories.users import user_create
from tests.support.console_steps import refund_waiting, reply_waiting

pytestmark = pytest.mark.django_db

PERMS = ["support.approve_refund", "support.send_reply", "agents.view_toolcall"]


def grow(ticket, rows: int) -> None:
    """`rows` other refunds waiting and `rows` more messages in the ticket's thread."""
    for i in range(rows):
        refund_waiting(amount=100 + i)
        Message.objects.create(
            ticket=ticket,
            direction="in",
            source="file",
            message_id=f"<more-{ticket.pk}-{rows}-{i}@test.com>",
            from_email=ticket.customer_email,
            text=f"Any news? ({i})",
            raw=b"x",
            received_at=ticket.created_at,
        )


def queries(client, url: str) -> int:
    client.get(url)  # warm the session and content types
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.status_code
    return len(captured)


@pytest.mark.parametrize("live", [False, True], ids=["page", "live part"])
@pytest.mark.parametrize("kind", ["refund", "reply"])
def test_a_review_page_costs_the_same_at_5_and_50_rows(client, kind, live):
    client.force_login(user_create(perms=PERMS))
    refund = refund_waiting()
    subject = refund if kind == "refund" else reply_waiting(ticket=refund.ticket)
    name = "admin:agents_toolcall_review_live" if live else "admin:agents_toolcall_review"
    url = reverse(name, args=[subject.tool_call_id])
    grow(refund.ticket, 5)
    few = queries(client, url)
    grow(refund.ticket, 45)  # 50 of each in all
    many = queries(client, url)
    assert few == many, (kind, live, few, many)
    assert many <= 18, (kind, live, many)  # 16, 11, 14, 11 today
