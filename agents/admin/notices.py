"""Notices (the console's own feed of what was posted or mailed), and Slack identities."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from agents.admin.base import ReadOnlyAdmin, short
from agents.models import Notice, SlackIdentity, SlackInteraction


@admin.register(Notice)
class NoticeAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "medium", "state", "proposal_link", "channel", "text_column")
    list_filter = ("medium", "state", "created_at")
    list_select_related = ("proposal",)
    search_fields = ("key", "text", "recipients")
    readonly_fields = (
        "key",
        "medium",
        "proposal_link",
        "channel",
        "recipients",
        "ts",
        "state",
        "shown",
        "text",
        "attempts",
        "error",
        "claimed_at",
        "posted_at",
        "created_at",
        "updated_at",
    )
    fields = readonly_fields

    @admin.display(description="proposal")
    def proposal_link(self, notice: Notice) -> str:
        if notice.proposal_id is None:
            return "—"
        url = reverse("admin:agents_toolcall_review", args=[notice.proposal_id])
        return format_html('<a href="{}">{}</a>', url, notice.proposal.summary or notice.key)

    @admin.display(description="message")
    def text_column(self, notice: Notice) -> str:
        return short(notice.text, 100) if notice.text else "—"


@admin.register(SlackIdentity)
class SlackIdentityAdmin(admin.ModelAdmin):
    """Staff link Slack users to Countersign users; a Slack button decides as that user."""

    list_display = ("slack_user_id", "user", "created_at")
    search_fields = ("slack_user_id", "user__username", "user__email")
    autocomplete_fields = ("user",)


@admin.register(SlackInteraction)
class SlackInteractionAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "kind", "action", "slack_user_id", "user", "tool_call", "outcome")
    list_filter = ("kind", "action", "created_at")
    list_select_related = ("user", "tool_call")
    search_fields = ("slack_user_id", "outcome", "trigger_id")
    readonly_fields = (
        "trigger_id",
        "kind",
        "action",
        "slack_user_id",
        "user",
        "tool_call",
        "reason",
        "outcome",
        "handled_at",
        "created_at",
    )
    fields = readonly_fields
