"""``create_tenant SLUG "NAME" --admin-email E --admin-password P``: a tenant, its admin and API token."""

import sys

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.text import slugify
from rest_framework.authtoken.models import Token

from accounts import services
from accounts.models import Role


class Command(BaseCommand):
    help = "Create (or update) a tenant and its admin; prints the tenant id and the admin's API token."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("name")
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--admin-password", required=True)

    def handle(self, slug, name, admin_email, admin_password, **options):
        if slugify(slug) != slug:
            raise CommandError(f"'{slug}' is not a valid slug (lower-case letters, digits and hyphens).")
        try:
            password_validation.validate_password(admin_password)
        except ValidationError as exc:
            # Refusing would break scripted set-ups that use demo passwords; say it loudly instead.
            print(f"warning: weak admin password: {' '.join(exc.messages)}", file=sys.stderr)
        with transaction.atomic():
            tenant = services.tenant_create(slug=slug, name=name)
            if tenant.name != name:
                tenant.name = name
                tenant.save(update_fields=["name", "updated_at"])
            membership = services.membership_grant(
                tenant=tenant, email=admin_email, role=Role.TENANT_ADMIN, password=admin_password
            )
            token, _ = Token.objects.get_or_create(user=membership.user)
        self.stdout.write(f"tenant_id: {tenant.pk}")
        self.stdout.write(f"tenant_slug: {tenant.slug}")
        self.stdout.write(f"api_token: {token.key}")
