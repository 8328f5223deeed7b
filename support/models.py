"""Tickets and the mail that makes them.

A ticket is one conversation with one customer; its messages are the mail in and out, each
kept with its raw source so nothing a customer sent is ever lost. Statuses change only in
`support.services` (compare-and-set, with an audit row). Mail that cannot be read at all is
kept as a `RejectedEmail` with the reason.
"""

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
