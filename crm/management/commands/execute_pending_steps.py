"""``python manage.py execute_pending_steps [--loop SECONDS]``: send every due CRM journey step once
(what celery beat runs every minute), for cron users."""

import json
import time

from django.core.management.base import BaseCommand

from crm.scheduler import execute_pending_steps


class Command(BaseCommand):
    help = "Send every due CRM journey step once (quiet hours respected; safe to run concurrently)."

    def add_arguments(self, parser):
        parser.add_argument("--loop", type=float, default=0, help="Repeat every N seconds until interrupted.")

    def handle(self, *args, loop=0, **options):
        while True:
            self.stdout.write(json.dumps(execute_pending_steps(), sort_keys=True))
            if not loop:
                return
            time.sleep(loop)
