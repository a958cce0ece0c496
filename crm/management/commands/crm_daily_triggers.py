"""``python manage.py crm_daily_triggers [--force]``: raise the trial-ending and inactivity events (each
tenant once a day unless ``--force``); the journeys' rules start the journeys when the engine processes them."""

import json

from django.core.management.base import BaseCommand

from crm.triggers import daily_scan


class Command(BaseCommand):
    help = "Raise trial_ending and inactivity events where due (once per tenant and day); journeys start from them."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Scan even tenants already scanned today.")

    def handle(self, *args, force=False, **options):
        self.stdout.write(json.dumps(daily_scan(force=force), sort_keys=True))
