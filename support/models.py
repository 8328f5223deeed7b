"""Tickets and the mail that makes them.

A ticket is one conversation with one customer; its messages are the mail in and out, each
kept with its raw source so nothing a customer sent is ever lost. Statuses change only in
`support.services` (compare-and-set, with an audit row). Mail that cannot be read at all is
kept as a `RejectedEmail` with the reason.
"""

import uuid

from django.conf import settings
from django.db import models

from agents.models import ProposalRecord


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
    trust_warnings = models.JSONField(
        default=list,
        blank=True,
        help_text="[{code, message}]: why a reviewer should not take the mail at its word "
        "(Reply-To elsewhere, a misleading sender name, text and HTML parts that disagree, hidden "
        "HTML, failed sender authentication). Worked out when it arrived.",
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


class Refund(ProposalRecord):
    """What a proposed refund would refund, and what the payments service made of it.

    Where it stands (checking, waiting for one or two approvals, approved, sent, rejected,
    expired...) is its tool call's: the refund keeps no status column. `status` reads it in the
    support desk's words, with the payments service's last word once it was sent. The amount,
    address and reason are the call's input (as edited, if it was); the server adds the charge
    it picked, and the facts of the effect once it ran.
    """

    class Status(models.TextChoices):
        CHECKING = "checking", "Being checked"
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
        CANCELLED = "cancelled", "Cancelled"

    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="refunds")
    customer_id = models.CharField(max_length=100, blank=True)
    charge_id = models.CharField(max_length=100, blank=True, db_index=True)
    currency = models.CharField(max_length=3, blank=True)
    stripe_reason = models.CharField(max_length=32)
    refundable_at_proposal = models.PositiveIntegerField(null=True, blank=True)
    # Fixed before the first attempt: every retry sends the same key, so Stripe refunds once.
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    submitted_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    gateway = models.CharField(max_length=16, blank=True, help_text="stripe or sandbox")
    provider_refund_id = models.CharField(max_length=100, blank=True, db_index=True)
    provider_status = models.CharField(
        max_length=32, blank=True, help_text="The payments service's word: pending, succeeded..."
    )
    failure_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        permissions = [("approve_refund", "Can approve or reject refunds")]

    # Statuses of the payments service after which no money moves (or it moved back).
    PROVIDER_FAILED = ("failed", "canceled")

    def __str__(self) -> str:
        return f"Refund #{self.pk}: {self.amount / 100:.2f} {self.currency.upper()}"

    @property
    def input(self) -> dict:
        return self.tool_call.effective_input

    @property
    def amount(self) -> int:
        return self.input["amount"]

    @property
    def amount_proposed(self) -> int:
        return self.tool_call.input_proposed["amount"]

    @property
    def customer_email(self) -> str:
        return self.input["customer_email"]

    @property
    def reason(self) -> str:
        return self.input["reason"]

    @property
    def needs_second_approval(self) -> bool:
        from django.conf import settings as django_settings

        return self.amount > django_settings.SUPPORT_TWO_PERSON_THRESHOLD_CENTS

    @property
    def status(self) -> str:
        """Where it stands, read from its proposal; once sent, the payments service's word."""
        state = self.state
        if state == self.proposal.State.DONE:
            if self.provider_status in self.PROVIDER_FAILED:
                return self.Status.FAILED
            if self.provider_status in ("pending", "requires_action"):
                return self.Status.PENDING
            return self.Status.SUCCEEDED
        return _REFUND_STATES[state]

    def get_status_display(self) -> str:
        return self.Status(self.status).label


_REFUND_STATES = {
    "checking": Refund.Status.CHECKING,
    "waiting": Refund.Status.PROPOSED,
    "second_approval": Refund.Status.AWAITING_SECOND_APPROVAL,
    "approved": Refund.Status.APPROVED,
    "running": Refund.Status.SUBMITTING,
    "failed": Refund.Status.FAILED,
    "rejected": Refund.Status.REJECTED,
    "blocked": Refund.Status.BLOCKED,
    "expired": Refund.Status.EXPIRED,
    "cancelled": Refund.Status.CANCELLED,
}


class ReplyDraft(ProposalRecord):
    """A reply to the customer: Claude's proposal (reply_to_customer), or staff's own words.

    A reply Claude drafted is a proposal: whether it may go out is its tool call's (approved,
    edited then approved, or rejected), read through `state`. `status` says only how the
    delivery went: not sent yet, sending (claimed, outcome not yet recorded), sent. Staff's own
    replies have no tool call: the person who writes one is the one who countersigns it.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Not sent"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        DISCARDED = "discarded", "Discarded"

    tool_call = models.OneToOneField(
        "agents.ToolCall",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="support_replydraft",
    )
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
