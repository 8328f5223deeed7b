"""The engine's webhooks: Slack interactions (Approve / Reject on a proposal's notice)."""

from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from agents.integrations.slack import SlackRequestRejected, request_verify
from agents.interactions import interaction_payload, slack_interaction_receive


@csrf_exempt  # Slack posts here, signed with the app's signing secret instead of a session
@require_POST
def slack_interactions(request: HttpRequest) -> JsonResponse:
    """Verify a Slack interaction (signature and timestamp), then record and queue it once."""
    if not settings.SLACK_SIGNING_SECRET:
        return JsonResponse(
            {"text": "Deciding from Slack is not configured (SLACK_SIGNING_SECRET)."}, status=403
        )
    try:
        request_verify(
            signing_secret=settings.SLACK_SIGNING_SECRET,
            body=request.body,
            timestamp=request.headers.get("X-Slack-Request-Timestamp", ""),
            signature=request.headers.get("X-Slack-Signature", ""),
        )
    except SlackRequestRejected as error:
        return JsonResponse({"text": f"{error} Nothing changed."}, status=401)
    try:
        payload = interaction_payload(request.POST)
    except (ValueError, json.JSONDecodeError) as error:
        return JsonResponse({"text": f"The interaction could not be read: {error}"}, status=400)
    status, body = slack_interaction_receive(payload=payload)
    return JsonResponse(body, status=status)
