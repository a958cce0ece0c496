"""``create_tenant SLUG "NAME" --admin-email E --admin-password P``: a tenant, its admin and API token."""

import re

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction
from accounts import services
from accounts.models import Role, Tenant
from accounts.tokens import api_token_issue

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SLUG_MAX_LENGTH = Tenant._meta.get_field("slug").max_length


class Command(BaseCommand):
    help = ("Create (or update) a tenant and its admin; prints the tenant id and a new API token of the admin "
            "(each run issues one: a key is shown only once).")

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("name")
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--admin-password", required=True)

    def handle(self, slug, name, admin_email, admin_password, **options):
        if not SLUG_RE.match(slug) or len(slug) > SLUG_MAX_LENGTH:
            raise CommandError(
                f"'{slug}' is not a valid slug (lower-case letters, digits and single hyphens, "
                f"at most {SLUG_MAX_LENGTH} characters)."
            )
        name = name.strip()
        if not name:
            raise CommandError("The tenant name must not be empty.")
        try:
            validate_email(admin_email)
        except ValidationError:
            raise CommandError(f"'{admin_email}' is not a valid e-mail address.") from None
        if not admin_password:
            raise CommandError("The admin password must not be empty.")
        try:
            password_validation.validate_password(admin_password)
        except ValidationError as exc:
            # Refusing would break scripted set-ups that use demo passwords; say it loudly instead.
            self.stderr.write(f"warning: weak admin password: {' '.join(exc.messages)}")
        with transaction.atomic():
            tenant = services.tenant_create(slug=slug, name=name)
            if tenant.name != name:
                tenant.name = name
                tenant.save(update_fields=["name", "updated_at"])
            membership = services.membership_grant(
                tenant=tenant, email=admin_email, role=Role.TENANT_ADMIN, password=admin_password,
                update_existing=True,
            )
            _token, key = api_token_issue(user=membership.user, name="create_tenant")
        self.stdout.write(f"tenant_id: {tenant.pk}")
        self.stdout.write(f"tenant_slug: {tenant.slug}")
        self.stdout.write(f"tenant_number: {tenant.number}")
        self.stdout.write(f"api_token: {key}")
