"""Writes and business rules of the customer data model (HackSoft style: keyword-only, atomic)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from itertools import groupby
from typing import Any, Mapping

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from csplatform.tenancy import system_context, tenant_context

from . import signals
from .audit import audit_record, audit_snapshot
from .models import (
    COMPONENTS, DEFAULT_STAGES, Account, AuditLog, Engagement, Goal, HealthScore, JourneyHistory, JourneyStage,
    Membership, Note, RiskLevel, Role, Task, Tenant,
)

log = logging.getLogger("accounts.services")

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
    # A membership row is the tenant's (row-level security on PostgreSQL): an operator command runs
    # with no tenant in scope, so write it in the tenant's.
    with tenant_context(tenant):
        existing = Membership.objects.select_for_update().filter(user=user, tenant=tenant).first()
        before = _membership_snapshot(existing) if existing is not None else None
        membership, created = Membership.objects.update_or_create(user=user, tenant=tenant, defaults={"role": role})
        _audit_membership(membership, action=AuditLog.Action.CREATE if created else AuditLog.Action.UPDATE,
                          actor=actor, before=before, after=_membership_snapshot(membership))
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


# Mirrors written only by their services (health_score_record, journey_move_to_stage): a save of an account
# loaded before one of them ran (a rule's account, after its update_health_score) must not write them back.
ACCOUNT_MIRRORS = ("health_score", "risk_level", "current_stage")


@transaction.atomic
def account_save(*, account: Account, changes: Mapping[str, Any] | None = None) -> Account:
    """Create or update an account: validates the hierarchy and reports a status change. An update writes
    every field but the mirrors (``ACCOUNT_MIRRORS``)."""
    created = account._state.adding
    old_status = None if created else Account.objects.filter(pk=account.pk).values_list("status", flat=True).first()
    tags = None
    for field, value in (changes or {}).items():
        if field == "tags":
            tags = value
        else:
            setattr(account, field, value)
    account_validate_parent(account=account, parent=account.parent)
    if created:
        account.save()
    else:
        account.save(update_fields=[f.name for f in Account._meta.concrete_fields
                                    if not f.primary_key and f.name not in ACCOUNT_MIRRORS])
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


@dataclass(frozen=True)
class _Adjustment:
    value: Decimal = Decimal("0")
    reason: str = ""
    expires_at: datetime | None = None
    by: str = ""

    @classmethod
    def of(cls, score: HealthScore | None, at: datetime) -> "_Adjustment":
        """The adjustment of ``score`` if it is still active at ``at``, else none."""
        if score is None or not score.adjustment_active_at(at):
            return cls()
        by = ((score.breakdown or {}).get("adjustment") or {}).get("by", "")
        return cls(score.adjustment, score.adjustment_reason, score.adjustment_expires_at, by)


def _apply_adjustment(weighted: Decimal, breakdown: dict, adjustment: _Adjustment) -> tuple[Decimal, dict]:
    """clamp(weighted + adjustment, 0, 100); the breakdown records the adjustment when there is one."""
    if not adjustment.value:
        return weighted, breakdown
    overall = min(max(weighted + adjustment.value, Decimal("0")), Decimal("100")).quantize(TWO_PLACES, ROUND_HALF_UP)
    breakdown = {**breakdown, "adjustment": {
        "value": float(adjustment.value), "reason": adjustment.reason,
        "expires_at": adjustment.expires_at.isoformat() if adjustment.expires_at else None,
        "by": adjustment.by, "weighted_score": float(weighted),
    }}
    return overall, breakdown


def _health_score_write(*, account: Account, components: Mapping[str, Any], calculated_at: datetime | None,
                        adjustment: _Adjustment | None) -> HealthScore:
    """Write one new score row (``adjustment`` None = carry the adjustment active at ``calculated_at``),
    mirror it on the account if it is the latest, and send ``health_score_recorded``. Caller: atomic."""
    caller_account = account
    account = Account.objects.select_for_update().select_related("tenant").get(pk=account.pk)
    weighted, breakdown = health_score_compute(tenant=account.tenant, components=components)
    calculated_at = calculated_at or timezone.now()
    history = HealthScore.objects.filter(account=account).order_by("-calculated_at", "-id")
    latest = history.first()
    previous = history.filter(calculated_at__lte=calculated_at).first()
    if adjustment is None:
        adjustment = _Adjustment.of(previous, calculated_at)
    overall, breakdown = _apply_adjustment(weighted, breakdown, adjustment)
    score = HealthScore(
        tenant=account.tenant, account=account, overall_score=overall, breakdown=breakdown,
        risk_level=risk_level_for(tenant=account.tenant, score=overall),
        previous_score=previous.overall_score if previous else None,
        calculated_at=calculated_at,
        adjustment=adjustment.value, adjustment_reason=adjustment.reason if adjustment.value else "",
        adjustment_expires_at=adjustment.expires_at if adjustment.value else None,
        **{name: components.get(name) for name in COMPONENTS},
    )
    score.full_clean()
    score.save()
    if latest is None or score.calculated_at >= latest.calculated_at:
        account.health_score, account.risk_level = overall, score.risk_level
        # A save, not an update(): post_save lets rules on health_score / risk_level see old and new.
        account.save(update_fields=["health_score", "risk_level", "updated_at"])
        caller_account.health_score, caller_account.risk_level = overall, score.risk_level
    signals.health_score_recorded.send(sender=HealthScore, score=score, previous=previous)
    return score


@transaction.atomic
def health_score_record(*, account: Account, components: Mapping[str, Any],
                        calculated_at: datetime | None = None) -> HealthScore:
    """Record a new score for ``account``.

    ``previous_score`` is the score that preceded this one in time (for a backdated score: the latest
    one recorded before its ``calculated_at``). Only a score that is now the latest updates the
    account's ``health_score`` / ``risk_level``; a backdated one is history and leaves them alone.
    An adjustment still active at ``calculated_at`` (see ``health_score_adjust``) is carried onto it.
    """
    return _health_score_write(account=account, components=components, calculated_at=calculated_at,
                               adjustment=None)


@transaction.atomic
def health_score_delete(*, score: HealthScore) -> None:
    """Delete a score. The account mirrors its latest score: deleting that one brings the next one back."""
    account = Account.objects.select_for_update().get(pk=score.account_id)
    score.delete()
    latest = HealthScore.objects.filter(account=account).order_by("-calculated_at", "-id").first()
    account.health_score = latest.overall_score if latest else None
    account.risk_level = latest.risk_level if latest else ""
    account.save(update_fields=["health_score", "risk_level"])  # a save: rules see the mirror change


def _latest_components(account: Account) -> tuple[HealthScore, dict]:
    latest = HealthScore.objects.filter(account=account).order_by("-calculated_at", "-id").first()
    if latest is None:
        raise ValidationError({"account": "The account has no health score to adjust yet."})
    return latest, {name: getattr(latest, name) for name in COMPONENTS}


@transaction.atomic
def health_score_adjust(*, account: Account, adjustment: Decimal | int | float | str, reason: str,
                        duration: timedelta | None = None, actor=None, source: str = "",
                        calculated_at: datetime | None = None) -> HealthScore:
    """Record a NEW score with the latest components plus ``adjustment`` points (-100..100), clamped to
    0-100; the risk level follows the adjusted score. Old rows are never edited.

    An adjustment REPLACES the account's active one (it never stacks): adjusting by -10 twice leaves
    -10, and ``adjustment=0`` removes the active adjustment. ``duration`` (a positive timedelta) makes
    it temporary: ``health_adjustments_expire`` records a score without it once it has passed; without
    a duration it stays until replaced. ``actor`` (a user) or ``source`` (e.g. a rule) is recorded in the
    breakdown as who adjusted.
    """
    try:
        value = Decimal(str(adjustment))
    except (ArithmeticError, ValueError):
        raise ValidationError({"adjustment": "The adjustment must be a number between -100 and 100."}) from None
    if not value.is_finite() or not Decimal("-100") <= value <= Decimal("100"):
        raise ValidationError({"adjustment": "The adjustment must be a number between -100 and 100."})
    value = value.quantize(TWO_PLACES, ROUND_HALF_UP)
    reason = (reason or "").strip()
    if value and not reason:
        raise ValidationError({"reason": "An adjustment needs a reason."})
    if duration is not None and duration <= timedelta(0):
        raise ValidationError({"duration": "The duration of a temporary adjustment must be positive."})
    account = Account.objects.select_for_update().get(pk=account.pk)
    _, components = _latest_components(account)
    calculated_at = calculated_at or timezone.now()
    by = source or ((actor.email or actor.get_username()) if actor is not None else "")
    spec = _Adjustment(value, reason[:500], calculated_at + duration if duration and value else None, by)
    return _health_score_write(account=account, components=components, calculated_at=calculated_at, adjustment=spec)


def health_adjustments_due(now: datetime):
    """One queryset: each account's LATEST score whose temporary adjustment has ended by ``now``."""
    latest = (HealthScore.objects.filter(account=OuterRef("account"))
              .order_by("-calculated_at", "-id").values("pk")[:1])
    return (HealthScore.objects.filter(adjustment_expires_at__isnull=False, adjustment_expires_at__lte=now)
            .exclude(adjustment=0).filter(pk=Subquery(latest)))


def health_adjustments_expire(now: datetime | None = None, *, limit: int = 1000) -> int:
    """Record, for every account whose latest score carries an adjustment that ended by ``now``, a new
    score with the same components and no adjustment, dated when the adjustment ended. Lists the
    candidates across tenants in the system context, writes tenant by tenant in that tenant's context,
    one transaction per account (a failure is logged and retried on the next pass). Goes through
    ``health_score_recorded`` like any score, so rules see the change. Returns how many were expired."""
    now = now or timezone.now()
    with system_context("accounts: list expired health score adjustments"):
        due = list(health_adjustments_due(now).order_by("tenant_id", "adjustment_expires_at")
                   .values_list("tenant_id", "account_id")[:limit])
        tenants = {t.pk: t for t in Tenant.objects.filter(pk__in={tenant_id for tenant_id, _ in due})}
    expired = 0
    for tenant_id, account_ids in groupby(due, key=lambda row: row[0]):
        with tenant_context(tenants[tenant_id]):
            for _, account_id in account_ids:
                try:
                    expired += _health_adjustment_expire_one(account_id, now)
                except Exception:  # one broken account must not hold up the others
                    log.exception("expiring the health score adjustment of account %s failed", account_id)
    return expired


@transaction.atomic
def _health_adjustment_expire_one(account_id, now: datetime) -> int:
    account = Account.objects.select_for_update().filter(pk=account_id).first()
    if account is None:
        return 0
    latest, components = _latest_components(account)
    # Re-checked under the account's lock: a concurrent pass or a new score may have dealt with it.
    if not latest.adjustment or latest.adjustment_expires_at is None or latest.adjustment_expires_at > now:
        return 0
    at = max(latest.adjustment_expires_at, latest.calculated_at)
    _health_score_write(account=account, components=components, calculated_at=at, adjustment=_Adjustment())
    return 1


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
    account.current_stage = stage
    account.save(update_fields=["current_stage", "updated_at"])  # a save: rules see current_stage change
    caller_account.current_stage = stage
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


# --- notes, engagements, tasks: what a CSM records about an account -----------------------------------

def _work_create(model, account: Account, **fields):
    row = model(tenant_id=account.tenant_id, account=account, **fields)
    row.full_clean()
    row.save()  # a save: rules see the record created, engagement scores and deal activity follow
    return row


@transaction.atomic
def note_create(*, account: Account, body: str, author=None, pinned: bool = False) -> Note:
    return _work_create(Note, account, body=body, author=author, pinned=pinned)


@transaction.atomic
def engagement_create(*, account: Account, kind: str, outcome: str, user=None, contact=None,
                      occurred_at: datetime | None = None, summary: str = "") -> Engagement:
    if contact is not None and contact.account_id != account.pk:
        raise ValidationError({"contact": "The contact must belong to the account."})
    return _work_create(Engagement, account, kind=kind, outcome=outcome, user=user, contact=contact,
                        occurred_at=occurred_at or timezone.now(), summary=summary)


@transaction.atomic
def task_create(*, account: Account, title: str, assignee=None, created_by=None, due_date=None,
                priority: str = Task.Priority.MEDIUM, description: str = "") -> Task:
    """A task about ``account``; its assignee must be a member of the account's tenant."""
    if assignee is not None and not Membership.objects.filter(user=assignee, tenant_id=account.tenant_id).exists():
        raise ValidationError({"assignee": "The assignee must be a member of the account's tenant."})
    return _work_create(Task, account, title=title, assignee=assignee, created_by=created_by, due_date=due_date,
                        priority=priority, description=description)
