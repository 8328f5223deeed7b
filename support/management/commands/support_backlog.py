"""manage.py support_backlog: triage the new tickets no agent has started on, in Message Batches."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from agents.services.batches import batches_submit
from agents.services.errors import InvalidTransition
from support.services.backlog import ticket_backlog_list, tickets_triage_in_batch


class Command(BaseCommand):
    help = (
        "Start the support agent on every new ticket that has no run yet, with each first model "
        "call sent in a Message Batch at half price (AGENTS_BATCH_ENABLED must be on). Replies "
        "come within hours; what Claude proposes waits for approval as always."
    )

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=None, help="At most this many tickets.")
        parser.add_argument(
            "--dry-run", action="store_true", help="List the tickets; start nothing."
        )
        parser.add_argument(
            "--no-submit",
            action="store_true",
            help="Hold the runs; the worker's batches task submits them (AGENTS_BATCH_POLL_MINUTES).",
        )

    def handle(self, *args, limit: int | None, dry_run: bool, no_submit: bool, **options):
        tickets = ticket_backlog_list()
        if limit is not None:
            tickets = tickets[:limit]
        if dry_run:
            listed = list(tickets)
            for ticket in listed:
                self.stdout.write(f"#{ticket.pk} {ticket.customer_email}: {ticket.subject}")
            self.stdout.write(f"{len(listed)} ticket(s) in the backlog.")
            return
        ids = list(tickets.values_list("pk", flat=True))
        try:
            report = tickets_triage_in_batch(ticket_ids=ids)
        except InvalidTransition as error:
            raise CommandError(str(error)) from error
        self.stdout.write(report.describe())
        if no_submit or not report.held:
            return
        sent = batches_submit()
        for batch in sent:
            self.stdout.write(f"Submitted {batch.batch_id} with {batch.requests.count()} run(s).")
        if not sent:
            self.stderr.write("No batch could be submitted; the runs go on the normal path.")
