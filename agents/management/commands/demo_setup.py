"""Create or reset the demo login for a local console and print it."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create (or reset) the demo superuser and print its login. For local use only."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")

    def handle(self, *args, **options):
        user, _ = get_user_model().objects.get_or_create(username=options["username"])
        password = secrets.token_urlsafe(9)
        user.set_password(password)
        user.is_staff = user.is_superuser = True
        user.save()
        banner = "=" * 60
        self.stdout.write(
            f"{banner}\nDemo login for the console\n  user:     {user.username}\n"
            f"  password: {password}\n{banner}"
        )
