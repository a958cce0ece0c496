"""``python manage.py crm_daily_triggers [--force]``: trial-ending and inactivity triggers (each tenant
once a day unless ``--force``)."""

import json

from django.core.management.base import BaseCommand

from crm.triggers import daily_scan


class Command(BaseCommand):
    help = "Start trial_ending and inactivity_nudge journeys where due (once per tenant and day)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Scan even tenants already scanned today.")

    def handle(self, *args, force=False, **options):
        self.stdout.write(json.dumps(daily_scan(force=force), sort_keys=True))
