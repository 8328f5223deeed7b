from django.core.management.base import BaseCommand

from agents.schedules import schedules_sync


class Command(BaseCommand):
    help = "Create or update the periodic tasks every app declares (idempotent)."

    def handle(self, *args, **options):
        for line in schedules_sync():
            self.stdout.write(line)
