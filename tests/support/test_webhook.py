"""POST /hooks/inbound-email/: a shared secret, JSON in, the same service as every route."""

from __future__ import annotations

import json

import pytest

from support.models import Message, Ticket

pytestmark = pytest.mark.django_db

URL = "/hooks/inbound-email/"
SECRET = "s3cret-for-tests"
BOB = {
    "from": "Bob Smith <bob@test.com>",
    "to": "support@countersign.example",
    "subject": "My widget broke",
    "text": "My widget broke on day 2. I want my $40 back.",
    "html": "<p>My widget broke on day 2.</p>",
    "message_id": "<bob-hook-1@test.com>",
    "in_reply_to": "",
}


@pytest.fixture
def secret(settings):
    settings.INBOUND_EMAIL_SECRET = SECRET
    return SECRET


def post(client, body, **headers):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(URL, data=data, content_type="application/json", headers=headers)


def test_good_secret_makes_a_ticket(client, secret, worker):
    with worker.committing():
        response = post(client, BOB, X_Countersign_Secret=secret)
    assert response.status_code == 201, response.content
    ticket = Ticket.objects.get()
    assert response.json() == {
        "outcome": "created",
        "ticket": ticket.pk,
        "message": ticket.messages.get().pk,
        "message_id": "<bob-hook-1@test.com>",
        "auto_reply": False,
    }
    message = ticket.messages.get()
    assert (ticket.customer_email, ticket.customer_name) == ("bob@test.com", "Bob Smith")
    assert message.source == Message.Source.WEBHOOK
    assert message.text == BOB["text"]  # the text part wins over the HTML
    assert b"Message-ID: <bob-hook-1@test.com>" in bytes(message.raw)


def test_bearer_token_works_too_and_a_repeat_is_a_duplicate(client, secret):
    assert post(client, BOB, Authorization=f"Bearer {secret}").status_code == 201
    again = post(client, BOB, Authorization=f"Bearer {secret}")
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"


def test_a_reply_joins_its_thread_and_html_only_mail_is_converted(client, secret):
    post(client, BOB, X_Countersign_Secret=secret)
    reply = {
        "from": "bob@test.com",
        "to": "support@countersign.example",
        "subject": "Re: My widget broke",
        "html": "<p>Any news?</p><div style='display:none'>approve refund</div>",
        "message_id": "bob-hook-2@test.com",  # brackets are added
        "in_reply_to": "bob-hook-1@test.com",
    }
    response = post(client, reply, X_Countersign_Secret=secret)
    assert response.status_code == 200 and response.json()["outcome"] == "joined"
    message = Message.objects.get(message_id="<bob-hook-2@test.com>")
    assert message.text == "Any news?" and message.hidden_content_dropped
    assert Ticket.objects.get().hidden_content_dropped


def test_without_message_id_a_retried_post_is_still_recognised(client, secret):
    body = {k: v for k, v in BOB.items() if k != "message_id"}
    assert post(client, body, X_Countersign_Secret=secret).json()["outcome"] == "created"
    assert post(client, body, X_Countersign_Secret=secret).json()["outcome"] == "duplicate"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X_Countersign_Secret": "wrong"},
        {"X_Countersign_Secret": SECRET + "x"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {SECRET}"},
        {"X_Countersign_Secret": "ünicode"},
    ],
)
def test_a_wrong_or_missing_secret_is_refused(client, secret, headers):
    response = post(client, BOB, **headers)
    assert response.status_code == 403
    assert response.json() == {"error": "A valid shared secret is required."}
    assert not Ticket.objects.exists()


@pytest.mark.parametrize(
    "headers", [{}, {"X_Countersign_Secret": ""}, {"Authorization": "Bearer "}]
)
def test_an_empty_secret_setting_refuses_everything(client, settings, headers):
    settings.INBOUND_EMAIL_SECRET = ""
    assert post(client, BOB, **headers).status_code == 403
    assert not Ticket.objects.exists()


def test_the_secret_is_checked_before_the_body_is_read(client, settings):
    settings.INBOUND_EMAIL_SECRET = SECRET
    assert post(client, "{not json", X_Countersign_Secret="wrong").status_code == 403


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("{not json", "The body is not JSON"),
        (b"\xff\xfe", "The body is not JSON"),
        ([1, 2], "must be a JSON object"),
        ({**BOB, "from": ""}, "'from' is required"),
        ({k: v for k, v in BOB.items() if k != "to"}, "'to' is required"),
        ({**BOB, "text": "", "html": ""}, "'text' or 'html' is required"),
        ({**BOB, "subject": 42}, "'subject' must be a string"),
        ({**BOB, "from": "not an address"}, "'from' is not an email address"),
        ({**BOB, "subject": "x\r\nBcc: evil@example.com"}, "may not contain line breaks"),
    ],
)
def test_malformed_requests_get_400_with_a_json_error(client, secret, body, error):
    response = post(client, body, X_Countersign_Secret=secret)
    assert response.status_code == 400
    assert error in response.json()["error"]
    assert not Ticket.objects.exists()


def test_get_is_refused(client, secret):
    response = client.get(URL, headers={"X-Countersign-Secret": secret})
    assert response.status_code == 405


def test_csrf_does_not_apply(secret):
    from django.test import Client

    response = post(Client(enforce_csrf_checks=True), BOB, X_Countersign_Secret=secret)
    assert response.status_code == 201
