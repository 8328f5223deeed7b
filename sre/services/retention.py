"""Dropping what is older than SRE_RETENTION_DAYS: occurrences, 5xx lines and window counts.

Incidents stay, with their totals, first and last seen, and sample.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from sre.models import ErrorRequest, IncidentWindow, Occurrence, TrafficWindow


def sre_prune(*, now: datetime | None = None) -> dict[str, int]:
    """Delete rows older than the retention period; return how many of each."""
    days = settings.SRE_RETENTION_DAYS
    if days <= 0:
        return {}
    cutoff = (now or timezone.now()) - timedelta(days=days)
    # Copies first: an original keeps its duplicates' foreign keys valid until they go.
    copies, _ = Occurrence.objects.filter(
        occurred_at__lt=cutoff, duplicate_of__isnull=False
    ).delete()
    originals, _ = Occurrence.objects.filter(occurred_at__lt=cutoff).delete()
    return {
        "occurrences": copies + originals,
        "requests": ErrorRequest.objects.filter(occurred_at__lt=cutoff).delete()[0],
        "incident windows": IncidentWindow.objects.filter(window_start__lt=cutoff).delete()[0],
        "traffic windows": TrafficWindow.objects.filter(window_start__lt=cutoff).delete()[0],
    }
