"""``seed_demo``: load the Acme Corporation sample tenant of seed 004 (idempotent)."""

from django.core.management.base import BaseCommand

from accounts.demo import DEMO_ADMIN, demo_seed
from accounts.models import Account
from csplatform.tenancy import tenant_context


class Command(BaseCommand):
    help = "Load the demo tenant acme-corp (admin@acme.com / password123) with accounts and history."

    def handle(self, **options):
        tenant = demo_seed()
        self.stdout.write(f"Demo tenant '{tenant.slug}' ({tenant.pk}) ready; log in as {DEMO_ADMIN[0]}.")
        with tenant_context(tenant):
            for account in Account.objects.for_tenant(tenant).order_by("name"):
                self.stdout.write(
                    f"  {account.name}: health {account.health_score} ({account.get_risk_level_display()})"
                )
