"""Writes and business rules of the customer data model (HackSoft style: keyword-only, atomic)."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any, Mapping

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from csplatform.tenancy import tenant_context

from . import signals
from .audit import audit_record, audit_snapshot
from .models import (
    COMPONENTS, DEFAULT_STAGES, Account, AuditLog, Goal, HealthScore, JourneyHistory, JourneyStage, Membership,
    RiskLevel, Role, Tenant,
)

TWO_PLACES = Decimal("0.01")
MAX_HIERARCHY_DEPTH = 20


# --- tenants -------------------------------------------------------------------------------------

# What the audit trail records of a tenant's settings (tenant admins change them: /api/tenant/, the admin).
TENANT_SETTINGS_FIELDS = (
    "name", "slug", "timezone", "weight_usage", "weight_engagement", "weight_support", "weight_adoption",
    "band_healthy", "band_moderate", "band_at_risk",
)


@transaction.atomic
def tenant_create(*, slug: str, name: str, settings: Mapping[str, Any] | None = None, actor=None) -> Tenant:
    """Create a tenant with seed 004's seven journey stages (idempotent on slug). ``settings`` (timezone,
    weights, bands) apply only to a new tenant; its creation is recorded in its audit trail."""
    tenant, created = Tenant.objects.get_or_create(slug=slug, defaults={**(settings or {}), "name": name})
    # The stages are the new tenant's rows: write them in its scope (row-level security on PostgreSQL).
    with tenant_context(tenant):
        for order, stage_name in enumerate(DEFAULT_STAGES, start=1):
            JourneyStage.objects.get_or_create(tenant=tenant, name=stage_name, defaults={"order": order})
        if created:
            audit_record(tenant=tenant, actor=actor, action=AuditLog.Action.CREATE, obj=tenant,
                         after=audit_snapshot(tenant, fields=TENANT_SETTINGS_FIELDS))
    return tenant


@transaction.atomic
def tenant_update_settings(*, tenant: Tenant, changes: Mapping[str, Any] | None = None, actor=None) -> Tenant:
    """Change a tenant's settings (``changes``, or what the caller already set on ``tenant``), validate the
    weights and bands, save and record the change in the audit trail."""
    stored = Tenant.objects.select_for_update().get(pk=tenant.pk)
    before = audit_snapshot(stored, fields=TENANT_SETTINGS_FIELDS)
    for field, value in (changes or {}).items():
        if field not in TENANT_SETTINGS_FIELDS:
            raise ValidationError({field: "This setting cannot be changed here."})
        setattr(tenant, field, value)
    tenant_validate_health_settings(tenant)
    tenant.save()
    audit_record(tenant=tenant, actor=actor, action=AuditLog.Action.UPDATE, obj=tenant, before=before,
                 after=audit_snapshot(tenant, fields=TENANT_SETTINGS_FIELDS))
    return tenant


def _membership_snapshot(membership: Membership) -> dict:
    return {"user": membership.user.email or membership.user.get_username(), "role": membership.role}


def _audit_membership(membership: Membership, *, action: str, actor, before: dict | None,
                      after: dict | None) -> None:
    # Memberships are written by commands too, outside any tenant scope: the entry is the tenant's row.
    with tenant_context(membership.tenant):
        audit_record(tenant=membership.tenant, actor=actor, action=action, obj=membership, before=before, after=after)


@transaction.atomic
def membership_grant(*, tenant: Tenant, email: str, role: str, password: str | None = None,
                     first_name: str = "", last_name: str = "", staff: bool = True,
                     update_existing: bool = False, actor=None) -> Membership:
    """Give the user with this email ``role`` in ``tenant``, creating the user if needed.

    An existing user's name and password are only changed with ``update_existing`` (operator
    commands): granting access in one tenant must not take over an account used in another.
    A new membership or a changed role is recorded in the audit trail with ``actor``."""
    User = get_user_model()
    user = User.objects.filter(email__iexact=email).first() or User(username=email, email=email)
    may_edit = user._state.adding or update_existing
    if may_edit and (first_name or last_name):
        user.first_name, user.last_name = first_name, last_name
    if may_edit and password:
        user.set_password(password)
    elif user._state.adding:
        user.set_unusable_password()
    user.is_staff = user.is_staff or staff
    user.save()
    existing = Membership.objects.select_for_update().filter(user=user, tenant=tenant).first()
    before = _membership_snapshot(existing) if existing is not None else None
    membership, created = Membership.objects.update_or_create(user=user, tenant=tenant, defaults={"role": role})
    _audit_membership(membership, action=AuditLog.Action.CREATE if created else AuditLog.Action.UPDATE, actor=actor,
                      before=before, after=_membership_snapshot(membership))
    return membership


@transaction.atomic
def membership_set_role(*, membership: Membership, role: str, actor=None) -> Membership:
    """Change a member's role (the role stored in the database is the "before" of the audit entry)."""
    if role not in Role.values:
        raise ValidationError({"role": f"'{role}' is not a role; use one of {', '.join(Role.values)}."})
    stored = Membership.objects.select_for_update().select_related("user").get(pk=membership.pk)
    before = _membership_snapshot(stored)
    membership.role = role
    membership.save(update_fields=["role"])
    _audit_membership(membership, action=AuditLog.Action.UPDATE, actor=actor, before=before,
                      after=_membership_snapshot(membership))
    return membership


@transaction.atomic
def membership_revoke(*, membership: Membership, actor=None) -> None:
    """Take a user's access to a tenant away (the user stays: they may belong to other tenants)."""
    before = _membership_snapshot(membership)
    pk = membership.pk
    membership.delete()
    membership.pk = pk  # the audit entry names the row that was deleted
    _audit_membership(membership, action=AuditLog.Action.DELETE, actor=actor, before=before, after=None)


def tenant_validate_health_settings(tenant: Tenant) -> None:
    """Weights must not all be zero; bands must be strictly descending."""
    if sum(tenant.health_weights.values()) <= 0:
        raise ValidationError({"weight_usage": "At least one health score weight must be above zero."})
    if not tenant.band_healthy > tenant.band_moderate > tenant.band_at_risk:
        raise ValidationError({"band_healthy": "Bands must descend: healthy > moderate > at risk."})


# --- accounts ------------------------------------------------------------------------------------

def account_validate_parent(*, account: Account, parent: Account | None) -> None:
    """A parent must be in the same tenant and must not be the account itself or one of its descendants."""
    if parent is None:
        return
    if parent.tenant_id != account.tenant_id:
        raise ValidationError({"parent": "The parent account must belong to the same tenant."})
    # Walk up from the parent through the database (not through possibly stale in-memory objects).
    node_id, depth = parent.pk, 0
    while node_id is not None:
        if node_id == account.pk:
            raise ValidationError({"parent": "An account cannot be its own parent or the parent of its ancestor."})
        depth += 1
        if depth > MAX_HIERARCHY_DEPTH:
            raise ValidationError({"parent": f"The hierarchy cannot be deeper than {MAX_HIERARCHY_DEPTH} levels."})
        node_id = Account.objects.filter(pk=node_id).values_list("parent_id", flat=True).first()


@transaction.atomic
def account_save(*, account: Account, changes: Mapping[str, Any] | None = None) -> Account:
    """Create or update an account: validates the hierarchy and reports a status change."""
    created = account._state.adding
    old_status = None if created else Account.objects.filter(pk=account.pk).values_list("status", flat=True).first()
    tags = None
    for field, value in (changes or {}).items():
        if field == "tags":
            tags = value
        else:
            setattr(account, field, value)
    account_validate_parent(account=account, parent=account.parent)
    account.save()
    if tags is not None:
        account.tags.set(tags)
    if created or old_status != account.status:
        signals.status_changed.send(
            sender=Account, account=account, from_status=old_status, to_status=account.status, created=created
        )
    return account


# --- health scores -------------------------------------------------------------------------------

def risk_level_for(*, tenant: Tenant, score: Decimal) -> str:
    if score >= tenant.band_healthy:
        return RiskLevel.HEALTHY
    if score >= tenant.band_moderate:
        return RiskLevel.MODERATE
    if score >= tenant.band_at_risk:
        return RiskLevel.AT_RISK
    return RiskLevel.CRITICAL


def health_score_compute(*, tenant: Tenant, components: Mapping[str, Decimal | None]) -> tuple[Decimal, dict]:
    """Weighted overall score from the components present; missing ones are left out and the other
    weights re-normalised. Returns the score and a breakdown of each used component's contribution.

    Contributions are rounded to cents so that they add up to the rounded overall score exactly
    (largest remainder), as a reader of the breakdown expects."""
    weights = tenant.health_weights
    present = {}
    for name in COMPONENTS:
        value = components.get(name)
        if value is None:
            continue
        try:
            present[name] = Decimal(str(value))
        except (ArithmeticError, ValueError):
            raise ValidationError({name: "A component score must be a number between 0 and 100."}) from None
        if not present[name].is_finite():
            raise ValidationError({name: "A component score must be a number between 0 and 100."})
    total_weight = sum(weights[name] for name in present)
    if not present or total_weight <= 0:
        raise ValidationError({"usage_score": "At least one component score with a non-zero weight is required."})
    shares = {name: weights[name] / total_weight for name in present}
    raw = {name: present[name] * shares[name] for name in present}
    overall = sum(raw.values(), Decimal("0")).quantize(TWO_PLACES, ROUND_HALF_UP)
    # Largest remainder: floor every contribution to cents, then hand the missing cents to the
    # components with the biggest remainders, so the rounded contributions sum to ``overall``.
    rounded = {name: value.quantize(TWO_PLACES, ROUND_FLOOR) for name, value in raw.items()}
    cents = int(((overall - sum(rounded.values(), Decimal("0"))) / TWO_PLACES).to_integral_value())
    by_remainder = sorted(present, key=lambda name: raw[name] - rounded[name], reverse=True)
    for index in range(cents):
        rounded[by_remainder[index % len(by_remainder)]] += TWO_PLACES
    breakdown = {
        name: {
            "score": float(present[name]),
            "weight": float(shares[name].quantize(Decimal("0.0001"), ROUND_HALF_UP)),
            "contribution": float(rounded[name]),
        }
        for name in present
    }
    missing = [name for name in COMPONENTS if name not in present]
    if missing:
        breakdown["missing"] = missing
    return overall, breakdown


@transaction.atomic
def health_score_record(*, account: Account, components: Mapping[str, Any],
                        calculated_at: datetime | None = None) -> HealthScore:
    """Record a new score for ``account``.

    ``previous_score`` is the score that preceded this one in time (for a backdated score: the latest
    one recorded before its ``calculated_at``). Only a score that is now the latest updates the
    account's ``health_score`` / ``risk_level``; a backdated one is history and leaves them alone.
    """
    caller_account = account
    account = Account.objects.select_for_update().select_related("tenant").get(pk=account.pk)
    overall, breakdown = health_score_compute(tenant=account.tenant, components=components)
    calculated_at = calculated_at or timezone.now()
    history = HealthScore.objects.filter(account=account).order_by("-calculated_at", "-id")
    latest = history.first()
    previous = history.filter(calculated_at__lte=calculated_at).first()
    score = HealthScore(
        tenant=account.tenant, account=account, overall_score=overall, breakdown=breakdown,
        risk_level=risk_level_for(tenant=account.tenant, score=overall),
        previous_score=previous.overall_score if previous else None,
        calculated_at=calculated_at,
        **{name: components.get(name) for name in COMPONENTS},
    )
    score.full_clean()
    score.save()
    if latest is None or score.calculated_at >= latest.calculated_at:
        Account.objects.filter(pk=account.pk).update(
            health_score=overall, risk_level=score.risk_level, updated_at=timezone.now()
        )
        for obj in (account, caller_account):
            obj.health_score, obj.risk_level = overall, score.risk_level
    signals.health_score_recorded.send(sender=HealthScore, score=score, previous=previous)
    return score


# --- journey -------------------------------------------------------------------------------------

@transaction.atomic
def journey_move_to_stage(*, account: Account, stage: JourneyStage, moved_by=None, reason: str = "",
                          at: datetime | None = None) -> JourneyHistory:
    """Close the account's open stay (recording its duration) and open one in ``stage``."""
    if stage.tenant_id != account.tenant_id:
        raise ValidationError({"stage": "The stage must belong to the account's tenant."})
    at = at or timezone.now()
    caller_account = account
    account = Account.objects.select_for_update().get(pk=account.pk)
    open_row = JourneyHistory.objects.filter(account=account, exited_at__isnull=True).first()
    if open_row is not None:
        if open_row.stage_id == stage.pk:
            return open_row
        if at < open_row.entered_at:
            raise ValidationError({"at": "A move cannot happen before the account entered its current stage."})
        open_row.exited_at = at
        open_row.duration = at - open_row.entered_at
        open_row.save(update_fields=["exited_at", "duration"])
    history = JourneyHistory.objects.create(
        tenant_id=account.tenant_id, account=account, stage=stage,
        from_stage=open_row.stage if open_row else None, entered_at=at, moved_by=moved_by, reason=reason,
    )
    Account.objects.filter(pk=account.pk).update(current_stage=stage, updated_at=timezone.now())
    for obj in (account, caller_account):
        obj.current_stage = stage
    signals.stage_changed.send(
        sender=Account, account=account, history=history,
        from_stage=open_row.stage if open_row else None, to_stage=stage,
    )
    return history


# --- goals ---------------------------------------------------------------------------------------

@transaction.atomic
def goal_save(*, goal: Goal, changes: Mapping[str, Any] | None = None) -> Goal:
    """Create or update a goal; reports status changes (achieved, missed, at risk) as a domain event."""
    created = goal._state.adding
    old_status = None if created else Goal.objects.filter(pk=goal.pk).values_list("status", flat=True).first()
    for field, value in (changes or {}).items():
        setattr(goal, field, value)
    if goal.status == Goal.Status.ACHIEVED and goal.achieved_at is None:
        goal.achieved_at = timezone.now()
    goal.save()
    if created or old_status != goal.status:
        signals.goal_status_changed.send(
            sender=Goal, goal=goal, from_status=old_status, to_status=goal.status, created=created
        )
    return goal
