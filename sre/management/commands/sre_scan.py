from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sre.models import Incident
from sre.services import log_sources_parse, sre_scan


class Command(BaseCommand):
    help = (
        "Scan every enabled log source once now and print what was found. With --from-start, "
        "sources that have no checkpoint yet are read from their first byte (rotated siblings "
        "such as access.log.1 first, oldest to newest; compressed ones skipped)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--from-start",
            action="store_true",
            help="Read sources with no checkpoint from the start instead of from their end.",
        )

    def handle(self, *args, **options):
        try:
            log_sources_parse(settings.SRE_LOG_SOURCES)
        except ValueError as error:
            raise CommandError(str(error)) from None
        report = sre_scan(from_start=options["from_start"])
        for note in report.notes:
            self.stdout.write(note)
        if not report.sources:
            self.stdout.write("No log sources: set SRE_LOG_SOURCES or add one in the console.")
        for source in report.sources:
            self.stdout.write(f"{source.kind} {source.path}")
            self.stdout.write(f"  {source.summary()}")
            for note in source.notes:
                self.stdout.write(f"  note: {note}")
            if source.error:
                self.stderr.write(f"  error: {source.error}")
        new = [i for s in report.sources for i in s.new_incidents]
        for incident in Incident.objects.filter(pk__in=new).order_by("pk"):
            self.stdout.write(
                f"new incident #{incident.pk} [{incident.category}, {incident.status}] "
                f"{incident.title} ({incident.occurrences}x)"
            )
        for spike in report.spikes:
            self.stdout.write(
                f"spike: {spike.server_errors} 5xx in the window from "
                f"{spike.window_start:%Y-%m-%d %H:%M} UTC (baseline {spike.baseline:.1f})"
            )
        for trigger in report.triggers:
            self.stdout.write(
                f"SRE agent for incident #{trigger.incident_id}: {trigger.get_outcome_display()}"
            )
        self.stdout.write(report.summary())
