"""Create (or reset) the demo superuser that `make run` prints."""

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.services import demo_admin_ensure


class Command(BaseCommand):
    help = "Create the demo superuser (DEMO_ADMIN_USERNAME / DEMO_ADMIN_PASSWORD, default admin/admin)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("Refusing to create a demo superuser with a known password while DEBUG is off.")
        username = os.environ.get("DEMO_ADMIN_USERNAME", "admin")
        password = os.environ.get("DEMO_ADMIN_PASSWORD", "admin")
        _, created = demo_admin_ensure(username=username, password=password)
        self.stdout.write(f"{'Created' if created else 'Reset'} demo superuser {username!r}.")
