"""The ticket page: the thread in and out, Claude's drafted replies, staff's own reply, refunds,
runs and confirmed addresses. Statuses change only through services; this page calls them."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from agents.admin.base import ScaleMixin
from agents.services.batches import batches_work_on_commit
from agents.services.errors import InvalidTransition
from support.admin.common import ReadOnlyMixin
from support.admin.forms import DISCARD, REQUEUE, SEND, SEND_EDITED, AliasForm, ReplyForm
from support.mail.trust import AUTH_FAILED, HIDDEN_HTML, warned_messages
from support.models import CustomerAlias, Message, RejectedEmail, ReplyDraft, Ticket
from support.selectors import ticket_drafts, ticket_messages, ticket_refunds, ticket_runs
from support.services.aliases import customer_alias_confirm
from support.services.backlog import TRIAGE_PERMISSION, tickets_triage_in_batch
from support.services.replies import (
    reply_can_send,
    reply_discard,
    reply_requeue,
    reply_send,
)

RAW_PREVIEW_CHARS = 20_000


def _same(text: str) -> str:
    """Text as a comparison sees it: browsers send textareas back with CRLF line ends."""
    return text.replace("\r\n", "\n").strip()


class MessageInline(ReadOnlyMixin, admin.StackedInline):
    model = Message
    extra = 0
    can_delete = False
    show_change_link = False
    verbose_name = "message"
    verbose_name_plural = "The thread, in and out (oldest first)"
    fields = (
        ("direction", "delivery", "source", "received_at", "sent_at"),
        ("from_name", "from_email"),
        "to",
        "cc",
        "subject",
        "warnings",
        "text",
        "attachment_list",
        ("message_id", "in_reply_to"),
        "references",
    )
    readonly_fields = (
        "direction",
        "delivery",
        "source",
        "received_at",
        "sent_at",
        "from_name",
        "from_email",
        "to",
        "cc",
        "subject",
        "warnings",
        "text",
        "attachment_list",
        "message_id",
        "in_reply_to",
        "references",
    )

    def get_queryset(self, request):
        # The raw source may be megabytes; an outgoing message's draft says how it went.
        return super().get_queryset(request).defer("raw").select_related("draft__sent_by")

    def has_view_permission(self, request, obj=None) -> bool:
        # The thread is part of the ticket: whoever may view tickets reads their messages.
        return request.user.has_perm("support.view_ticket")

    @admin.display(description="Delivery")
    def delivery(self, obj: Message) -> str:
        if obj.direction == Message.Direction.IN:
            return "received"
        draft = getattr(obj, "draft", None)
        if draft is None:
            return "sent"
        if draft.status == ReplyDraft.Status.SENT:
            by = draft.sent_by.get_username() if draft.sent_by else "?"
            return f"sent by {by} (reply #{draft.pk})"
        return f"sending may have failed: see reply #{draft.pk}"

    @admin.display(description="Warnings")
    def warnings(self, obj: Message) -> str:
        trust = (obj.trust_warnings or []) if obj.direction == Message.Direction.IN else []
        codes = {w.get("code") for w in trust}
        items = [w.get("message", "") for w in trust]
        # Mail stored before trust warnings existed still says what its flags say.
        if (obj.spf_failed or obj.dmarc_failed) and AUTH_FAILED not in codes:
            items.append(f"Sender authentication failed: {obj.auth_summary}")
        if obj.hidden_content_dropped and HIDDEN_HTML not in codes:
            items.append(f"Hidden HTML content was dropped:\n{obj.hidden_content_summary}")
        if obj.is_auto_reply:
            items.append(f"Auto-reply ({obj.auto_reply_reason})")
        if obj.html_converted:
            items.append("No text part: converted from HTML.")
        items += [f"Reading problem: {d}" for d in obj.defects]
        if not items:
            return "—"
        lines = format_html_join(
            "",
            '<div style="white-space:pre-wrap;overflow-wrap:anywhere">{}</div>',
            ((i,) for i in items[: len(trust)]),
        )
        rest = format_html_join(
            "",
            '<div style="white-space:pre-wrap;overflow-wrap:anywhere">{}</div>',
            ((i,) for i in items[len(trust) :]),
        )
        if trust:
            lines = format_html(
                '<div class="cs-trust-inline"><span class="cs-badge cs-standin">read with care'
                "</span>{}</div>",
                lines,
            )
        return format_html("{}{}", lines, rest)

    @admin.display(description="Attachments (listed, not kept)")
    def attachment_list(self, obj: Message) -> str:
        if not obj.attachments:
            return "—"
        return format_html_join(
            "",
            "<div>{} ({}, {} bytes)</div>",
            (
                (a.get("filename") or "(no name)", a.get("content_type"), a.get("size"))
                for a in obj.attachments
            ),
        )


@admin.register(Ticket)
class TicketAdmin(ScaleMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "subject",
        "customer_email",
        "status",
        "messages_count",
        "flags",
        "created_at",
    )
    list_display_links = ("id", "subject")
    # A date filter rather than a date hierarchy: the hierarchy lists the months that hold
    # tickets with a DISTINCT over every ticket.
    list_filter = ("status", "spf_failed", "dmarc_failed", "hidden_content_dropped", "created_at")
    search_fields = ("subject", "customer_email", "customer_name")
    readonly_fields = (
        "customer_email",
        "customer_name",
        "subject",
        "status",
        "status_reason",
        "sender_check",
        "hidden_content",
        "created_at",
        "updated_at",
    )
    # Shown as words by sender_check and hidden_content: a "False" cross read as an alarm.
    exclude = ("spf_failed", "dmarc_failed", "hidden_content_dropped")
    inlines = [MessageInline]
    change_form_template = "support/ticket_change_form.html"
    actions = ["triage_in_batch"]

    def get_queryset(self, request):
        # Counted per shown row: a join and GROUP BY would count every ticket's mail first.
        counted = (
            Message.objects.filter(ticket=OuterRef("pk"))
            .order_by()
            .values("ticket")
            .annotate(n=Count("*"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(_messages=Coalesce(Subquery(counted, output_field=IntegerField()), 0))
        )

    # --- the ticket page: replies, refunds, runs, aliases ------------------------------------

    def get_urls(self):
        urls = [
            path(
                "<int:ticket_id>/reply/",
                self.admin_site.admin_view(self.reply_view),
                name="support_ticket_reply",
            ),
            path(
                "<int:ticket_id>/alias/",
                self.admin_site.admin_view(self.alias_view),
                name="support_ticket_alias",
            ),
        ]
        return urls + super().get_urls()

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            drafts = list(ticket_drafts(ticket_id=obj.pk))
            thread = ticket_messages(ticket_id=obj.pk).only(
                "pk", "direction", "from_email", "subject", "received_at", "trust_warnings"
            )
            context.update(
                warned=warned_messages(thread),
                open_drafts=[d for d in drafts if d.status != ReplyDraft.Status.DISCARDED],
                discarded=[d for d in drafts if d.status == ReplyDraft.Status.DISCARDED],
                refunds=list(ticket_refunds(ticket_id=obj.pk)),
                runs=list(ticket_runs(ticket_id=obj.pk)),
                aliases=list(
                    CustomerAlias.objects.filter(ticket=obj).select_related("confirmed_by")
                ),
                can_send=reply_can_send(user=request.user),
                can_alias=request.user.has_perm("support.add_customeralias"),
                reply_url=reverse("admin:support_ticket_reply", args=[obj.pk]),
                alias_url=reverse("admin:support_ticket_alias", args=[obj.pk]),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _back(self, ticket_id: int, anchor: str = "replies") -> HttpResponseRedirect:
        url = reverse("admin:support_ticket_change", args=[ticket_id])
        return HttpResponseRedirect(f"{url}#{anchor}")

    def reply_view(self, request: HttpRequest, ticket_id: int) -> HttpResponse:
        """Send a draft as is or edited, discard it, or send staff's own reply."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        ticket = get_object_or_404(Ticket, pk=ticket_id)
        if not (self.has_view_permission(request, ticket) and reply_can_send(user=request.user)):
            raise PermissionDenied
        form = ReplyForm(request.POST)
        if not form.is_valid():
            errors = "; ".join(e for field in form.errors.values() for e in field)
            messages.error(request, f"Nothing was sent: {errors}")
            return self._back(ticket.pk)
        data = form.cleaned_data
        draft_id = data.get("draft")
        if draft_id:
            draft = get_object_or_404(ReplyDraft, pk=draft_id, ticket=ticket)
            if data["action"] == SEND and data["body"] and _same(data["body"]) != _same(draft.body):
                messages.error(
                    request,
                    f"Nothing was sent: you changed reply #{draft.pk}'s text. Use “Send edited” "
                    "to send your version, or reload the page to send Claude's as is.",
                )
                return self._back(ticket.pk)
        try:
            if data["action"] == DISCARD:
                reply_discard(draft_id=draft_id, user=request.user)
                messages.success(request, f"Reply #{draft_id} discarded; nothing was sent.")
            elif data["action"] == REQUEUE:
                reply_requeue(draft_id=draft_id, user=request.user)
                messages.success(request, f"Reply #{draft_id} queued again.")
            else:
                body = data["body"] if data["action"] == SEND_EDITED or not draft_id else None
                if draft_id:
                    draft = reply_send(draft_id=draft_id, user=request.user, body=body)
                else:
                    draft = reply_send(ticket_id=ticket.pk, user=request.user, body=body)
                messages.success(
                    request,
                    f"Reply #{draft.pk} to {ticket.customer_email} is queued; a worker sends it "
                    "now. Reload to see it in the thread.",
                )
        except InvalidTransition as error:
            messages.error(request, f"Nothing was changed: {error}")
        except PermissionDenied as error:
            messages.error(request, str(error))
        return self._back(ticket.pk)

    def alias_view(self, request: HttpRequest, ticket_id: int) -> HttpResponse:
        """Confirm that another address, exactly as written, is this ticket's customer."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        ticket = get_object_or_404(Ticket, pk=ticket_id)
        if not (
            self.has_view_permission(request, ticket)
            and request.user.has_perm("support.add_customeralias")
        ):
            raise PermissionDenied
        form = AliasForm(request.POST)
        if form.is_valid():
            alias = customer_alias_confirm(
                ticket_id=ticket.pk, email=form.cleaned_data["email"], user=request.user
            )
            messages.success(
                request, f"{alias.email!r} is confirmed as this customer's address too."
            )
        else:
            messages.error(request, "Give the address to confirm.")
        return self._back(ticket.pk, "aliases")

    # --- backlog mode ---------------------------------------------------------------------

    def has_triage_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(TRIAGE_PERMISSION)

    @admin.action(
        description="Triage in a batch (half price, within hours)", permissions=["triage"]
    )
    def triage_in_batch(self, request: HttpRequest, queryset) -> None:
        try:
            report = tickets_triage_in_batch(
                ticket_ids=list(queryset.values_list("pk", flat=True)), actor=request.user
            )
        except (InvalidTransition, PermissionDenied) as error:
            self.message_user(request, str(error), messages.ERROR)
            return
        if report.held:
            batches_work_on_commit()  # a worker submits the batch, never this request
        self.message_user(
            request, report.describe(), messages.SUCCESS if report.held else messages.WARNING
        )

    @admin.display(description="Messages", ordering="_messages")
    def messages_count(self, obj: Ticket) -> int:
        return obj._messages

    @admin.display(description="Sender authentication")
    def sender_check(self, obj: Ticket) -> str:
        """Red only for a real failure: "SPF failed: no" drawn as a red cross read as an alarm."""
        failed = [n for n, bad in (("SPF", obj.spf_failed), ("DMARC", obj.dmarc_failed)) if bad]
        if failed:
            return format_html(
                '<span class="cs-badge cs-error">{} failed</span>', " and ".join(failed)
            )
        return "No failure reported"

    @admin.display(description="Hidden HTML")
    def hidden_content(self, obj: Ticket) -> str:
        if obj.hidden_content_dropped:
            return format_html('<span class="cs-badge cs-error">{}</span>', "hidden text dropped")
        return "None found"

    @admin.display(description="Flags")
    def flags(self, obj: Ticket) -> str:
        flags = [
            label
            for label, on in (
                ("SPF failed", obj.spf_failed),
                ("DMARC failed", obj.dmarc_failed),
                ("hidden content dropped", obj.hidden_content_dropped),
            )
            if on
        ]
        return ", ".join(flags) or "—"


@admin.register(RejectedEmail)
class RejectedEmailAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("created_at", "source", "reason", "attempts", "last_seen_at")
    list_filter = ("source",)
    readonly_fields = (
        "source",
        "reason",
        "digest",
        "attempts",
        "created_at",
        "last_seen_at",
        "raw_preview",
    )
    exclude = ("raw",)

    @admin.display(description="Raw message (as text)")
    def raw_preview(self, obj: RejectedEmail) -> str:
        text = bytes(obj.raw).decode("utf-8", errors="replace")[:RAW_PREVIEW_CHARS]
        return format_html('<pre style="white-space:pre-wrap">{}</pre>', text)
