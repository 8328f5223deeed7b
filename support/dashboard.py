"""The support desk's panel on the console's home page, and what its waiting refunds total."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, IntegerField, Q, QuerySet, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.urls import reverse

from agents.dashboard import Periods, panel_register, waiting_total_register
from agents.models import ToolCall
from support.models import Refund

# A refund's amount is its call's input as it ran (edited) or as proposed, in cents.
AMOUNT = Coalesce(
    Cast(KeyTextTransform("amount", "tool_call__input_executed"), IntegerField()),
    Cast(KeyTextTransform("amount", "tool_call__input_proposed"), IntegerField()),
)


def money(cents: int | None, currency: str) -> str:
    """Cents as money: "$40.00" for dollars, "500 JPY" for the others."""
    from support.admin.forms import cents_to_text  # the admin's own formatting, loaded late

    figure = cents_to_text(cents or 0, currency or "usd")
    if (currency or "usd").lower() == "usd":
        return f"${figure}"
    return f"{figure} {currency.upper()}"


def _totals(rows: Any) -> str:
    return " + ".join(money(r["total"], r["currency"]) for r in rows if r["total"] is not None)


def refunds_waiting_total(proposals: QuerySet) -> str:
    """What the waiting refunds would refund, per currency: one query."""
    rows = (
        Refund.objects.filter(tool_call_id__in=proposals.order_by().values("pk"))
        .order_by("currency")
        .values("currency")
        .annotate(total=Sum(AMOUNT))
    )
    return _totals(rows)


def refunds_context(*, user: Any, periods: Periods) -> dict[str, Any]:
    """Refunds sent to the payments service today and this week: how many, how much."""
    # Sent: the call ran and the payments service has not said it failed.
    sent = (
        Refund.objects.filter(
            tool_call__status=ToolCall.Status.SUCCEEDED,
            tool_call__finished_at__gte=periods.week,
        )
        .exclude(provider_status__in=Refund.PROVIDER_FAILED)
        .order_by("currency")
        .values("currency")
        .annotate(
            today_count=Count("pk", filter=Q(tool_call__finished_at__gte=periods.day)),
            today_total=Sum(AMOUNT, filter=Q(tool_call__finished_at__gte=periods.day)),
            week_count=Count("pk"),
            week_total=Sum(AMOUNT),
        )
    )
    rows = list(sent)
    changelist = reverse("admin:support_refund_changelist")
    return {
        "today_count": sum(r["today_count"] for r in rows),
        "today_total": _totals({"currency": r["currency"], "total": r["today_total"]} for r in rows)
        or money(0, "usd"),
        "week_count": sum(r["week_count"] for r in rows),
        "week_total": _totals({"currency": r["currency"], "total": r["week_total"]} for r in rows)
        or money(0, "usd"),
        "changelist": changelist,
    }


def register() -> None:
    """Register the support desk's panel and its refunds' waiting total with the engine."""
    waiting_total_register(tool_name="process_refund", total=refunds_waiting_total)
    panel_register(
        name="refunds",
        template="support/dashboard/_refunds.html",
        context=refunds_context,
        order=30,
        permission="support.view_refund",
    )
