"""GitHub's webhook: a signed pull_request event marks a patch's pull request merged or closed."""

from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from sre.integrations.github import WebhookRejected, webhook_verify
from sre.services.patches import patch_pull_request_closed


@csrf_exempt  # GitHub posts here, signing the raw body instead of a session
@require_POST
def github_webhook(request: HttpRequest) -> JsonResponse:
    """Verify X-Hub-Signature-256, then apply a closed pull_request event to its patch."""
    try:
        webhook_verify(
            body=request.body,
            signature=request.headers.get("X-Hub-Signature-256", ""),
            secret=settings.GITHUB_WEBHOOK_SECRET,
        )
    except WebhookRejected as error:
        return JsonResponse({"error": str(error)}, status=403)
    event = request.headers.get("X-GitHub-Event", "")
    try:
        payload = json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return JsonResponse({"error": f"The body is not JSON: {error}"}, status=400)
    if event != "pull_request" or payload.get("action") != "closed":
        return JsonResponse({"done": f"ignored {event} {payload.get('action', '')}".strip()})
    pull = payload.get("pull_request") or {}
    patch = patch_pull_request_closed(
        number=int(pull.get("number") or 0),
        head=str((pull.get("head") or {}).get("ref", "")),
        merged=bool(pull.get("merged")),
    )
    if patch is None:
        return JsonResponse({"done": "not ours"})
    return JsonResponse({"done": f"patch #{patch.pk} {patch.status}"})
