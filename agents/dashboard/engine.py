"""The engine's own panels: what waits on a person, runs, operations, spend, decision quality."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import BooleanField, Case, Count, F, Min, Q, Sum, Value, When
from django.urls import reverse

from agents.dashboard import Periods, panel_register, waiting_total_get
from agents.dashboard.operations import operations_panel_register
from agents.models import AgentRun, ModelCall, ToolCall
from agents.selectors import approvals_can_view, proposal_inbox, proposal_kinds, toolset_label

RUN_LIST_LIMIT = 8
QUALITY_DAYS = 30


def waiting_context(*, user: Any, periods: Periods) -> dict[str, Any]:
    """What waits on a person that this user may see, by kind: count, oldest, total, yours."""
    inbox = reverse("admin:agents_toolcall_approvals")
    # Group the inbox itself, so the dashboard and the inbox never disagree; one row per
    # proposal (the inbox's prefetch of approvals is dropped, so nothing is counted twice).
    rows = (
        proposal_inbox(user=user)
        .prefetch_related(None)
        .order_by()
        .values("tool_name")
        .annotate(count=Count("pk", distinct=True), oldest=Min("waiting_since"))
    )
    mine = dict(
        proposal_inbox(user=user, mine=True)
        .prefetch_related(None)
        .order_by()
        .values("tool_name")
        .annotate(count=Count("pk", distinct=True))
        .values_list("tool_name", "count")
    )
    labels = dict(proposal_kinds())
    kinds = []
    for row in sorted(rows, key=lambda r: (r["oldest"] is None, r["oldest"])):
        name = row["tool_name"]
        total = waiting_total_get(name)
        kinds.append(
            {
                "name": name,
                "label": labels.get(name, name.replace("_", " ").capitalize()),
                "count": row["count"],
                "mine": mine.get(name, 0),
                "oldest": row["oldest"],
                "age": periods.now - row["oldest"] if row["oldest"] else None,
                "total": total(proposal_inbox(user=user, kind=name)) if total else "",
                "url": f"{inbox}?kind={name}",
            }
        )
    oldest = min((k["oldest"] for k in kinds if k["oldest"]), default=None)
    return {
        "inbox_url": inbox,
        "mine_url": f"{inbox}?mine=1",
        "kinds": kinds,
        "count": sum(k["count"] for k in kinds),
        "mine": sum(k["mine"] for k in kinds),
        "oldest": oldest,
        "oldest_age": periods.now - oldest if oldest else None,
    }


def runs_context(*, user: Any, periods: Periods) -> dict[str, Any]:
    """Runs started in the last 7 days by status, and the latest that failed or escalated."""
    since = periods.now - timedelta(days=7)
    counts = dict(
        AgentRun.objects.filter(created_at__gte=since)
        .order_by()
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    changelist = reverse("admin:agents_agentrun_changelist")
    statuses = [
        {
            "value": value,
            "label": label,
            "count": counts.get(value, 0),
            "url": f"{changelist}?status__exact={value}",
            "alarm": value in (AgentRun.Status.FAILED, AgentRun.Status.ESCALATED),
        }
        for value, label in AgentRun.Status.choices
    ]
    troubled = (
        AgentRun.objects.filter(
            created_at__gte=since,
            status__in=[AgentRun.Status.FAILED, AgentRun.Status.ESCALATED],
        )
        .only("id", "toolset", "status", "status_reason", "created_at", "finished_at")
        .order_by("-created_at", "-id")[:RUN_LIST_LIMIT]
    )
    return {
        "statuses": statuses,
        "total": sum(counts.values()),
        "troubled": [
            {
                "run": run,
                "label": toolset_label(run.toolset),
                "url": reverse("admin:agents_agentrun_change", args=[run.pk]),
            }
            for run in troubled
        ],
        "troubled_count": counts.get(AgentRun.Status.FAILED, 0)
        + counts.get(AgentRun.Status.ESCALATED, 0),
        "changelist": changelist,
    }


def spend_context(*, user: Any, periods: Periods) -> dict[str, Any]:
    """Estimated model spend today and this week, and the per-run cap it is held to."""
    # Spend is summed from the model calls (when each call was made), not from the runs, so a
    # run that crosses midnight counts on each day for what it spent on it.
    spend = ModelCall.objects.filter(created_at__gte=periods.week).aggregate(
        today=Sum("cost_usd", filter=Q(created_at__gte=periods.day)),
        week=Sum("cost_usd"),
        calls_today=Count("id", filter=Q(created_at__gte=periods.day)),
        calls_week=Count("id"),
    )
    cap = Decimal(str(settings.AGENTS_MAX_COST_USD))
    costliest = (
        AgentRun.objects.filter(created_at__gte=periods.week)
        .only("id", "toolset", "cost_usd")
        .order_by("-cost_usd", "-id")
        .first()
    )
    return {
        "today": spend["today"] or Decimal(0),
        "week": spend["week"] or Decimal(0),
        "calls_today": spend["calls_today"],
        "calls_week": spend["calls_week"],
        "cap": cap,
        "costliest": costliest,
        "costliest_url": (
            reverse("admin:agents_agentrun_change", args=[costliest.pk]) if costliest else ""
        ),
        "costliest_share": (
            round(100 * costliest.cost_usd / cap) if costliest is not None and cap else None
        ),
    }


def quality_context(*, user: Any, periods: Periods) -> dict[str, Any]:
    """Per tool and prompt version: approved as is, edited, rejected, expired; time to decide."""
    since = periods.now - timedelta(days=QUALITY_DAYS)
    # An edit is an executed input that differs from the proposed one (the deciding service
    # already drops an "edit" that changes nothing; comparing here keeps the rule visible).
    edited = Case(
        When(input_executed__isnull=True, then=Value(False)),
        When(input_executed=F("input_proposed"), then=Value(False)),
        default=Value(True),
        output_field=BooleanField(),
    )
    calls = (
        ToolCall.objects.filter(requires_approval=True, decided_at__gte=since)
        .exclude(decision__isnull=True)
        .annotate(edited=edited)
        .order_by()
        .values_list(
            "tool_name",
            "run__prompt_name",
            "run__prompt_version",
            "decision",
            "edited",
            "created_at",
            "decided_at",
            "decided_by_id",
        )
    )
    groups: dict[tuple[str, str, int], dict[str, Any]] = defaultdict(
        lambda: {"approved": 0, "edited": 0, "rejected": 0, "expired": 0, "other": 0, "waits": []}
    )
    decision = ToolCall.Decision
    for tool, prompt, version, made, was_edited, created, decided, person in calls:
        group = groups[(tool, prompt, version)]
        if made == decision.APPROVED:
            group["edited" if was_edited else "approved"] += 1
        elif made == decision.REJECTED:
            group["rejected"] += 1
        elif made == decision.EXPIRED:
            group["expired"] += 1
        else:
            group["other"] += 1
        # Time to a decision: only what a person decided (not expiry, not a policy block).
        if person is not None and made in (decision.APPROVED, decision.REJECTED):
            group["waits"].append((decided - created).total_seconds())
    rows = []
    for (tool, prompt, version), group in sorted(groups.items()):
        waits = group.pop("waits")
        decided = group["approved"] + group["edited"] + group["rejected"] + group["expired"]
        rows.append(
            {
                "tool": tool,
                "prompt": f"{prompt} v{version}",
                **group,
                "decided": decided,
                "median": timedelta(seconds=statistics.median(waits)) if waits else None,
                "as_is_share": round(100 * group["approved"] / decided) if decided else None,
            }
        )
    return {"rows": rows, "days": QUALITY_DAYS}


def engine_panels_register() -> None:
    """Register the engine's panels (called from AgentsConfig.ready())."""
    panel_register(
        name="waiting",
        template="agents/dashboard/_waiting.html",
        context=waiting_context,
        order=10,
        permission=lambda user: approvals_can_view(user=user),
    )
    panel_register(
        name="runs",
        template="agents/dashboard/_runs.html",
        context=runs_context,
        order=40,
        permission="agents.view_agentrun",
    )
    panel_register(
        name="spend",
        template="agents/dashboard/_spend.html",
        context=spend_context,
        order=50,
        permission="agents.view_modelcall",
    )
    operations_panel_register()
    panel_register(
        name="quality",
        template="agents/dashboard/_quality.html",
        context=quality_context,
        order=90,
        permission="agents.view_toolcall",
        wide=True,
    )
