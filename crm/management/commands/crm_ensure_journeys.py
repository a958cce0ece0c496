"""``python manage.py crm_ensure_journeys``: give every tenant the default journeys it lacks, and every journey
the managed automation rules it lacks (``crm.rules``). Idempotent."""

from django.core.management.base import BaseCommand

from accounts.models import Tenant
from crm.services import crm_journeys_ensure
from csplatform.tenancy import tenant_context


class Command(BaseCommand):
    help = ("Create the six default CRM journeys for every tenant that lacks them (never overwrites edits) and the "
            "rules that start the journeys where they are missing.")

    def handle(self, *args, **options):
        for tenant in Tenant.objects.order_by("slug"):
            with tenant_context(tenant):
                created = crm_journeys_ensure(tenant)
            self.stdout.write(f"{tenant.slug}: {len(created)} journeys created")
