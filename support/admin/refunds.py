"""Refunds in the console: a read-only list; deciding happens on the engine's review page.

The refund queue is the inbox filtered to refunds, and a refund's page is its proposal's
review page: there is one place where refunds are decided, so there is one set of rules.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from agents.admin.base import (
    FixedChoicesFilter,
    IndexedSearchMixin,
    ScaleMixin,
    seconds,
    url_pk,
)
from support.admin.common import ReadOnlyMixin
from support.models import Refund
from support.payments.types import RefundStatus, money
from support.selectors import REFUND_RELATED
from support.services.refunds import PERMISSION

TOOL = "process_refund"


def refund_can_decide(*, user: Any) -> bool:
    return bool(user.is_active and user.has_perm(PERMISSION))


def refund_money(refund: Refund, cents: int | None = None) -> str:
    return money(refund.amount if cents is None else cents, refund.currency or "usd")


class GatewayFilter(FixedChoicesFilter):
    title = "gateway"
    parameter_name = "gateway"
    values = (("stripe", "Stripe"), ("sandbox", "Sandbox (no money moves)"))


class ProviderStatusFilter(FixedChoicesFilter):
    """Stripe's refund statuses."""

    title = "payments service says"
    parameter_name = "provider_status"
    values = tuple((status.value, status.value) for status in RefundStatus)


@admin.register(Refund)
class RefundAdmin(ScaleMixin, IndexedSearchMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "created_column",
        "amount_shown",
        "customer",
        "ticket_link",
        "state",
        "provider_refund_id",
        "review_link",
    )
    list_display_links = None
    # "created_at" as a filter, not a date hierarchy (see TicketAdmin).
    list_filter = ("tool_call__status", GatewayFilter, ProviderStatusFilter, "created_at")
    list_select_related = REFUND_RELATED
    search_fields = ("charge_id", "provider_refund_id")
    # Searched in the tickets, matched here by id: see IndexedSearchMixin.
    search_related = {"ticket": ("subject", "customer_email")}
    change_list_template = "support/refund_change_list.html"

    def get_queryset(self, request: HttpRequest):
        return (
            super()
            .get_queryset(request)
            .defer("tool_call__result")
            .prefetch_related("tool_call__proposal__approvals")
        )

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Approvers see what they decide on, without the right to browse other logs.
        return super().has_view_permission(request, obj) or refund_can_decide(user=request.user)

    @admin.display(description="amount")
    def amount_shown(self, refund: Refund) -> str:
        if refund.amount != refund.amount_proposed:
            proposed = refund_money(refund, refund.amount_proposed)
            return f"{refund_money(refund)} (Claude proposed {proposed})"
        return refund_money(refund)

    @admin.display(description="customer")
    def customer(self, refund: Refund) -> str:
        return refund.customer_email

    @admin.display(description="where it stands")
    def state(self, refund: Refund) -> str:
        return refund.get_status_display()

    @admin.display(description="ticket", ordering="ticket")
    def ticket_link(self, refund: Refund) -> str:
        url = reverse("admin:support_ticket_change", args=[refund.ticket_id])
        return format_html('<a href="{}">#{} {}</a>', url, refund.ticket_id, refund.ticket.subject)

    @admin.display(description="created", ordering="created_at")
    def created_column(self, refund: Refund) -> str:
        return seconds(refund.created_at)

    @admin.display(description="")
    def review_link(self, refund: Refund) -> str:
        url = reverse("admin:agents_toolcall_review", args=[refund.tool_call_id])
        label = "Review" if refund.is_open else "Open"
        return format_html(
            '<a class="button" style="white-space: nowrap" href="{}">{}</a>', url, label
        )

    def changelist_view(self, request: HttpRequest, extra_context=None):
        return super().changelist_view(request, {"title": "Refunds", **(extra_context or {})})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # One page per refund: its proposal's review page, with the evidence and decisions.
        return self._review(request, object_id)

    def get_urls(self):
        urls = [
            path(
                "queue/", self.admin_site.admin_view(self.queue_view), name="support_refund_queue"
            ),
            path(
                "<str:refund_id>/review/",
                self.admin_site.admin_view(self.review_view),
                name="support_refund_review",
            ),
        ]
        return urls + super().get_urls()

    def queue_view(self, request: HttpRequest) -> HttpResponse:
        """The refunds waiting for a person: the inbox, filtered to refunds."""
        return HttpResponseRedirect(reverse("admin:agents_toolcall_approvals") + f"?kind={TOOL}")

    def review_view(self, request: HttpRequest, refund_id: str) -> HttpResponse:
        return self._review(request, refund_id)

    def _review(self, request: HttpRequest, refund_id: str) -> HttpResponse:
        call_id = (
            Refund.objects.filter(pk=url_pk(refund_id))
            .values_list("tool_call_id", flat=True)
            .first()
        )
        if call_id is None:
            messages.error(request, f"There is no refund #{refund_id}.")
            return HttpResponseRedirect(reverse("admin:support_refund_changelist"))
        return HttpResponseRedirect(reverse("admin:agents_toolcall_review", args=[call_id]))
