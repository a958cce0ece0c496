"""``deliver_outbox``: one delivery pass for cron users (the same service as the beat task)."""

import json

from django.core.management.base import BaseCommand

from delivery import services


class Command(BaseCommand):
    help = "Re-claim outbox messages stuck in sending, then deliver every due message once (one pass)."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=None, help="Claim at most this many messages.")
        parser.add_argument("--budget", type=float, default=None, help="Stop claiming after this many seconds.")

    def handle(self, *args, limit=None, budget=None, **options):
        result = services.deliver_outbox_pass(limit=limit, budget=budget)
        self.stdout.write(json.dumps(result, sort_keys=True))
