"""``python manage.py run_scheduled_rules``: fire due scheduled and time-based rules once (cron users)."""

import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from automation import scheduling


class Command(BaseCommand):
    help = "Fire every live scheduled and time-based rule whose slot is due, once per slot, tenant by tenant."

    def add_arguments(self, parser):
        parser.add_argument("--now", help="Pretend it is this ISO 8601 instant (e.g. 2030-07-01T13:00:00Z).")

    def handle(self, *args, now=None, **options):
        at = None
        if now:
            at = parse_datetime(now)
            if at is None:
                raise CommandError(f"--now: '{now}' is not an ISO 8601 date and time")
            if at.tzinfo is None:
                at = at.replace(tzinfo=datetime.timezone.utc)
        result = scheduling.run_scheduled_rules(at)
        self.stdout.write(f"tenants: {result.tenants} slots fired: {result.slots} runs: {result.runs} "
                          f"errors: {result.errors}")
        if result.errors:
            raise CommandError(f"{result.errors} rule(s) failed; see the log")
