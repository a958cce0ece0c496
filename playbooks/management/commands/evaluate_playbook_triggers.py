"""Evaluate every enabled playbook trigger of every tenant (or of one), as evaluate-all does.

    python manage.py evaluate_playbook_triggers [--tenant SLUG_OR_ID ...] [--dry-run]

For cron. Tenants are listed in a system context (the one cross-tenant read); each tenant is then
evaluated in its own tenancy context, so row-level security binds it as it binds a request. One
tenant failing does not stop the others; the command exits non-zero if any failed.
"""

from __future__ import annotations

import time
import uuid

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Tenant
from csplatform.tenancy import system_context, tenant_context
from playbooks import services
from playbooks.models import PlaybookExecution


class Command(BaseCommand):
    help = "Evaluate the enabled playbook triggers (seed 000's evaluate-all) tenant by tenant."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", action="append", default=[], metavar="SLUG",
                            help="Only this tenant (slug or id); repeat for several.")
        parser.add_argument("--dry-run", action="store_true",
                            help="Evaluate without saving counters or starting executions (like /test).")

    def handle(self, *args, **options):
        with system_context("evaluate_playbook_triggers: list tenants"):
            tenants = list(Tenant.objects.order_by("slug"))
        if options["tenant"]:
            chosen = []
            for key in options["tenant"]:
                match = [t for t in tenants if t.slug == key or _same_id(t.pk, key)]
                if not match:
                    raise CommandError(f"No tenant '{key}'.")
                chosen.extend(m for m in match if m not in chosen)
            tenants = chosen
        failures = 0
        for tenant in tenants:
            started = time.monotonic()
            try:
                with tenant_context(tenant):
                    lines = self._dry_run(tenant) if options["dry_run"] else self._evaluate(tenant)
            except Exception as exc:  # one tenant's failure must not stop the others
                failures += 1
                self.stderr.write(self.style.ERROR(f"{tenant.slug}: failed: {exc!r}"))
                continue
            seconds = time.monotonic() - started
            self.stdout.write(f"{tenant.slug}: {lines[0]} ({seconds:.2f}s)")
            for line in lines[1:]:
                self.stdout.write(f"  {line}")
        if failures:
            raise CommandError(f"{failures} tenant(s) failed.")

    def _evaluate(self, tenant) -> list[str]:
        outcome = services.playbook_triggers_evaluate_all(tenant=tenant, source=PlaybookExecution.Source.SCHEDULE)
        lines = [f"{outcome['total_triggers_evaluated']} trigger(s) evaluated, {outcome['total_triggered']} fired"]
        for result in outcome["results"]:
            lines.append(f"{result['playbook_type']}: {result['message']}; "
                         f"{result['executions_created']} execution(s) started")
        return lines

    def _dry_run(self, tenant) -> list[str]:
        triggers = services.playbook_triggers_ensure(tenant)
        enabled = [t for t in triggers.values() if t.auto_trigger_enabled]
        lines = [f"{len(enabled)} enabled trigger(s), dry run"]
        for trigger in enabled:
            result = services.playbook_trigger_test(tenant=tenant, playbook_type=trigger.playbook_type)
            lines.append(f"{trigger.playbook_type}: {result['message']}")
        return lines


def _same_id(pk, key: str) -> bool:
    try:
        return pk == uuid.UUID(key)
    except ValueError:
        return False
