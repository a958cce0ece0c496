"""``load_workflow_templates [--tenant SLUG]``: seed 001's templates as drafts (idempotent)."""

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Tenant
from automation.workflow_templates import workflow_templates_load
from csplatform.tenancy import system_context, tenant_context


class Command(BaseCommand):
    help = "Load the workflow templates (onboarding, health alert, renewals, churn, expansion) as drafts."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Tenant slug; default: every tenant.")

    def handle(self, tenant=None, **options):
        with system_context("load_workflow_templates lists tenants"):
            tenants = list(Tenant.objects.filter(slug=tenant) if tenant else Tenant.objects.all())
        if tenant and not tenants:
            raise CommandError(f"No tenant '{tenant}'.")
        for t in tenants:
            with tenant_context(t):
                created = workflow_templates_load(tenant=t)
            self.stdout.write(f"{t.slug}: {len(created)} template(s) loaded")
