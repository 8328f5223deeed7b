"""Refunds in the console: the approval queue and the review page where a person decides.

The refund service enforces every rule (permission, open status, amount, two people above the
threshold); these pages show the evidence, offer only what the person may do, and turn the
service's refusals into messages.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from agents.selectors import json_pretty, tool_call_conversation
from agents.services.errors import InvalidTransition
from support.admin.common import ReadOnlyMixin
from support.admin.forms import EDIT, REJECT, RefundDecisionForm, cents_to_text
from support.models import Refund
from support.payments.types import money
from support.selectors import (
    customer_payments_get,
    refund_get,
    refund_list_of_customer,
    refund_queue_list,
    ticket_messages,
)
from support.services.refunds import PERMISSION, refund_approve, refund_reject

R = Refund.Status


def refund_can_decide(*, user: Any) -> bool:
    return bool(user.is_active and user.has_perm(PERMISSION))


def refund_money(refund: Refund, cents: int | None = None) -> str:
    return money(refund.amount if cents is None else cents, refund.currency or "usd")


@admin.register(Refund)
class RefundAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "amount_shown",
        "customer_email",
        "ticket_link",
        "status",
        "provider_refund_id",
        "review_link",
    )
    list_display_links = None
    list_filter = ("status", "gateway", "created_at")
    list_select_related = ("ticket",)
    search_fields = ("customer_email", "charge_id", "provider_refund_id", "ticket__subject")
    date_hierarchy = "created_at"
    change_list_template = "support/refund_change_list.html"

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Approvers see what they decide on, without the right to browse other logs.
        return super().has_view_permission(request, obj) or refund_can_decide(user=request.user)

    @admin.display(description="amount", ordering="amount")
    def amount_shown(self, refund: Refund) -> str:
        if refund.amount != refund.amount_proposed:
            proposed = refund_money(refund, refund.amount_proposed)
            return f"{refund_money(refund)} (Claude proposed {proposed})"
        return refund_money(refund)

    @admin.display(description="ticket", ordering="ticket")
    def ticket_link(self, refund: Refund) -> str:
        url = reverse("admin:support_ticket_change", args=[refund.ticket_id])
        return format_html('<a href="{}">#{} {}</a>', url, refund.ticket_id, refund.ticket.subject)

    @admin.display(description="")
    def review_link(self, refund: Refund) -> str:
        url = reverse("admin:support_refund_review", args=[refund.pk])
        return format_html('<a class="button" href="{}">Review</a>', url)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        extra = {"queue_count": refund_queue_list().count(), **(extra_context or {})}
        return super().changelist_view(request, extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # One page per refund: the review page, with its evidence and decisions.
        return HttpResponseRedirect(reverse("admin:support_refund_review", args=[object_id]))

    def get_urls(self):
        urls = [
            path(
                "queue/",
                self.admin_site.admin_view(self.queue_view),
                name="support_refund_queue",
            ),
            path(
                "<int:refund_id>/review/",
                self.admin_site.admin_view(self.review_view),
                name="support_refund_review",
            ),
        ]
        return urls + super().get_urls()

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {**self.admin_site.each_context(request), "opts": self.opts, "title": title, **extra}

    def queue_view(self, request: HttpRequest) -> HttpResponse:
        """List the refunds waiting for a person, oldest first."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        page = Paginator(refund_queue_list(), 50).get_page(request.GET.get("p"))
        now = timezone.now()
        can_decide = refund_can_decide(user=request.user)
        rows = [
            {
                "refund": refund,
                "age": now - refund.created_at,
                "amount": refund_money(refund),
                "edited": refund.amount != refund.amount_proposed,
                "proposed": refund_money(refund, refund.amount_proposed),
                "soft_failed": [c for c in refund.checks if not c.get("passed")],
                "mine_first": refund.first_approved_by_id == request.user.pk,
            }
            for refund in page.object_list
        ]
        context = self._context(
            request, "Refunds awaiting a decision", page=page, rows=rows, can_decide=can_decide
        )
        return TemplateResponse(request, "support/refund_queue.html", context)

    def review_view(self, request: HttpRequest, refund_id: int) -> HttpResponse:
        """Show one refund with its evidence; approve, edit the amount then approve, or reject."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            refund = refund_get(refund_id=refund_id)
        except Refund.DoesNotExist:
            return self._missing(request, refund_id)
        form = RefundDecisionForm(currency=refund.currency)
        if request.method == "POST":
            if not refund_can_decide(user=request.user):
                raise PermissionDenied
            form = RefundDecisionForm(request.POST, currency=refund.currency)
            if form.is_valid():
                return self._decide(request, refund, form.cleaned_data)
        return TemplateResponse(
            request, "support/refund_review.html", self._review_context(request, refund, form)
        )

    def _missing(self, request: HttpRequest, refund_id: int) -> HttpResponse:
        messages.error(request, f"There is no refund #{refund_id}.")
        return HttpResponseRedirect(reverse("admin:support_refund_queue"))

    def _review_context(
        self, request: HttpRequest, refund: Refund, form: RefundDecisionForm
    ) -> dict[str, Any]:
        call = refund.tool_call
        ticket = refund.ticket
        can_decide = refund_can_decide(user=request.user)
        is_open = refund.status in Refund.OPEN
        second = refund.status == R.AWAITING_SECOND_APPROVAL
        mine_first = second and refund.first_approved_by_id == request.user.pk
        hard_failed = [c for c in refund.checks if c.get("hard") and not c.get("passed")]
        limit = min(refund.refundable_at_proposal or 0, settings.SUPPORT_REFUND_MAX_CENTS)
        submitted = form.data if form.is_bound else {}
        return self._context(
            request,
            f"Review refund #{refund.pk}",
            refund=refund,
            ticket=ticket,
            call=call,
            amount=refund_money(refund),
            amount_proposed=refund_money(refund, refund.amount_proposed),
            limit=refund_money(refund, limit),
            refundable=(
                refund_money(refund, refund.refundable_at_proposal)
                if refund.refundable_at_proposal is not None
                else "unknown"
            ),
            amount_text=(
                submitted.get("amount")
                if submitted.get("action") == EDIT
                else cents_to_text(refund.amount, refund.currency or "usd")
            ),
            currency=(refund.currency or "usd").upper(),
            expires_at=refund.created_at + timedelta(hours=settings.SUPPORT_REFUND_EXPIRY_HOURS),
            input_json=json_pretty(call.input_proposed),
            executed_json=(
                json_pretty(call.input_executed) if call.input_executed is not None else ""
            ),
            conversation=tool_call_conversation(tool_call=call),
            thread=list(ticket_messages(ticket_id=ticket.pk).defer("raw")),
            payments=customer_payments_get(email=ticket.customer_email),
            earlier=list(
                refund_list_of_customer(customer_email=ticket.customer_email, exclude_id=refund.pk)[
                    :20
                ]
            ),
            checks=refund.checks,
            hard_failed=hard_failed,
            can_decide=can_decide,
            is_open=is_open,
            can_approve=can_decide and is_open and not mine_first,
            can_edit=can_decide and refund.status == R.PROPOSED,
            can_reject=can_decide and is_open,
            mine_first=mine_first,
            needs_two=refund.needs_second_approval,
            threshold=refund_money(refund, settings.SUPPORT_TWO_PERSON_THRESHOLD_CENTS),
            in_flight=refund.status in (R.APPROVED, R.SUBMITTING),
            form=form,
        )

    def _decide(self, request: HttpRequest, refund: Refund, data: dict[str, Any]) -> HttpResponse:
        here = HttpResponseRedirect(reverse("admin:support_refund_review", args=[refund.pk]))
        action = data["action"]
        try:
            if action == REJECT:
                refund_reject(refund_id=refund.pk, user=request.user, reason=data["reason"])
                messages.success(
                    request, f"Refund #{refund.pk} rejected; no money moves and Claude is told why."
                )
                return here
            amount = data["amount_cents"] if action == EDIT else None
            refund = refund_approve(
                refund_id=refund.pk, user=request.user, amount=amount, note=data["note"]
            )
        except PermissionDenied as error:
            messages.error(request, f"Nothing was changed: {error}")
            return here
        except InvalidTransition as error:
            messages.error(request, f"Nothing was changed: {error}")
            return here
        shown = refund_money(refund)
        if refund.status == R.AWAITING_SECOND_APPROVAL:
            messages.success(
                request,
                f"Your approval of {shown} is recorded. Above "
                f"{refund_money(refund, settings.SUPPORT_TWO_PERSON_THRESHOLD_CENTS)} a second, "
                "different person must approve before any money moves.",
            )
        else:
            edited = f" (edited from {refund_money(refund, refund.amount_proposed)})"
            messages.success(
                request,
                f"Approved a refund of {shown} = {refund.amount} cents"
                f"{edited if refund.amount != refund.amount_proposed else ''}. A worker sends it "
                "to the payments service now; reload this page to see the answer.",
            )
        return here
