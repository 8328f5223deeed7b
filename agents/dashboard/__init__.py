"""The console's home page: a frame of panels that the engine and the domains register.

The engine draws the frame and its own panels (what waits, runs, spend, decision quality);
`support` and `sre` call `panel_register` from their AppConfig.ready(), as they do for their
toolsets. Each panel names the permission that lets a user see what it shows; a panel's
context function runs a fixed number of queries, whatever the number of rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

# A permission ("app_label.codename") the user must hold, or a test of the user.
Permission = str | Callable[[Any], bool]


@dataclass(frozen=True)
class Panel:
    name: str
    template: str
    # context(user=..., now=...) -> the template's context; runs only for users who may see it.
    context: Callable[..., dict[str, Any]]
    order: int = 100
    permission: Permission = ""
    # Wide panels (charts) take a whole row of the grid.
    wide: bool = False

    def visible_to(self, user: Any) -> bool:
        if not (user.is_active and user.is_staff):
            return False
        if callable(self.permission):
            return bool(self.permission(user))
        return not self.permission or user.has_perm(self.permission)


_panels: dict[str, Panel] = {}

# tool name -> a function that sums the amounts of the given waiting proposals, as text.
WaitingTotal = Callable[[QuerySet], str]
_waiting_totals: dict[str, WaitingTotal] = {}


def panel_register(
    *,
    name: str,
    template: str,
    context: Callable[..., dict[str, Any]],
    order: int = 100,
    permission: Permission = "",
    wide: bool = False,
) -> Panel:
    """Register a panel; registering the same name again replaces it (reloads, tests)."""
    panel = Panel(
        name=name,
        template=template,
        context=context,
        order=order,
        permission=permission,
        wide=wide,
    )
    _panels[name] = panel
    return panel


def panel_list(*, user: Any) -> list[Panel]:
    """The panels this user may see, in their order."""
    return sorted(
        (p for p in _panels.values() if p.visible_to(user)), key=lambda p: (p.order, p.name)
    )


def waiting_total_register(*, tool_name: str, total: WaitingTotal) -> None:
    """Say how to total what a kind's waiting proposals are worth (refunds: their amounts)."""
    _waiting_totals[tool_name] = total


def waiting_total_get(tool_name: str) -> WaitingTotal | None:
    return _waiting_totals.get(tool_name)


@dataclass(frozen=True)
class Periods:
    """The dashboard's periods, in the console's time zone: today and this week (from Monday)."""

    now: datetime
    day: datetime
    week: datetime

    @classmethod
    def at(cls, now: datetime | None = None) -> Periods:
        now = now or timezone.now()
        local = timezone.localtime(now)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return cls(now=now, day=day, week=day - timedelta(days=day.weekday()))
