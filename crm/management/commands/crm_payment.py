"""``python manage.py crm_payment failed|succeeded --tenant SLUG --account ID [--amount N] [--invoice X]``:
report a payment event (billing integrations without a webhook, support staff, demos)."""

import json

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Account, Tenant
from crm import triggers
from csplatform.tenancy import tenant_context


class Command(BaseCommand):
    help = "payment failed -> start the rescue journey; payment succeeded -> convert the open rescue."

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
            if outcome == "failed":
                out = triggers.payment_failed(acc, amount=amount, invoice_id=invoice).as_dict()
            else:
                out = {"converted": [e.pk for e in triggers.payment_succeeded(acc, amount=amount, invoice_id=invoice)]}
        self.stdout.write(json.dumps(out, sort_keys=True))
