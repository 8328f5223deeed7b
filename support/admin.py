"""A basic, read-only ticket page with its thread; statuses change only through services."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count
from django.utils.html import format_html, format_html_join

from support.models import Message, RejectedEmail, Ticket

RAW_PREVIEW_CHARS = 20_000


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class MessageInline(ReadOnlyMixin, admin.StackedInline):
    model = Message
    extra = 0
    can_delete = False
    show_change_link = False
    fields = (
        ("direction", "source", "received_at", "sent_at"),
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
        return super().get_queryset(request).defer("raw")  # the raw source may be megabytes

    def has_view_permission(self, request, obj=None) -> bool:
        # The thread is part of the ticket: whoever may view tickets reads their messages.
        return request.user.has_perm("support.view_ticket")

    @admin.display(description="Warnings")
    def warnings(self, obj: Message) -> str:
        items = []
        if obj.spf_failed or obj.dmarc_failed:
            items.append(f"Sender authentication failed: {obj.auth_summary}")
        if obj.hidden_content_dropped:
            items.append(f"Hidden HTML content was dropped:\n{obj.hidden_content_summary}")
        if obj.is_auto_reply:
            items.append(f"Auto-reply ({obj.auto_reply_reason})")
        if obj.html_converted:
            items.append("No text part: converted from HTML.")
        items += [f"Reading problem: {d}" for d in obj.defects]
        if not items:
            return "—"
        return format_html_join(
            "", '<div style="white-space:pre-wrap">{}</div>', ((i,) for i in items)
        )

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
class TicketAdmin(ReadOnlyMixin, admin.ModelAdmin):
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
    list_filter = ("status", "spf_failed", "dmarc_failed", "hidden_content_dropped")
    search_fields = ("subject", "customer_email", "customer_name")
    date_hierarchy = "created_at"
    readonly_fields = (
        "customer_email",
        "customer_name",
        "subject",
        "status",
        "status_reason",
        "spf_failed",
        "dmarc_failed",
        "hidden_content_dropped",
        "created_at",
        "updated_at",
    )
    inlines = [MessageInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_messages=Count("messages"))

    @admin.display(description="Messages", ordering="_messages")
    def messages_count(self, obj: Ticket) -> int:
        return obj._messages

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
