"""The console's home page: the dashboard's frame, filled with the panels a user may see."""

from __future__ import annotations

from typing import Any

from django import template
from django.template.loader import get_template

from agents.dashboard import Periods, panel_list

register = template.Library()


@register.inclusion_tag("agents/dashboard/frame.html", takes_context=True)
def dashboard(context: template.Context) -> dict[str, Any]:
    """Render each panel the user may see with what its context function returns."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None:
        return {"cards": []}
    periods = Periods.at()
    cards = []
    for panel in panel_list(user=user):
        values = panel.context(user=user, periods=periods)
        html = get_template(panel.template).render(
            {**values, "user": user, "periods": periods, "panel": panel}
        )
        cards.append({"panel": panel, "html": html})
    return {"cards": cards, "periods": periods}


@register.filter
def duration(value: Any) -> str:
    """A timedelta as a person says it: 3 d 4 h, 2 h 5 min, 40 s."""
    if value is None:
        return "—"
    seconds = int(value.total_seconds())
    if seconds < 0:
        seconds = 0
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{seconds} s"


@register.filter
def usd(value: Any) -> str:
    """An estimated cost in US dollars: cents shown, fractions of a cent as "< $0.01"."""
    if value is None:
        return "—"
    if 0 < value < 0.01:
        return "< $0.01"
    return f"${value:,.2f}"
