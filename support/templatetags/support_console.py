"""Template tags for the support desk's console pages."""

from __future__ import annotations

from typing import Any

from django import template

from support.payments.types import money as money_text

register = template.Library()


@register.filter
def money(cents: Any, currency: str = "usd") -> str:
    """Integer cents as money: 4000|money:"usd" → $40.00."""
    if cents is None or cents == "":
        return "—"
    return money_text(int(cents), currency or "usd")
