"""``python manage.py crm_payment failed|succeeded --tenant SLUG --account ID [--amount N] [--invoice X]``:
report a payment event (billing integrations without a webhook, support staff, demos). It raises the
``payment_failed`` / ``payment_succeeded`` event; the journeys' rules react when the engine processes it
(the rescue starts, or the open rescue converts), and their Runs say what happened."""

import json

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Account, Tenant
from crm import triggers
from csplatform.tenancy import tenant_context


class Command(BaseCommand):
    help = "Raise payment_failed (the rescue journey starts) or payment_succeeded (the open rescue converts)."

    def add_arguments(self, parser):
        parser.add_argument("outcome", choices=["failed", "succeeded"])
        parser.add_argument("--tenant", required=True, help="Tenant slug or id.")
        parser.add_argument("--account", required=True, help="Account id.")
        parser.add_argument("--amount", default=None)
        parser.add_argument("--invoice", default="")

    def handle(self, *args, outcome, tenant, account, amount=None, invoice="", **options):
        t = Tenant.objects.filter(slug=tenant).first()
        if t is None:
            try:
                t = Tenant.objects.filter(pk=tenant).first()
            except Exception:
                t = None
        if t is None:
            raise CommandError(f"no tenant '{tenant}'")
        with tenant_context(t):
            try:
                acc = Account.objects.for_tenant(t).select_related("tenant").get(pk=account)
            except Exception:
                raise CommandError(f"no account '{account}' in tenant {t.slug}") from None
            report = triggers.payment_failed if outcome == "failed" else triggers.payment_succeeded
            event = report(acc, amount=amount, invoice_id=invoice)
        # No event: no live rule listens (the tenant's rescue journeys are inactive).
        self.stdout.write(json.dumps({"event": f"payment_{outcome}", "event_id": event.pk if event else None}))
