"""The test suite's flush: Django's, with the audit tables' guards lifted for it alone.

Transactional tests (live servers, races, real worker processes) are emptied by `flush`, which
deletes (SQLite) or truncates (PostgreSQL) every table; the append-only guards refuse both.
"""

from django.core.management.commands.flush import Command as Flush
from django.db import connections

from agents.guards import guards_lifted


class Command(Flush):
    def handle(self, **options):
        with guards_lifted(connections[options["database"]]):
            return super().handle(**options)
