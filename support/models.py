"""Tickets and the mail that makes them.

A ticket is one conversation with one customer; its messages are the mail in and out, each
kept with its raw source so nothing a customer sent is ever lost. Statuses change only in
`support.services` (compare-and-set, with an audit row). Mail that cannot be read at all is
kept as a `RejectedEmail` with the reason.
"""

import uuid

from django.conf import settings
from django.db import models


class Ticket(models.Model):
    class Status(models.TextChoices):
        NEW = "new", "New"
        TRIAGING = "triaging", "Triaging"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        WAITING_ON_CUSTOMER = "waiting_on_customer", "Waiting on customer"
        RESOLVED = "resolved", "Resolved"
        ESCALATED = "escalated", "Escalated"

    customer_email = models.CharField(
        max_length=320,
        db_index=True,
        help_text="The first message's From address exactly as decoded; never normalised.",
    )
    customer_name = models.CharField(max_length=200, blank=True)
    subject = models.CharField(max_length=998, blank=True)
    status = models.CharField(max_length=24, choices=Status, default=Status.NEW, db_index=True)
    status_reason = models.TextField(blank=True)
    spf_failed = models.BooleanField(
        default=False, help_text="A message in the thread failed SPF (fail or softfail)."
    )
    dmarc_failed = models.BooleanField(
        default=False, help_text="A message in the thread failed DMARC."
    )
    hidden_content_dropped = models.BooleanField(
        default=False, help_text="A message's HTML had hidden text, which was dropped."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Ticket #{self.pk}: {self.subject or '(no subject)'}"

    @property
    def auth_failed(self) -> bool:
        return self.spf_failed or self.dmarc_failed


class Message(models.Model):
    """One email in a ticket's thread, incoming or outgoing."""

    class Direction(models.TextChoices):
        IN = "in", "From the customer"
        OUT = "out", "To the customer"

    class Source(models.TextChoices):
        FILE = "file", "File (manage.py ingest_email)"
        IMAP = "imap", "IMAP mailbox"
        WEBHOOK = "webhook", "Inbound webhook"
        CONSOLE = "console", "Console"

    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="messages")
    direction = models.CharField(max_length=3, choices=Direction)
    source = models.CharField(max_length=16, choices=Source)
    # NULL for an outgoing draft that has not been sent; unique otherwise, so a message seen
    # twice is recognised.
    message_id = models.CharField(max_length=998, unique=True, null=True, blank=True)
    message_id_synthesized = models.BooleanField(
        default=False, help_text="The mail had no Message-ID; one was made from its digest."
    )
    in_reply_to = models.CharField(max_length=998, blank=True)
    references = models.TextField(blank=True, help_text="Message-IDs, space-separated.")
    from_email = models.CharField(max_length=320)
    from_name = models.CharField(max_length=200, blank=True)
    to = models.TextField(blank=True)
    cc = models.TextField(blank=True)
    subject = models.CharField(max_length=998, blank=True)
    text = models.TextField(blank=True, help_text="The body as text: what Claude and staff read.")
    html_converted = models.BooleanField(
        default=False, help_text="The mail had no text part; the text comes from its HTML."
    )
    hidden_content_dropped = models.BooleanField(default=False)
    hidden_content_summary = models.TextField(
        blank=True, help_text="What hidden HTML text was dropped, and why it counted as hidden."
    )
    attachments = models.JSONField(
        default=list, blank=True, help_text="[{filename, content_type, size}]; never the content."
    )
    is_auto_reply = models.BooleanField(default=False)
    auto_reply_reason = models.CharField(max_length=200, blank=True)
    spf_failed = models.BooleanField(default=False)
    dmarc_failed = models.BooleanField(default=False)
    auth_summary = models.CharField(
        max_length=500, blank=True, help_text="The receiving server's SPF, DKIM and DMARC results."
    )
    defects = models.JSONField(
        default=list, blank=True, help_text="Problems found while reading the mail."
    )
    raw = models.BinaryField(help_text="The message exactly as received (RFC 5322 bytes).")
    sent_at = models.DateTimeField(null=True, blank=True, help_text="The Date header.")
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["received_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_direction_display()}: {self.subject or '(no subject)'}"

    @property
    def raw_text(self) -> str:
        return bytes(self.raw).decode("utf-8", errors="replace")

    @property
    def auth_failed(self) -> bool:
        return self.spf_failed or self.dmarc_failed


class RejectedEmail(models.Model):
    """Mail that could not be read as a message, kept with the reason so nothing is lost."""

    source = models.CharField(max_length=16, choices=Message.Source)
    reason = models.TextField()
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the raw bytes.")
    raw = models.BinaryField()
    attempts = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Rejected email {self.digest[:12]} ({self.reason})"


class CustomerAlias(models.Model):
    """Another address a member of staff confirmed belongs to the ticket's customer."""

    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="aliases")
    email = models.CharField(max_length=320)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["ticket", "email"], name="support_alias_unique")
        ]

    def __str__(self) -> str:
        return self.email


class Refund(models.Model):
    """One refund Claude proposed, from its policy checks to Stripe's final word."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        BLOCKED = "blocked", "Blocked by policy"
        AWAITING_SECOND_APPROVAL = "awaiting_second_approval", "Awaiting a second approval"
        APPROVED = "approved", "Approved"
        SUBMITTING = "submitting", "Submitting"
        SUCCEEDED = "succeeded", "Succeeded"
        PENDING = "pending", "Pending at the bank"
        FAILED = "failed", "Failed"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"

    OPEN = (Status.PROPOSED, Status.AWAITING_SECOND_APPROVAL)
    IN_FLIGHT = (Status.APPROVED, Status.SUBMITTING, Status.PENDING)

    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="refunds")
    tool_call = models.OneToOneField(
        "agents.ToolCall", on_delete=models.PROTECT, related_name="refund"
    )
    customer_email = models.CharField(max_length=320, help_text="As Claude proposed it.")
    customer_id = models.CharField(max_length=100, blank=True)
    charge_id = models.CharField(max_length=100, blank=True, db_index=True)
    currency = models.CharField(max_length=3, blank=True)
    amount_proposed = models.PositiveIntegerField(help_text="Cents, as Claude proposed.")
    amount = models.PositiveIntegerField(help_text="Cents to refund (after any edit).")
    reason = models.TextField()
    stripe_reason = models.CharField(max_length=32)
    refundable_at_proposal = models.PositiveIntegerField(null=True, blank=True)
    checks = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=32, choices=Status, default=Status.PROPOSED, db_index=True)
    status_reason = models.TextField(blank=True)
    # Fixed before the first attempt: every retry sends the same key, so Stripe refunds once.
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    first_approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    first_approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    rejected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    rejected_at = models.DateTimeField(null=True, blank=True)
    reject_reason = models.TextField(blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    gateway = models.CharField(max_length=16, blank=True, help_text="stripe or sandbox")
    provider_refund_id = models.CharField(max_length=100, blank=True, db_index=True)
    provider_status = models.CharField(max_length=32, blank=True)
    failure_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        permissions = [("approve_refund", "Can approve or reject refunds")]

    def __str__(self) -> str:
        return f"Refund #{self.pk}: {self.amount / 100:.2f} {self.currency.upper()} ({self.status})"

    @property
    def needs_second_approval(self) -> bool:
        from django.conf import settings as django_settings

        return self.amount > django_settings.SUPPORT_TWO_PERSON_THRESHOLD_CENTS


class ReplyDraft(models.Model):
    """A reply to the customer, drafted by Claude or staff; a person sends it."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        DISCARDED = "discarded", "Discarded"

    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="drafts")
    body = models.TextField()
    drafted_by_run = models.ForeignKey(
        "agents.AgentRun", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status, default=Status.DRAFT, db_index=True)
    sent_body = models.TextField(blank=True, help_text="What was sent, after any edit.")
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    message = models.OneToOneField(
        Message, null=True, blank=True, on_delete=models.PROTECT, related_name="draft"
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        permissions = [("send_reply", "Can send replies to customers")]

    def __str__(self) -> str:
        return f"Reply to ticket #{self.ticket_id} ({self.status})"
