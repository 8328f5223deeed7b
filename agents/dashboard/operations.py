"""The Operations panel: the task queue, the oldest wait on a person, failed tasks, live runs.

The same figures as `/metrics` (agents/metrics.py), read by the same `operations_get()`, so the
console and the scraper never disagree.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from agents.dashboard import Periods, panel_register
from agents.metrics import operations_can_view, operations_get
from agents.models import AgentRun


def operations_context(*, user: Any, periods: Periods) -> dict[str, Any]:
    """The operator's figures now, with links to the failed tasks and the live runs."""
    ops = operations_get(now=periods.now)
    runs = reverse("admin:agents_agentrun_changelist")
    labels = dict(AgentRun.Status.choices)
    return {
        "ops": ops,
        "failures_url": reverse("admin:django_q_failure_changelist"),
        "failures": [
            {
                "task": task,
                "url": reverse("admin:django_q_failure_change", args=[task.id]),
            }
            for task in ops.failures
        ],
        "active": [
            {"label": labels[status], "count": count, "url": f"{runs}?status__exact={status}"}
            for status, count in ops.runs_active.items()
        ],
        "inbox_url": reverse("admin:agents_toolcall_approvals"),
    }


def operations_panel_register() -> None:
    """Register the Operations panel (for staff who may see runs and failed tasks)."""
    panel_register(
        name="operations",
        template="agents/dashboard/_operations.html",
        context=operations_context,
        order=45,
        permission=lambda user: operations_can_view(user=user),
    )
