"""``python manage.py purge_history``: delete history older than each tenant's retention (cron users: daily)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Tenant
from accounts.tokens import api_token_purge
from automation import retention
from csplatform.tenancy import system_context


class Command(BaseCommand):
    help = ("Delete processed events, finished runs and their steps, delivered and dead outbox messages and audit "
            "log entries older than each tenant's retention (RetentionPolicy, else RETENTION_DEFAULTS), in batches; "
            "never pending events, queued or running runs, or messages still to deliver.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")
        parser.add_argument("--tenant", help="Only this tenant (slug).")
        parser.add_argument("--batch", type=int, default=None, help="Ids per DELETE (default RETENTION_BATCH).")
        parser.add_argument("--budget", type=float, default=None,
                            help="Stop starting new batches after this many seconds (default: run to the end).")

    def handle(self, *args, dry_run=False, tenant=None, batch=None, budget=None, **options):
        tenants = None
        if tenant:
            with system_context("purge_history: find the tenant"):
                tenants = list(Tenant.objects.filter(slug=tenant))
            if not tenants:
                raise CommandError(f"no tenant with slug '{tenant}'")
        if batch is not None and batch < 1:
            raise CommandError("--batch must be at least 1")
        result = retention.purge_history(tenants=tenants, dry_run=dry_run, batch=batch, budget=budget)
        verb = "would delete" if dry_run else "deleted"
        for slug, counts in result.by_tenant.items():
            if any(counts.values()):
                self.stdout.write(f"{slug}: {verb} {_describe(counts)}")
        total = sum(result.deleted.values())
        rate = "" if dry_run or not result.seconds else f" in {result.seconds:.1f} s ({total / result.seconds:,.0f} rows/s)"
        self.stdout.write(f"total: {verb} {_describe(result.deleted) or 'nothing'}{rate}")
        if not dry_run:
            self.stdout.write(f"api tokens dead for more than {settings.API_TOKEN_KEEP_DAYS} days: deleted "
                              f"{api_token_purge():,}")
        if not result.finished:
            self.stdout.write("stopped at the budget; run again to go on")
        if result.errors:
            raise CommandError(f"stopped early: {'; '.join(result.errors)}")


def _describe(counts) -> str:
    return ", ".join(f"{n:,} {key}" for key, n in counts.items() if n)
