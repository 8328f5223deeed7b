"""Durable agent runs and the append-only audit log.

`ToolCall`, `ModelCall` and `AuditEvent` are audit rows. Database triggers (migration 0002)
refuse every DELETE on them and every UPDATE that rewrites a recorded fact; a tool call's
later facts (decision, result, times) may only be filled in once, from empty.
"""

import uuid

from django.conf import settings
from django.db import models


class AppendOnlyQuerySet(models.QuerySet):
    def delete(self):
        raise AuditImmutable(f"{self.model.__name__} rows are append-only and cannot be deleted.")


class AuditImmutable(Exception):
    """Raised when code tries to delete or rewrite an audit row."""


class AgentRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        ESCALATED = "escalated", "Escalated"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.COMPLETED, Status.FAILED, Status.ESCALATED, Status.CANCELLED)

    toolset = models.CharField(max_length=64, db_index=True)
    prompt_name = models.CharField(max_length=64)
    prompt_version = models.PositiveIntegerField()
    system = models.TextField(help_text="The system prompt exactly as sent.")
    model = models.CharField(max_length=100)
    backend = models.CharField(max_length=16, help_text="anthropic or replay")
    max_tokens = models.PositiveIntegerField()
    messages = models.JSONField(default=list, help_text="The message list as sent and received.")
    status = models.CharField(max_length=24, choices=Status, default=Status.QUEUED, db_index=True)
    status_reason = models.TextField(blank=True)
    # `step` counts model-call slots: a step task carries the step it was queued for and does
    # nothing when the run has moved on, so a duplicated delivery cannot call the model twice.
    step = models.PositiveIntegerField(default=0)
    turns = models.PositiveIntegerField(default=0)
    claim_token = models.UUIDField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Failed model calls in a row.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_stop_reason = models.CharField(max_length=40, blank=True)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cache_read_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    subject_type = models.CharField(
        max_length=64, blank=True, help_text="What the run is about, e.g. support.ticket."
    )
    subject_id = models.CharField(max_length=64, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["subject_type", "subject_id"])]
        permissions = [("cancel_agentrun", "Can cancel an agent run")]

    def __str__(self) -> str:
        return f"Run #{self.pk} ({self.toolset})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class ToolCall(models.Model):
    """One tool_use block Claude sent, and everything that happened to it."""

    class Status(models.TextChoices):
        INVALID = "invalid", "Invalid input"
        PREPARING = "preparing", "Checking before review"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        QUEUED = "queued", "Queued to run"
        EXECUTING = "executing", "Executing"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        REJECTED = "rejected", "Rejected"
        BLOCKED = "blocked", "Blocked by policy"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"

    ANSWERED = (
        Status.INVALID,
        Status.SUCCEEDED,
        Status.FAILED,
        Status.REJECTED,
        Status.BLOCKED,
        Status.EXPIRED,
        Status.CANCELLED,
    )
    WAITING = (Status.PREPARING, Status.AWAITING_APPROVAL)

    class Decision(models.TextChoices):
        AUTO = "auto", "No approval needed"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        BLOCKED = "blocked", "Blocked by policy"
        EXPIRED = "expired", "Expired"

    run = models.ForeignKey(AgentRun, on_delete=models.PROTECT, related_name="tool_calls")
    tool_use_id = models.CharField(max_length=100, unique=True)
    turn = models.PositiveIntegerField(help_text="The run's turn whose reply asked for this call.")
    position = models.PositiveSmallIntegerField(help_text="Order of the block in the reply.")
    tool_name = models.CharField(max_length=64, db_index=True)
    input_proposed = models.JSONField(help_text="The input exactly as Claude proposed it.")
    validation_errors = models.JSONField(null=True, blank=True)
    requires_approval = models.BooleanField()
    checks = models.JSONField(
        null=True, blank=True, help_text="Policy checks run before review: name, passed, detail."
    )
    approval_permission = models.CharField(max_length=128, blank=True)
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    status = models.CharField(max_length=24, choices=Status, db_index=True)
    input_executed = models.JSONField(
        null=True, blank=True, help_text="Set when a reviewer edited the input before approving."
    )
    decision = models.CharField(max_length=16, choices=Decision, null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the current execution attempt started."
    )
    result = models.JSONField(null=True, blank=True, help_text="The tool_result content sent back.")
    is_error = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["run", "turn", "position"])]

    def __str__(self) -> str:
        return f"{self.tool_name} ({self.tool_use_id})"

    def delete(self, *args, **kwargs):
        raise AuditImmutable("Tool calls are append-only and cannot be deleted.")

    @property
    def effective_input(self) -> dict:
        return self.input_executed if self.input_executed is not None else self.input_proposed

    @property
    def is_answered(self) -> bool:
        return self.status in self.ANSWERED


class ModelCall(models.Model):
    """One Messages API request and what came of it."""

    run = models.ForeignKey(AgentRun, on_delete=models.PROTECT, related_name="model_calls")
    step = models.PositiveIntegerField()
    backend = models.CharField(max_length=16)
    model = models.CharField(max_length=100)
    request_id = models.CharField(max_length=100, blank=True)
    message_id = models.CharField(max_length=100, blank=True)
    stop_reason = models.CharField(max_length=40, blank=True)
    error = models.TextField(blank=True)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cache_read_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    response = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Model call {self.request_id or self.pk}"

    def delete(self, *args, **kwargs):
        raise AuditImmutable("Model calls are append-only and cannot be deleted.")


class AuditEvent(models.Model):
    """A decision or state change, by a person or the system; written once."""

    run = models.ForeignKey(
        AgentRun, null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )
    tool_call = models.ForeignKey(
        ToolCall, null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )
    kind = models.CharField(max_length=64, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    subject_type = models.CharField(max_length=64, blank=True)
    subject_id = models.CharField(max_length=64, blank=True)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["subject_type", "subject_id"])]

    def __str__(self) -> str:
        return f"{self.kind} at {self.created_at:%Y-%m-%d %H:%M:%S}"

    def delete(self, *args, **kwargs):
        raise AuditImmutable("Audit events are append-only and cannot be deleted.")
