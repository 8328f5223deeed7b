"""Webhooks: inbound mail (JSON, shared secret) and Stripe events (signed raw body)."""

from __future__ import annotations

import hmac
import json
import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from support.integrations.stripe import webhook_event_verify
from support.mail.build import email_from_fields
from support.mail.errors import InvalidEmail
from support.models import Message
from support.payments import WebhookRejected
from support.services import Outcome, ticket_ingest_email
from support.services.refunds import refund_reconcile_event

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Countersign-Secret"


@csrf_exempt  # a machine posts here, with the shared secret instead of a session
@require_POST
def inbound_email(request: HttpRequest) -> JsonResponse:
    """Take {from, to, subject, text, html, message_id, in_reply_to} and ingest it as mail."""
    if not _secret_ok(request):
        return JsonResponse({"error": "A valid shared secret is required."}, status=403)
    try:
        fields = json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return JsonResponse({"error": f"The body is not JSON: {error}"}, status=400)
    try:
        raw = email_from_fields(fields)
    except InvalidEmail as error:
        return JsonResponse({"error": str(error)}, status=400)
    result = ticket_ingest_email(raw=raw, source=Message.Source.WEBHOOK)
    if result.outcome == Outcome.REJECTED:
        return JsonResponse({"error": result.reason}, status=400)
    return JsonResponse(
        {
            "outcome": str(result.outcome),
            "ticket": result.ticket_id,
            "message": result.message_pk,
            "message_id": result.message_id,
            "auto_reply": bool(result.auto_reply),
        },
        status=201 if result.outcome == Outcome.CREATED else 200,
    )


def _secret_ok(request: HttpRequest) -> bool:
    expected = settings.INBOUND_EMAIL_SECRET
    if not expected:
        return False  # no secret configured: the endpoint refuses everything
    given = request.headers.get(SECRET_HEADER, "")
    if not given:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else ""
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


@csrf_exempt  # Stripe signs the raw body instead
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """Reconcile refunds from Stripe's signed events; anything unsigned is refused."""
    try:
        event = webhook_event_verify(request.body, request.headers.get("Stripe-Signature", ""))
    except WebhookRejected as error:
        logger.warning("stripe webhook refused: %s", error)
        return JsonResponse({"error": str(error)}, status=400)
    return JsonResponse({"ok": True, "applied": refund_reconcile_event(event=event)})
