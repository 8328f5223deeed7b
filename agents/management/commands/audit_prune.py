"""Export the model calls and audit events past retention, then prune them (audited)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from agents.services.retention import RetentionRefused, audit_prune


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--older-than-days", type=int, required=True)
        parser.add_argument(
            "--user", required=True, help="who prunes (needs agents.prune_auditevent)"
        )
        parser.add_argument("--dry-run", action="store_true", help="count, export nothing")

    def handle(self, *args, **options):
        try:
            user = get_user_model().objects.get(username=options["user"])
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user {options['user']!r}.") from None
        try:
            result = audit_prune(
                user=user, older_than_days=options["older_than_days"], dry_run=options["dry_run"]
            )
        except (PermissionDenied, RetentionRefused) as error:
            raise CommandError(str(error)) from None
        counts = ", ".join(f"{n} {t.removeprefix('agents_')}" for t, n in result.counts.items())
        if result.path is None:
            self.stdout.write(f"Would prune {counts} older than {result.cutoff:%Y-%m-%d %H:%M}.")
        else:
            self.stdout.write(
                f"Pruned {counts}; exported to {result.path} (sha256 {result.sha256})."
            )
