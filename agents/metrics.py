"""What an operator watches: the task queue, what waits on a person, failed tasks, runs.

`operations_get()` reads it all in a fixed number of queries (whatever the number of rows) for
the dashboard's Operations panel and for `/metrics`, which serves it in Prometheus' text format
to a scraper holding `METRICS_TOKEN` (Authorization: Bearer ...) or to a staff user who may see
runs and failed tasks. Every figure is read from the database or the broker at scrape time, so
any number of gunicorn processes and machines report the same values: nothing is counted in
process memory.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from agents.models import AgentRun, Proposal, ToolCall

logger = logging.getLogger(__name__)

# Failed tasks and started runs are counted over this window (the panel and the metrics agree).
RECENT = timedelta(hours=24)
FAILURE_LIST_LIMIT = 5
ACTIVE_STATUSES = (
    AgentRun.Status.QUEUED,
    AgentRun.Status.RUNNING,
    AgentRun.Status.AWAITING_APPROVAL,
)
# Who may read the operator's figures without the token: runs and django-q2's failed tasks.
OPERATIONS_PERMISSIONS = ("agents.view_agentrun", "django_q.view_failure")


@dataclass(frozen=True)
class FailedTask:
    id: str
    name: str
    func: str
    stopped: datetime


@dataclass(frozen=True)
class Operations:
    now: datetime
    broker: str  # "redis" or "orm"
    broker_up: bool
    # Tasks in the broker that no cluster has taken yet.
    queue_depth: int | None
    # ORM broker only: tasks a cluster has taken and not yet acknowledged.
    in_flight: int | None
    # Redis only: clusters that reported to the broker in the last few seconds.
    clusters: int | None
    approvals_waiting: int
    oldest_approval_since: datetime | None
    tasks_failed: int  # in the last RECENT
    last_failure_at: datetime | None
    failures: list[FailedTask] = field(default_factory=list)  # the latest few
    runs_active: dict[str, int] = field(default_factory=dict)  # every unfinished run
    runs_recent: dict[str, int] = field(default_factory=dict)  # started in the last RECENT

    @property
    def oldest_approval_age(self) -> timedelta | None:
        if self.oldest_approval_since is None:
            return None
        return max(self.now - self.oldest_approval_since, timedelta(0))


def operations_can_view(*, user: Any) -> bool:
    """Whether this user may see the operator's figures (the panel, /metrics without a token)."""
    return bool(
        user is not None
        and user.is_active
        and user.is_staff
        and all(user.has_perm(perm) for perm in OPERATIONS_PERMISSIONS)
    )


def _broker_figures() -> tuple[str, bool, int | None, int | None, int | None]:
    """(kind, up, queue depth, in flight, clusters) from django-q2's broker; never raises."""
    from django_q.status import Stat

    from agents.health import broker as broker_get

    kind = "redis" if settings.REDIS_URL else "orm"
    try:
        broker = broker_get()
        depth = int(broker.queue_size() or 0)
        in_flight = int(broker.lock_size() or 0) if kind == "orm" else None
        # On the ORM broker cluster stats go to Django's cache, which is per process here.
        clusters = len(Stat.get_all(broker=broker)) if kind == "redis" else None
    except Exception:
        logger.exception("the task broker did not answer")
        return kind, False, None, None, None
    return kind, True, depth, in_flight, clusters


def operations_get(*, now: datetime | None = None) -> Operations:
    """Read the operator's figures now, in a fixed number of queries."""
    from django_q.models import Failure

    now = now or timezone.now()
    since = now - RECENT
    kind, up, depth, in_flight, clusters = _broker_figures()
    waiting = Proposal.objects.filter(
        tool_call__status=ToolCall.Status.AWAITING_APPROVAL
    ).aggregate(count=Count("pk"), oldest=Min("waiting_since"))
    failed = Failure.objects.filter(stopped__gte=since)
    failed_summary = failed.aggregate(count=Count("pk"), last=Max("stopped"))
    latest = [
        FailedTask(id=row["id"], name=row["name"], func=row["func"], stopped=row["stopped"])
        for row in failed.order_by("-stopped").values("id", "name", "func", "stopped")[
            :FAILURE_LIST_LIMIT
        ]
    ]
    active = dict(
        AgentRun.objects.filter(status__in=ACTIVE_STATUSES)
        .order_by()
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    recent = dict(
        AgentRun.objects.filter(created_at__gte=since)
        .order_by()
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return Operations(
        now=now,
        broker=kind,
        broker_up=up,
        queue_depth=depth,
        in_flight=in_flight,
        clusters=clusters,
        approvals_waiting=waiting["count"],
        oldest_approval_since=waiting["oldest"],
        tasks_failed=failed_summary["count"],
        last_failure_at=failed_summary["last"],
        failures=latest,
        runs_active={status: active.get(status, 0) for status in ACTIVE_STATUSES},
        runs_recent={status: recent.get(status, 0) for status, _ in AgentRun.Status.choices},
    )


# --- Prometheus ---------------------------------------------------------------------------------


class OperationsCollector(Collector):
    """The figures of one `operations_get()` as Prometheus gauges."""

    def __init__(self, operations: Operations) -> None:
        self.ops = operations

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ops = self.ops
        up = GaugeMetricFamily(
            "countersign_broker_up",
            "1 if the task broker answered this scrape, else 0.",
            labels=["broker"],
        )
        up.add_metric([ops.broker], 1 if ops.broker_up else 0)
        yield up
        if ops.queue_depth is not None:
            yield GaugeMetricFamily(
                "countersign_task_queue_depth",
                "Tasks waiting in the broker that no qcluster has taken yet.",
                value=ops.queue_depth,
            )
        if ops.in_flight is not None:
            yield GaugeMetricFamily(
                "countersign_task_queue_in_flight",
                "ORM broker: tasks a qcluster has taken and not yet acknowledged.",
                value=ops.in_flight,
            )
        if ops.clusters is not None:
            yield GaugeMetricFamily(
                "countersign_qcluster_clusters",
                "Redis broker: qcluster processes that reported to the broker in the last seconds.",
                value=ops.clusters,
            )
        yield GaugeMetricFamily(
            "countersign_approvals_waiting",
            "Proposed tool calls waiting for a person's decision.",
            value=ops.approvals_waiting,
        )
        age = ops.oldest_approval_age
        yield GaugeMetricFamily(
            "countersign_approval_oldest_wait_seconds",
            "How long the oldest waiting proposal has waited for a person (0 when none waits).",
            value=age.total_seconds() if age is not None else 0,
        )
        yield GaugeMetricFamily(
            "countersign_tasks_failed_last_24h",
            "django-q2 tasks that failed (after their tries) in the last 24 hours.",
            value=ops.tasks_failed,
        )
        if ops.last_failure_at is not None:
            yield GaugeMetricFamily(
                "countersign_task_last_failure_timestamp_seconds",
                "When the latest failed task stopped (Unix time), within the last 24 hours.",
                value=ops.last_failure_at.timestamp(),
            )
        active = GaugeMetricFamily(
            "countersign_runs_active",
            "Unfinished agent runs, by status.",
            labels=["status"],
        )
        for status, count in ops.runs_active.items():
            active.add_metric([status], count)
        yield active
        recent = GaugeMetricFamily(
            "countersign_runs_started_last_24h",
            "Agent runs started in the last 24 hours, by their status now.",
            labels=["status"],
        )
        for status, count in ops.runs_recent.items():
            recent.add_metric([status], count)
        yield recent


def metrics_render(operations: Operations) -> bytes:
    """The figures in Prometheus' text exposition format."""
    # A registry per scrape: nothing is kept in the process between scrapes.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OperationsCollector(operations))
    return generate_latest(registry)


def _bearer_ok(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer" or not given.strip():
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Serve the operator's figures to the scraper's token or a staff user who may see them."""
    if not (_bearer_ok(request) or operations_can_view(user=getattr(request, "user", None))):
        response = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics_render(operations_get()), content_type=CONTENT_TYPE_LATEST)
