"""``import_health_scores --tenant SLUG_OR_ID FILE.csv|- [--at ISO_TIME]``: the nightly health-score import.

The CSV has a header row: ``account`` (the account's id; ``account_id`` and ``id`` are read as it) and any of
``usage_score``, ``engagement_score``, ``support_sentiment_score``, ``adoption_score`` (0-100; an empty cell is a
missing component, left out and the others re-weighted, as ``POST /api/health-scores/`` does). Each row is
recorded as ``health_score_record`` records one score (overall score and risk level from the tenant's weights,
carried adjustment, the account's mirrors, the events rules listen to), through the bulk path
(``accounts.health_import``). Bad rows are reported with their line and left out; the others are recorded.
"""

from __future__ import annotations

import csv
import sys
import uuid
from itertools import islice

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.health_import import CHUNK, health_scores_import
from accounts.models import COMPONENTS, Tenant
from csplatform.tenancy import system_context, tenant_context

ACCOUNT_COLUMNS = ("account", "account_id", "id")


class Command(BaseCommand):
    help = ("Record a health score for every account of a CSV file (header: account, usage_score, engagement_score, "
            "support_sentiment_score, adoption_score); '-' reads standard input.")
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("file", help="The CSV file, or - for standard input.")
        parser.add_argument("--tenant", required=True, help="The tenant's slug or id.")
        parser.add_argument("--at", help="When the scores were calculated (ISO 8601; default: now). Every row "
                                         "gets this time; a time in the future is refused.")

    def handle(self, file, tenant, at=None, **options):
        tenant = _tenant(tenant)
        calculated_at = _calculated_at(at)
        if file == "-":
            return self._import(options.get("stdin") or sys.stdin, tenant, calculated_at)
        try:
            with open(file, newline="", encoding="utf-8-sig") as stream:  # -sig: a spreadsheet's byte-order mark
                return self._import(stream, tenant, calculated_at)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror or exc}.") from None

    def _import(self, stream, tenant: Tenant, calculated_at) -> None:
        reader = csv.DictReader(stream)
        account_column, components = _columns(reader.fieldnames)
        recorded, failed = 0, 0
        with tenant_context(tenant):
            while batch := list(islice(_rows(reader, account_column, components), CHUNK)):
                result = health_scores_import(tenant=tenant, rows=[(account, values) for _, account, values in batch],
                                              calculated_at=calculated_at)
                recorded += result.recorded
                lines = {_canonical(account): line for line, account, _ in batch}
                for account, errors in result.errors.items():
                    failed += 1
                    reasons = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items())
                    self.stderr.write(f"line {lines.get(account, '?')} (account {account}): {reasons}")
        self.stdout.write(f"recorded: {recorded}")
        self.stdout.write(f"rejected: {failed}")
        if failed:
            raise CommandError(f"{failed} row(s) were not recorded (listed above); the other {recorded} were.")


def _tenant(key: str) -> Tenant:
    with system_context("import_health_scores finds its tenant"):
        try:
            found = Tenant.objects.filter(pk=uuid.UUID(key)).first()
        except ValueError:
            found = None
        found = found or Tenant.objects.filter(slug=key).first()
    if found is None:
        raise CommandError(f"No tenant '{key}' (give its slug or id).")
    return found


def _calculated_at(value: str | None):
    if value is None:
        return timezone.now()
    try:
        at = parse_datetime(value)
    except ValueError:
        at = None
    if at is None:
        raise CommandError(f"--at: '{value}' is not an ISO 8601 date and time (e.g. 2026-12-01T02:00:00Z).")
    if timezone.is_naive(at):
        at = timezone.make_aware(at)
    if at > timezone.now():
        raise CommandError("--at: a health score cannot be dated in the future.")
    return at


def _canonical(account: str) -> str:
    """How the import names an account in its errors (an id in any spelling UUIDs allow, else as given)."""
    try:
        return str(uuid.UUID(account))
    except ValueError:
        return account


def _columns(header: list[str] | None) -> tuple[str, list[str]]:
    """The account column and the component columns of the header; anything else is an error naming it."""
    names = [name.strip() for name in header or []]
    accounts = [name for name in names if name in ACCOUNT_COLUMNS]
    if len(accounts) != 1:
        raise CommandError(f"The CSV header needs one account column ({', '.join(ACCOUNT_COLUMNS)}); "
                           f"it has: {', '.join(names) or 'nothing'}.")
    if "overall_score" in names:
        raise CommandError("overall_score is computed from the components with the tenant's weights: give "
                           f"{', '.join(COMPONENTS)} instead.")
    unknown = [name for name in names if name not in ACCOUNT_COLUMNS and name not in COMPONENTS]
    if unknown:
        raise CommandError(f"Unknown column(s): {', '.join(unknown)}; the components are {', '.join(COMPONENTS)}.")
    components = [name for name in names if name in COMPONENTS]
    if not components:
        raise CommandError(f"The CSV header names no component ({', '.join(COMPONENTS)}).")
    return accounts[0], components


def _rows(reader: csv.DictReader, account_column: str, components: list[str]):
    """``(line, account, components)`` per data row; an empty cell is a missing component."""
    for row in reader:
        row = {(key or "").strip(): value for key, value in row.items()}
        values = {name: (row.get(name) or "").strip() or None for name in components}
        yield reader.line_num, (row.get(account_column) or "").strip(), values
