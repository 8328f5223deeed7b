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
        # Its model call waits in a Message Batch (agents/services/batches.py): no step task
        # and no sweep takes it until the batch answers or its time runs out.
        BATCHED = "batched", "Waiting for its batch"
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
    def tokens_in(self) -> int:
        """Every input token, sent plain or read from or written to the prompt cache."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def cache_read_fraction(self) -> float:
        """The share of the input Claude read from the prompt cache (cheaper and faster)."""
        total = self.input_tokens + self.cache_read_tokens + self.cache_write_tokens
        return self.cache_read_tokens / total if total else 0.0

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
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="After a transient failure: when to try again."
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


class Proposal(models.Model):
    """A consequential call while people decide on it: the engine's record beside its ToolCall.

    The ToolCall is append-only and holds the lifecycle (`status`); this row holds what changes
    while people decide: the latest checks and when they ran, how many approvals are needed, the
    inbox's summary. Where a proposal stands (`state`) is read from its call and its approvals,
    never stored twice.
    """

    class State(models.TextChoices):
        CHECKING = "checking", "Being checked"
        WAITING = "waiting", "Waiting for approval"
        SECOND_APPROVAL = "second_approval", "Waiting for another approval"
        APPROVED = "approved", "Approved, queued to run"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        REJECTED = "rejected", "Rejected"
        BLOCKED = "blocked", "Blocked by its checks"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"

    OPEN = (State.CHECKING, State.WAITING, State.SECOND_APPROVAL)
    _STATES = {
        ToolCall.Status.PREPARING: State.CHECKING,
        ToolCall.Status.QUEUED: State.APPROVED,
        ToolCall.Status.EXECUTING: State.RUNNING,
        ToolCall.Status.SUCCEEDED: State.DONE,
        ToolCall.Status.FAILED: State.FAILED,
        ToolCall.Status.INVALID: State.FAILED,
        ToolCall.Status.REJECTED: State.REJECTED,
        ToolCall.Status.BLOCKED: State.BLOCKED,
        ToolCall.Status.EXPIRED: State.EXPIRED,
        ToolCall.Status.CANCELLED: State.CANCELLED,
    }

    tool_call = models.OneToOneField(
        ToolCall, on_delete=models.PROTECT, primary_key=True, related_name="proposal"
    )
    toolset = models.CharField(max_length=64, db_index=True)
    tool_name = models.CharField(max_length=64, db_index=True)
    summary = models.CharField(max_length=500, blank=True, help_text="One line for the inbox.")
    approvals_required = models.PositiveSmallIntegerField(default=1)
    checks = models.JSONField(default=list, blank=True, help_text="The latest checks.")
    checked_at = models.DateTimeField(null=True, blank=True)
    checked_in = models.CharField(
        max_length=16, blank=True, help_text="proposal, approval or execution"
    )
    check_attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Tries to gather live data for the checks, after transient failures."
    )
    next_check_at = models.DateTimeField(null=True, blank=True)
    check_error = models.TextField(blank=True, help_text="Why the last try could not check.")
    waiting_since = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="When it began to wait for its next person."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["waiting_since", "tool_call_id"]

    def __str__(self) -> str:
        return f"{self.tool_name} #{self.pk}: {self.summary}"

    @property
    def approvals_given(self) -> int:
        return len(self.approvals.all())  # uses a prefetch when the list made one

    @property
    def state(self) -> str:
        status = self.tool_call.status
        if status == ToolCall.Status.AWAITING_APPROVAL:
            return self.State.SECOND_APPROVAL if self.approvals_given else self.State.WAITING
        return self._STATES[status]

    def get_state_display(self) -> str:
        return self.State(self.state).label

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN


class Approval(models.Model):
    """One person's approval of a proposal. Written once; one per person and proposal."""

    class Channel(models.TextChoices):
        CONSOLE = "console", "Console"
        SLACK = "slack", "Slack"

    proposal = models.ForeignKey(Proposal, on_delete=models.PROTECT, related_name="approvals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=16, choices=Channel, default=Channel.CONSOLE)
    note = models.TextField(blank=True)
    edited_input = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # Two-person rules hold in the database too: one approval per person.
            models.UniqueConstraint(fields=["proposal", "user"], name="agents_approval_once")
        ]

    def __str__(self) -> str:
        return f"Approval of #{self.proposal_id} by {self.user_id}"

    def delete(self, *args, **kwargs):
        raise AuditImmutable("Approvals are append-only and cannot be deleted.")


class ProposalRecord(models.Model):
    """Base of a domain's row for what a consequential call would do: a refund, a patch, a reply.

    It has no status of its own. Where it stands is its call's (`state`), so the two cannot
    disagree; the domain keeps the facts of its effect (a provider's id, a branch, a sent mail).
    """

    tool_call = models.OneToOneField(
        "agents.ToolCall", on_delete=models.PROTECT, related_name="%(app_label)s_%(class)s"
    )

    class Meta:
        abstract = True

    @property
    def proposal(self) -> Proposal:
        return self.tool_call.proposal

    @property
    def state(self) -> str:
        return self.proposal.state

    def get_state_display(self) -> str:
        return self.proposal.get_state_display()

    @property
    def is_open(self) -> bool:
        return self.proposal.is_open

    @property
    def checks(self) -> list[dict]:
        """The latest checks, as they ran last (when proposed, at an approval, before running)."""
        return self.proposal.checks


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

    @property
    def tokens_in(self) -> int:
        """Every input token, sent plain or read from or written to the prompt cache."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

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
        permissions = [("prune_auditevent", "Can export and prune audit rows past retention")]

    def __str__(self) -> str:
        return f"{self.kind} at {self.created_at:%Y-%m-%d %H:%M:%S}"

    def delete(self, *args, **kwargs):
        raise AuditImmutable("Audit events are append-only and cannot be deleted.")


class Notice(models.Model):
    """One message that tells people about a proposal: posted once, then kept up to date.

    Claimed before it is posted (`posting`, committed) and recorded after: a retry that finds a
    claim whose outcome is unknown looks the message up by its key instead of posting again.
    """

    class Medium(models.TextChoices):
        SLACK = "slack", "Slack"
        EMAIL = "email", "Email to the approvers"

    class State(models.TextChoices):
        PENDING = "pending", "Not posted yet"
        POSTING = "posting", "Posting (outcome not yet recorded)"
        POSTED = "posted", "Posted"
        FAILED = "failed", "Failed"

    key = models.CharField(max_length=200, unique=True)
    medium = models.CharField(max_length=16, choices=Medium)
    proposal = models.ForeignKey(
        Proposal, null=True, blank=True, on_delete=models.PROTECT, related_name="notices"
    )
    channel = models.CharField(max_length=200, blank=True, help_text="Slack channel id or name.")
    recipients = models.TextField(blank=True, help_text="Email addresses, comma-separated.")
    ts = models.CharField(max_length=32, blank=True, help_text="Slack's id of the message.")
    state = models.CharField(max_length=16, choices=State, default=State.PENDING, db_index=True)
    shown = models.CharField(max_length=64, blank=True, help_text="What the message shows now.")
    text = models.TextField(blank=True, help_text="The message as last posted or updated.")
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    posted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_medium_display()} notice {self.key}"


class SlackIdentity(models.Model):
    """Staff's mapping of a Slack user to the Countersign user who decides as them."""

    slack_user_id = models.CharField(max_length=32, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="slack_identities"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "Slack identity"
        verbose_name_plural = "Slack identities"

    def __str__(self) -> str:
        return f"{self.slack_user_id} → {self.user}"


class SlackInteraction(models.Model):
    """One button press or form sent from Slack, recorded once: a replay finds it."""

    trigger_id = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=32)
    action = models.CharField(max_length=32, blank=True)
    slack_user_id = models.CharField(max_length=32)
    tool_call = models.ForeignKey(
        ToolCall, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField(blank=True)
    response_url = models.URLField(max_length=1000, blank=True)
    outcome = models.TextField(blank=True)
    handled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Slack {self.kind} {self.action} by {self.slack_user_id}"


class MessageBatch(models.Model):
    """One Message Batches API batch: the first model calls of backlog runs, at half price."""

    class Status(models.TextChoices):
        SUBMITTING = "submitting", "Being submitted"
        IN_PROGRESS = "in_progress", "In progress"
        ENDED = "ended", "Ended, results recorded"
        FAILED = "failed", "Not submitted"

    OPEN = (Status.SUBMITTING, Status.IN_PROGRESS)

    batch_id = models.CharField(
        max_length=100, unique=True, null=True, blank=True, help_text="The API's id (msgbatch_...)."
    )
    status = models.CharField(
        max_length=16, choices=Status, default=Status.SUBMITTING, db_index=True
    )
    status_reason = models.TextField(blank=True)
    processing_status = models.CharField(
        max_length=16, blank=True, help_text="As the API last said: in_progress, canceling, ended."
    )
    request_counts = models.JSONField(default=dict, blank=True)
    runs = models.ManyToManyField(AgentRun, through="BatchRequest", related_name="batches")
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    polled_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "message batches"

    def __str__(self) -> str:
        return f"Batch {self.batch_id or f'#{self.pk}'}"


class BatchRequest(models.Model):
    """One run's step carried by a batch, from the moment it is held for one to its result."""

    class State(models.TextChoices):
        HELD = "held", "Waiting for a batch"
        SUBMITTED = "submitted", "In a batch"
        RECORDED = "recorded", "Reply recorded"
        RELEASED = "released", "Back on the normal path"
        DROPPED = "dropped", "Result not used: the run moved on"

    run = models.ForeignKey(AgentRun, on_delete=models.PROTECT, related_name="batch_requests")
    batch = models.ForeignKey(
        MessageBatch, null=True, blank=True, on_delete=models.PROTECT, related_name="requests"
    )
    step = models.PositiveIntegerField()
    claim_token = models.UUIDField(help_text="The run's claim while the batch carries it.")
    state = models.CharField(max_length=16, choices=State, default=State.HELD, db_index=True)
    result_type = models.CharField(
        max_length=16, blank=True, help_text="succeeded, errored, canceled or expired."
    )
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "step"], name="agents_batchrequest_once")
        ]

    def __str__(self) -> str:
        return self.custom_id

    @property
    def custom_id(self) -> str:
        """The request's id inside its batch (the API allows [a-zA-Z0-9_-]{1,64})."""
        return f"run{self.run_id}-step{self.step}"
