"""``python manage.py sweep_events``: hand unprocessed events to processing again (cron users)."""

import datetime

from django.core.management.base import BaseCommand

from automation import scheduling


class Command(BaseCommand):
    help = "Re-dispatch events still unprocessed after the grace period (their on-commit dispatch was lost)."

    def add_arguments(self, parser):
        parser.add_argument("--grace", type=int, default=int(scheduling.SWEEP_GRACE.total_seconds()),
                            help="Seconds an event may stay unprocessed before it is re-dispatched (default 30).")

    def handle(self, *args, grace, **options):
        count = scheduling.sweep_events(grace=datetime.timedelta(seconds=grace))
        self.stdout.write(f"re-dispatched: {count}")
