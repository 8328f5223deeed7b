"""The console's sidebar: the inbox, one click from every admin page."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from agents.selectors import approvals_can_view

register = template.Library()


@register.simple_tag(takes_context=True)
def inbox_url(context: dict[str, Any]) -> str:
    """The inbox's address for whoever may see it, else an empty string."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not approvals_can_view(user=user):
        return ""
    return reverse("admin:agents_toolcall_approvals")
