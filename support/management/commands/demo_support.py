"""manage.py demo_support: seed the demo's ticket, Bob's email, once.

The worker that `manage.py serve` starts then runs the support agent on it (a replay of
recorded replies when no ANTHROPIC_API_KEY is set), and its refund proposal waits in the
console's Inbox. Running it again changes nothing: the email's Message-ID is known.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from support.models import Message
from support.payments import gateway_get
from support.services import ticket_ingest_email

MESSAGE_ID = "<demo-bob-widget@countersign.localhost>"
BOB_EMAIL = (
    "From: Bob Tester <bob@test.com>\r\n"
    "To: support@countersign.localhost\r\n"
    "Subject: My widget broke\r\n"
    "Date: Mon, 02 Jun 2025 09:15:00 +0000\r\n"
    f"Message-ID: {MESSAGE_ID}\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "My widget broke on day 2. My email is bob@test.com. I want my $40 back.\r\n"
).encode()


class Command(BaseCommand):
    help = "Seed the demo: Bob's email as a ticket, for the support agent (idempotent)."

    def handle(self, *args, **options):
        seen = Message.objects.filter(message_id=MESSAGE_ID).select_related("ticket").first()
        if seen is not None:
            refunds = ", ".join(
                f"refund #{r.pk} {r.get_status_display().lower()}"
                for r in seen.ticket.refunds.all()
            )
            self.stdout.write(
                f"Demo ticket #{seen.ticket_id} is there already "
                f"({seen.ticket.get_status_display().lower()}{'; ' + refunds if refunds else ''})."
            )
            return
        gateway = gateway_get()
        if not gateway.is_real:
            # A fresh demo starts from the fixture's charges: Bob's $40 is refundable again.
            gateway.reset()
            self.stdout.write(f"Payments: {gateway.label}; its earlier refunds were forgotten.")
        result = ticket_ingest_email(raw=BOB_EMAIL, source=Message.Source.FILE)
        self.stdout.write(
            f"Demo ticket #{result.ticket_id}: Bob's email ({result.describe()}). The worker runs "
            "the support agent on it; its refund waits in the Inbox (Home › Inbox) for a person."
        )
