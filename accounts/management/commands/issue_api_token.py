"""``issue_api_token EMAIL [--name N] [--days D | --no-expiry]``: a new API token for a user, printed once."""

import datetime

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.tokens import api_token_issue


class Command(BaseCommand):
    help = ("Issue an API token for the user with this email and print its key (shown once, stored only as a "
            "digest). Lasts API_TOKEN_TTL_DAYS by default.")

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--name", default="issue_api_token", help="A label: what or who uses the token.")
        lifetime = parser.add_mutually_exclusive_group()
        lifetime.add_argument("--days", type=int, help="Days until it expires (default: API_TOKEN_TTL_DAYS).")
        lifetime.add_argument("--no-expiry", action="store_true",
                              help="A token that never expires (revoke it when it is no longer needed).")

    def handle(self, email, name, days, no_expiry, **options):
        user = get_user_model().objects.filter(email__iexact=email.strip()).first()
        if user is None:
            raise CommandError(f"No user with the email '{email}'.")
        if not user.is_active:
            raise CommandError(f"The user '{email}' is inactive: a token would not work.")
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1.")
        lifetime = {}  # nothing: API_TOKEN_TTL
        if no_expiry:
            lifetime["ttl"] = None
        elif days is not None:
            lifetime["ttl"] = datetime.timedelta(days=days)
        token, key = api_token_issue(user=user, name=name, **lifetime)
        self.stdout.write(f"api_token: {key}")
        self.stdout.write(f"expires_at: {token.expires_at.isoformat() if token.expires_at else 'never'}")
