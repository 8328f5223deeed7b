"""manage.py demo_sre: the SRE demo's sample service, its logs and its incident, once.

It copies `samples/shop` (a tiny service whose `app/api.py` raises `KeyError: 'user_profile'`)
to `var/demo-shop` as a git repository with one commit (the `SRE_REPO_ROOT` default), copies
its logs to `var/demo-shop-logs`, adds them as log sources read from their start, and scans
them: the spike of 500s makes the incident and queues the SRE agent. The worker that
`manage.py serve` starts then runs the agent on it (a replay of recorded replies when no
ANTHROPIC_API_KEY is set): it reads `app/api.py`, edits a scratch copy, and its `.get` diff
waits on the review page. Running it again changes nothing: the incident is known.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sre.models import AgentTrigger, Incident, LogSource
from sre.services import sre_scan
from sre.services.agent_requests import incident_agent_request

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "shop"
LOGS = {LogSource.Kind.DJANGO: "error.log", LogSource.Kind.NGINX_ACCESS: "access.log"}
IGNORE = shutil.ignore_patterns("logs", "__pycache__", "*.pyc")


def demo_dir() -> Path:
    return Path(settings.BASE_DIR) / "var" / "demo-shop"


def logs_dir() -> Path:
    return Path(settings.BASE_DIR) / "var" / "demo-shop-logs"


def _git(cwd: Path, *args: str) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True
        ).stdout.strip()
    except FileNotFoundError:
        raise CommandError("The SRE demo needs git on PATH.") from None
    except subprocess.CalledProcessError as error:
        raise CommandError(f"git {' '.join(args)}: {error.stderr.strip()}") from None


def repo_ensure(target: Path) -> bool:
    """Make `target` a git repository of the sample with one commit; False if it was there."""
    if (target / ".git").exists():
        return False
    if target.exists():
        raise CommandError(f"{target} exists but is not a git repository; remove it and rerun.")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Built aside, then renamed into place: a failed run leaves no half-made repository.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".demo-shop-") as tmp:
        work = Path(tmp) / "shop"
        shutil.copytree(SAMPLE, work, ignore=IGNORE)
        _git(work, "init", "-q")
        _git(work, "symbolic-ref", "HEAD", f"refs/heads/{settings.SRE_BASE_BRANCH or 'main'}")
        _git(work, "add", "-A")
        _git(
            work,
            "-c",
            "user.name=Shop Developer",
            "-c",
            "user.email=dev@shop.example.com",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "--no-verify",
            "-m",
            "shop: the profile endpoint",
        )
        work.rename(target)
    return True


def logs_ensure(target: Path) -> dict[str, Path]:
    """Copy the sample's logs to `target` (once: the scan's checkpoints point at these files)."""
    target.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind, name in LOGS.items():
        path = target / name
        if not path.exists():
            shutil.copyfile(SAMPLE / "logs" / name, path)
        paths[kind] = path.resolve()
    return paths


class Command(BaseCommand):
    help = (
        "Seed the SRE demo: the sample service as a git repository, its logs as log sources, "
        "and one scan that finds its KeyError incident and queues the SRE agent (idempotent)."
    )

    def handle(self, *args, **options):
        repo = demo_dir()
        if repo_ensure(repo):
            self.stdout.write(
                f"Demo service: samples/shop copied to {repo} as a git repository "
                f"(commit {_git(repo, 'rev-parse', '--short', 'HEAD')})."
            )
        if not settings.SRE_REPO_ROOT or Path(settings.SRE_REPO_ROOT).resolve() != repo.resolve():
            self.stdout.write(
                f"Note: SRE_REPO_ROOT is {settings.SRE_REPO_ROOT!r}, not the demo service "
                f"({repo}): the SRE agent reads that one."
            )
        sources = []
        for kind, path in logs_ensure(logs_dir()).items():
            source, created = LogSource.objects.get_or_create(
                path=str(path), defaults={"kind": kind, "read_existing": True}
            )
            if created:
                self.stdout.write(f"Log source added: {source}")
            sources.append(source)

        known = self._incident(sources)
        if known is not None:
            patches = ", ".join(
                f"patch #{p.pk} {p.get_status_display().lower()}" for p in known.patches.all()
            )
            self.stdout.write(
                f"Demo incident #{known.pk} is there already "
                f"({known.get_status_display().lower()}{'; ' + patches if patches else ''})."
            )
            return

        report = sre_scan(source_ids=[s.pk for s in sources])
        incident = self._incident(sources)
        if incident is None:
            raise CommandError(f"The demo's scan found no incident: {report.summary()}")
        spikes = "; ".join(
            f"spike of {s.server_errors} 5xx at {s.window_start:%Y-%m-%d %H:%M} UTC"
            for s in report.spikes
        )
        if not AgentTrigger.objects.filter(incident=incident).exists():
            # The spike settings were changed so these logs make none: start the agent anyway.
            incident_agent_request(incident_id=incident.pk)
        trigger = AgentTrigger.objects.filter(incident=incident).first()
        outcome = trigger.get_outcome_display().lower() if trigger else "not started"
        self.stdout.write(
            f"Demo incident #{incident.pk}: {incident.title} ({incident.occurrences}x"
            f"{'; ' + spikes if spikes else ''}). SRE agent: {outcome}. The worker runs it; "
            "its diff waits in the Inbox (Home › Inbox) for review."
        )

    @staticmethod
    def _incident(sources: list[LogSource]) -> Incident | None:
        return (
            Incident.objects.filter(occurrence_set__source__in=sources, exception_type="KeyError")
            .distinct()
            .order_by("pk")
            .first()
        )
