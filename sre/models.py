"""Log sources and their checkpoints, incidents and what was counted for them.

A `LogSource` is a file and how to read it; its `LogCheckpoint` says where the next scan starts
and is written only by the scan, in the transaction that stores what was read. An `Incident`
groups occurrences by fingerprint; its status changes only in `sre.services.incidents`
(compare-and-set, with an audit row). Everything copied from a log is untrusted text, kept as
data: it is shown escaped and, later, sent to Claude only through the redaction step.
"""

from django.db import models
from django.utils import timezone

from agents.models import ProposalRecord


class LogSource(models.Model):
    class Kind(models.TextChoices):
        NGINX_ACCESS = "nginx_access", "NGINX access log"
        NGINX_ERROR = "nginx_error", "NGINX error log"
        GUNICORN = "gunicorn", "gunicorn error log"
        DJANGO = "django", "Django error log"

    kind = models.CharField(max_length=16, choices=Kind)
    path = models.CharField(
        max_length=1024, unique=True, help_text="Absolute path of the live file."
    )
    enabled = models.BooleanField(default=True)
    read_existing = models.BooleanField(
        default=False,
        help_text="On its first scan, read what the file and its rotated siblings already hold. "
        "Otherwise a new source starts at the end of the file.",
    )
    from_env = models.BooleanField(
        default=False, editable=False, help_text="Listed in SRE_LOG_SOURCES (managed there)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["path"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.path}"


class LogCheckpoint(models.Model):
    """Where the next scan of a source starts, and what its scans have counted so far."""

    source = models.OneToOneField(LogSource, on_delete=models.CASCADE, related_name="checkpoint")
    source_path = models.CharField(
        max_length=1024, help_text="The source's path when this was saved; another path resets it."
    )
    file_path = models.CharField(
        max_length=1024,
        blank=True,
        help_text="The file being read: the live file or a rotated one.",
    )
    file_id = models.CharField(
        max_length=64, blank=True, help_text="device:inode; empty while the file did not exist."
    )
    head_hash = models.CharField(max_length=64, blank=True, help_text="SHA-256 of its first bytes.")
    head_len = models.PositiveIntegerField(default=0)
    offset = models.PositiveBigIntegerField(default=0)
    last_time = models.DateTimeField(
        null=True, blank=True, help_text="The newest timestamp read: the time of lines with none."
    )
    scanned_at = models.DateTimeField(null=True, blank=True)
    bytes_read = models.PositiveBigIntegerField(default=0)
    lines_read = models.PositiveBigIntegerField(default=0)
    unparsed_lines = models.PositiveBigIntegerField(default=0)
    cut_lines = models.PositiveBigIntegerField(
        default=0, help_text="Lines over SRE_MAX_LINE_BYTES."
    )
    unparsed_samples = models.JSONField(
        default=list, blank=True, help_text="The latest lines nobody could parse (as data)."
    )
    last_note = models.TextField(blank=True, help_text="Rotation, truncation, caps: the last scan.")

    def __str__(self) -> str:
        return f"{self.file_path or self.source_path} @ {self.offset}"


class Incident(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        INVESTIGATING = "investigating", "Investigating"
        PATCH_PROPOSED = "patch_proposed", "Patch proposed"
        # Approved and committed to a branch, with no pull request (no GitHub configured).
        BRANCH_MADE = "branch_made", "Fix on a branch"
        PR_OPEN = "pr_open", "Pull request open"
        RESOLVED = "resolved", "Resolved"
        ESCALATED = "escalated", "Escalated"
        IGNORED = "ignored", "Ignored"

    class Category(models.TextChoices):
        CODE = "code", "Code (traceback)"
        MESSAGE = "message", "Error message"
        INFRASTRUCTURE = "infrastructure", "Infrastructure"

    fingerprint = models.CharField(max_length=80, unique=True)
    fingerprint_version = models.PositiveSmallIntegerField()
    loose_fingerprint = models.CharField(
        max_length=80,
        blank=True,
        db_index=True,
        help_text="Module and function only: suggests merges.",
    )
    category = models.CharField(max_length=16, choices=Category)
    infrastructure_kind = models.CharField(max_length=32, blank=True)
    title = models.CharField(max_length=300)
    exception_type = models.CharField(max_length=255, blank=True)
    exception_message = models.TextField(blank=True)
    culprit = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=Status, default=Status.OPEN, db_index=True)
    status_reason = models.TextField(blank=True)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)
    occurrences = models.PositiveBigIntegerField(default=0)
    resolved_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was last resolved; a later occurrence reopens it."
    )
    times_reopened = models.PositiveIntegerField(default=0)
    request_path = models.CharField(max_length=2000, blank=True, help_text="The sample's request.")
    sample_text = models.TextField(blank=True, help_text="One occurrence as logged (untrusted).")
    sample_source = models.ForeignKey(
        LogSource, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sample_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        permissions = [("decide_incident", "Can resolve, ignore, escalate or reopen incidents")]

    def __str__(self) -> str:
        return f"Incident #{self.pk}: {self.title}"

    @property
    def needs_escalation(self) -> bool:
        """Infrastructure failures go to a person, never to a code change."""
        return self.category == self.Category.INFRASTRUCTURE


class IncidentWindow(models.Model):
    """How many times an incident occurred in one window (SRE_WINDOW_MINUTES)."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="windows")
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["window_start"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "window_start"], name="sre_incident_window")
        ]

    def __str__(self) -> str:
        return f"{self.window_start:%Y-%m-%d %H:%M}: {self.count}"


class Occurrence(models.Model):
    """One logged event of an incident; a copy of it in a second log points at the first."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="occurrence_set")
    source = models.ForeignKey(LogSource, null=True, on_delete=models.SET_NULL, related_name="+")
    occurred_at = models.DateTimeField()
    time_exact = models.BooleanField(
        default=True, help_text="False: the line had no timestamp; the time is the one before it."
    )
    message = models.TextField(blank=True)
    dedupe_key = models.CharField(max_length=64, db_index=True)
    request_path = models.CharField(max_length=2000, blank=True)
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="duplicates"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["request_path", "occurred_at"]),
            models.Index(fields=["occurred_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.message[:80]}"


class ErrorRequest(models.Model):
    """A 5xx line of an access log, matched to the incident that caused it when one is found."""

    source = models.ForeignKey(LogSource, null=True, on_delete=models.SET_NULL, related_name="+")
    incident = models.ForeignKey(
        Incident, null=True, blank=True, on_delete=models.SET_NULL, related_name="requests"
    )
    occurred_at = models.DateTimeField()
    status = models.PositiveSmallIntegerField()
    method = models.CharField(max_length=16, blank=True)
    path = models.CharField(max_length=2000, blank=True)
    route = models.CharField(max_length=500, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    upstream_status = models.CharField(max_length=64, blank=True)
    request_time = models.FloatField(null=True, blank=True)
    line = models.TextField(help_text="The access-log line as logged (untrusted).")

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["path", "occurred_at"]),
            models.Index(fields=["occurred_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.status} {self.method} {self.path}"


class TrafficWindow(models.Model):
    """Requests and 5xx responses in one window, in total (route "") and per route: for charts."""

    window_start = models.DateTimeField()
    route = models.CharField(max_length=500, blank=True)
    requests = models.PositiveBigIntegerField(default=0)
    server_errors = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-window_start", "route"]
        constraints = [
            models.UniqueConstraint(fields=["window_start", "route"], name="sre_traffic_window")
        ]

    def __str__(self) -> str:
        return f"{self.window_start:%Y-%m-%d %H:%M} {self.route or 'all routes'}"


class Spike(models.Model):
    """A window whose 5xx count reached SRE_SPIKE_MIN and exceeded k × the recent baseline."""

    window_start = models.DateTimeField(unique=True)
    server_errors = models.PositiveBigIntegerField()
    baseline = models.FloatField(help_text="Mean 5xx count of the SRE_BASELINE_WINDOWS before it.")
    threshold = models.FloatField()
    detected_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-window_start"]

    def __str__(self) -> str:
        return f"Spike at {self.window_start:%Y-%m-%d %H:%M}: {self.server_errors} 5xx"


class AgentTrigger(models.Model):
    """A spike's decision to start the SRE agent on a code incident (or why it did not)."""

    class Outcome(models.TextChoices):
        QUEUED = "queued", "Queued"
        CAPPED = "capped", "Over the hourly cap"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="agent_triggers")
    spike = models.ForeignKey(Spike, null=True, on_delete=models.SET_NULL, related_name="triggers")
    outcome = models.CharField(max_length=16, choices=Outcome)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "spike"], name="sre_trigger_once_per_spike")
        ]

    def __str__(self) -> str:
        return f"{self.get_outcome_display()} for incident #{self.incident_id}"


class PatchProposal(ProposalRecord):
    """A diff the SRE agent proposed with create_pull_request, and what publishing it made.

    Where it stands (checked, waiting for review, approved, publishing, rejected, expired...) is
    its tool call's: `status` reads it in the watchdog's words, with GitHub's later word on the
    pull request. It keeps the reviewed diff and the facts of its publishing: the branch, the
    commit, the pull request.
    """

    class Status(models.TextChoices):
        CHECKING = "checking", "Being checked"
        PROPOSED = "proposed", "Waiting for review"
        BLOCKED = "blocked", "Blocked by its checks"
        APPROVED = "approved", "Approved"
        PUBLISHING = "publishing", "Publishing"
        PUBLISHED = "published", "Branch made (no pull request)"
        PR_OPEN = "pr_open", "Pull request open"
        FAILED = "failed", "Publishing failed"
        REJECTED = "rejected", "Rejected"
        MERGED = "merged", "Merged"
        CLOSED = "closed", "Closed unmerged"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"

    class PullRequest(models.TextChoices):
        NONE = "", "No pull request"
        OPEN = "open", "Open"
        MERGED = "merged", "Merged"
        CLOSED = "closed", "Closed unmerged"

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="patches")
    scratchpad = models.TextField(
        blank=True, help_text="Claude's reasoning in the reply that proposed the patch."
    )
    diff = models.TextField(blank=True)
    changed_files = models.JSONField(default=list, blank=True)
    base_commit = models.CharField(max_length=64, blank=True)
    branch = models.CharField(max_length=255, blank=True)
    commit = models.CharField(max_length=64, blank=True)
    pushed = models.BooleanField(default=False)
    pr_number = models.PositiveIntegerField(null=True, blank=True)
    pr_url = models.URLField(max_length=500, blank=True)
    pr_state = models.CharField(max_length=16, choices=PullRequest, blank=True, default="")
    notes = models.TextField(blank=True, help_text="What publishing did, and what it could not.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("approve_patch", "Can approve an SRE patch and open its pull request")]

    def __str__(self) -> str:
        return f"Patch #{self.pk} for incident #{self.incident_id}: {self.title}"

    @property
    def title(self) -> str:
        return self.tool_call.input_proposed.get("title", "")

    @property
    def root_cause(self) -> str:
        return self.tool_call.input_proposed.get("root_cause", "")

    @property
    def status(self) -> str:
        """Where it stands, read from its proposal; once published, the pull request's state."""
        state = self.state
        if state == self.proposal.State.DONE:
            return {
                self.PullRequest.OPEN: self.Status.PR_OPEN,
                self.PullRequest.MERGED: self.Status.MERGED,
                self.PullRequest.CLOSED: self.Status.CLOSED,
            }.get(self.pr_state, self.Status.PUBLISHED)
        return _PATCH_STATES[state]

    def get_status_display(self) -> str:
        return self.Status(self.status).label


_PATCH_STATES = {
    "checking": PatchProposal.Status.CHECKING,
    "waiting": PatchProposal.Status.PROPOSED,
    "second_approval": PatchProposal.Status.PROPOSED,
    "approved": PatchProposal.Status.APPROVED,
    "running": PatchProposal.Status.PUBLISHING,
    "failed": PatchProposal.Status.FAILED,
    "rejected": PatchProposal.Status.REJECTED,
    "blocked": PatchProposal.Status.BLOCKED,
    "expired": PatchProposal.Status.EXPIRED,
    "cancelled": PatchProposal.Status.CANCELLED,
}
