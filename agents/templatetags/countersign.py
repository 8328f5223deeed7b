"""Template tags for the console's admin pages."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from agents.selectors import approvals_can_view, json_readable, proposal_pending_count

register = template.Library()


@register.simple_tag(takes_context=True)
def approvals_pending(context: template.Context) -> dict[str, Any] | None:
    """Return the approvals queue's link and size for this user, or None if they cannot see it."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not approvals_can_view(user=user):
        return None
    return {
        "count": proposal_pending_count(user=user),
        "url": reverse("admin:agents_toolcall_approvals"),
    }


@register.filter
def pretty_json(value: Any) -> str:
    """Format a JSON value for reading, indenting JSON held in a string too."""
    return json_readable(value)
