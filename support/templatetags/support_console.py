"""Template tags for the support desk's console pages."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from support.payments.types import money as money_text
from support.selectors import refund_pending_count

register = template.Library()


@register.simple_tag(takes_context=True)
def refunds_pending(context: template.Context) -> dict[str, Any] | None:
    """The refund queue's link and size, or None for someone who may not see it."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_active or not user.is_staff:
        return None
    if not (user.has_perm("support.approve_refund") or user.has_perm("support.view_refund")):
        return None
    return {"count": refund_pending_count(), "url": reverse("admin:support_refund_queue")}


@register.filter
def money(cents: Any, currency: str = "usd") -> str:
    """Integer cents as money: 4000|money:"usd" → $40.00."""
    if cents is None or cents == "":
        return "—"
    return money_text(int(cents), currency or "usd")
