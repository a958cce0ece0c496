"""Run a SuccessPlay for one account now (seed 004's ``trigger_playbook_manually``), for cron and support.

    python manage.py trigger_playbook PLAYBOOK_ID ACCOUNT_ID --reason "..." [--force] [--user EMAIL]

The play and the account are looked up in a system context (the one cross-tenant read), then the play
runs in its tenant's own context. The cooldown applies unless ``--force`` (which needs ``--reason``).
"""

from __future__ import annotations

import uuid

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Account, Membership
from csplatform.tenancy import system_context, tenant_context
from playbooks import services
from playbooks.models import Playbook


class Command(BaseCommand):
    help = "Trigger a SuccessPlay for an account now (the cooldown applies unless --force)."

    def add_arguments(self, parser):
        parser.add_argument("playbook_id", type=int)
        parser.add_argument("account_id")
        parser.add_argument("--reason", default="", help="Why (required with --force).")
        parser.add_argument("--force", action="store_true", help="Run even inside the play's cooldown.")
        parser.add_argument("--user", default="", help="Email of the tenant member to record as the starter.")

    def handle(self, *args, **options):
        try:
            account_id = uuid.UUID(options["account_id"])
        except ValueError:
            raise CommandError(f"'{options['account_id']}' is not an account id.") from None
        with system_context("trigger_playbook: find the play and the account"):
            play = Playbook.objects.select_related("tenant").filter(pk=options["playbook_id"]).first()
            if play is None:
                raise CommandError(f"No SuccessPlay {options['playbook_id']}.")
            account = Account.objects.for_tenant(play.tenant_id).filter(pk=account_id).first()
            if account is None:
                raise CommandError(f"No account {account_id} in {play.tenant.slug} (the play's tenant).")
            user = None
            if options["user"]:
                user = get_user_model().objects.filter(email__iexact=options["user"]).first()
                if user is None or not Membership.objects.filter(user=user, tenant=play.tenant).exists():
                    raise CommandError(f"{options['user']} is not a member of {play.tenant.slug}.")
        if options["force"] and not options["reason"].strip():
            raise CommandError("--force needs a --reason.")
        with tenant_context(play.tenant):
            try:
                execution = services.trigger_playbook_manually(play, account, options["reason"], user=user,
                                                               force=options["force"])
            except services.PlaybookCooldown as exc:
                raise CommandError(exc.message) from None
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"{play.name} ran for {account.name}: execution {execution.pk} {execution.status} "
                          f"(run {execution.run_id}): {execution.outcome}")
