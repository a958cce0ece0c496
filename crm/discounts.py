"""Discount codes: ``CRM{percent}-{random}`` (seed 002's form), one-time use, 7-day expiry by default.

``discount_issue`` creates a code for a contact (and the execution whose step offers it);
``discount_redeem`` validates and marks it used in one conditional UPDATE, so two concurrent redeems
of one code cannot both succeed. A code of another tenant is "not found", like an unknown one.
"""

from __future__ import annotations

import datetime
import secrets
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import CRMDiscountCode
from .services import ConversionError, execution_convert

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are read aloud and typed
RANDOM_LENGTH = 10
DEFAULT_EXPIRY_DAYS = 7


class RedeemError(Exception):
    """Why a code cannot be redeemed: ``reason`` is not_found, used or expired."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


def new_code(percent: int) -> str:
    return f"CRM{int(percent)}-" + "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))


def normalise(code: str) -> str:
    return (code or "").strip().upper()


def discount_issue(*, contact, percent: int, execution=None, now: datetime.datetime | None = None,
                   expiry_days: int | None = None) -> CRMDiscountCode:
    if not 1 <= int(percent) <= 100:
        raise ValueError("percent must be between 1 and 100")
    now = now or timezone.now()
    days = expiry_days or DEFAULT_EXPIRY_DAYS
    for _ in range(5):  # 32^10 codes: a clash is all but impossible, but never fail on one
        try:
            with transaction.atomic():
                return CRMDiscountCode.objects.create(
                    tenant_id=contact.tenant_id, code=new_code(percent), percent=int(percent), contact=contact,
                    execution=execution, expires_at=now + datetime.timedelta(days=days), created_at=now,
                )
        except IntegrityError:
            continue
    raise RuntimeError("could not generate a unique discount code")


def discount_redeem(*, tenant, code: str, now: datetime.datetime | None = None,
                    value: Decimal | None = None, convert: bool = True) -> CRMDiscountCode:
    """Mark ``code`` used (once). With ``convert`` an active journey that issued it is converted
    (``value`` recorded): redeeming the winback offer is the winback's conversion."""
    now = now or timezone.now()
    key = normalise(code)
    codes = CRMDiscountCode.objects.for_tenant(tenant)
    with transaction.atomic():
        updated = codes.filter(code=key, used_at__isnull=True, expires_at__gt=now).update(used_at=now)
        if not updated:
            row = codes.filter(code=key).first()
            if row is None:
                raise RedeemError("not_found", f"Discount code '{key}' does not exist.")
            if row.used_at is not None:
                raise RedeemError("used", f"Discount code '{key}' was already redeemed at {row.used_at.isoformat()}.")
            raise RedeemError("expired", f"Discount code '{key}' expired at {row.expires_at.isoformat()}.")
        row = codes.select_related("execution", "contact").get(code=key)
        if convert and row.execution is not None and row.execution.status in (
            row.execution.Status.ACTIVE, row.execution.Status.COMPLETED,
        ):
            try:
                execution_convert(execution=row.execution, value=value, now=now, reason=f"discount code {key} redeemed")
            except ConversionError:
                pass  # converted meanwhile: the redeem itself stands
        return row
