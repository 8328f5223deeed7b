"""django-q2 entry points for the SRE watchdog. Safe to deliver twice."""

from sre.services import sre_prune, sre_scan


def sre_scan_task() -> str:
    """Scan every log source once (the checkpoints make a repeated delivery read nothing new)."""
    report = sre_scan()
    pruned = sre_prune()
    return report.summary() + (f"; pruned {pruned}" if any(pruned.values()) else "")
