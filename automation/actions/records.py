"""Actions on the tenant's own records: tasks, notes, tags, field updates, status, owner, health score.

They write through the accounts services, so their writes raise events like any other change (with
depth + 1, see ``events.actions_running``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Account, Note, Tag, Task

from ..triggers import ConfigError, parse_duration
from .base import Action, ActionContext, ActionError, register, render

OFFSET = re.compile(r"^\+?(\d+)([dw])$")


def _due_date(config: dict):
    if config.get("due_days") is not None:
        return timezone.localdate() + timedelta(days=int(config["due_days"]))
    if config.get("due_date_offset"):
        amount, unit = OFFSET.match(config["due_date_offset"]).groups()
        return timezone.localdate() + timedelta(days=int(amount) * (7 if unit == "w" else 1))
    return None


def _member(tenant, who: str | int | None):
    if who in (None, ""):
        return None
    users = get_user_model().objects.filter(memberships__tenant=tenant)
    user = users.filter(email__iexact=who).first() if isinstance(who, str) and "@" in who else users.filter(pk=who).first()
    if user is None:
        raise ActionError(f"'{who}' is not a member of this tenant")
    return user


def _require_account(ctx: ActionContext) -> Account:
    if ctx.account is None:
        raise ActionError("this action needs an account and the event has none")
    return ctx.account


@register
class CreateTask(Action):
    """Creates a task, or updates this rule's open task with the same title on the account."""

    type = "create_task"
    required = ("title",)
    templated = ("title", "description")
    aliases = {"assigned_to": "assignee"}

    def validate_config(self, config):
        config = super().validate_config(config)
        if config.get("due_date_offset") and not OFFSET.match(str(config["due_date_offset"])):
            raise ConfigError("due_date_offset", "must look like +3d or +1w")
        if config.get("priority", "medium") not in Task.Priority.values:
            raise ConfigError("priority", f"must be one of {', '.join(Task.Priority.values)}")
        return config

    def run(self, config, ctx):
        account = ctx.account
        assignee_spec = config.get("assignee", "auto")
        assignee = (account.owner if account else None) if assignee_spec in ("auto", None, "") else _member(ctx.tenant, assignee_spec)
        title = render(config["title"], ctx)[:255]
        source = f"workflow:{ctx.workflow.pk}"
        fields = {"description": render(config.get("description", ""), ctx), "assignee": assignee,
                  "due_date": _due_date(config), "priority": config.get("priority", "medium")}
        task = Task.objects.for_tenant(ctx.tenant).filter(
            account=account, source=source, title=title, status__in=Task.OPEN_STATUSES).first()
        if task is None:
            task = Task.objects.create(tenant=ctx.tenant, account=account, source=source, title=title, **fields)
            return {"task_id": task.pk, "created": True}
        for name, value in fields.items():
            setattr(task, name, value)
        task.save()
        return {"task_id": task.pk, "created": False}


@register
class CreateNote(Action):
    type = "create_note"
    required = ("body",)
    aliases = {"content": "body"}
    templated = ("body",)

    def run(self, config, ctx):
        note = Note.objects.create(tenant=ctx.tenant, account=_require_account(ctx), body=render(config["body"], ctx))
        return {"note_id": note.pk}


# Fields a rule may set, per model: nothing that moves money, ownership of rows or tenancy.
UPDATABLE_FIELDS = {
    "account": {"status", "industry", "size", "renewal_date", "licensed_seats"},
    "contact": {"role", "is_primary", "email_opt_out", "timezone"},
    "task": {"status", "priority", "due_date"},
    "goal": {"status"},
    "supportticket": {"status", "priority"},
}


@register
class UpdateField(Action):
    type = "update_field"
    required = ("field",)

    def validate_config(self, config):
        config = super().validate_config(config)
        target = config.get("model", "account")
        if config["field"] not in UPDATABLE_FIELDS.get(target, set()):
            allowed = ", ".join(sorted(UPDATABLE_FIELDS.get(target, set()))) or "none"
            raise ConfigError("field", f"'{config['field']}' cannot be updated by a rule on {target} (allowed: {allowed})")
        return config

    def run(self, config, ctx):
        target = config.get("model", "account")
        obj = ctx.account if target == "account" else ctx.subject
        if obj is None or (target != "account" and obj._meta.model_name != target):
            raise ActionError(f"the event has no {target} to update")
        setattr(obj, config["field"], config.get("value"))
        try:
            obj.full_clean(exclude=[f.name for f in obj._meta.fields if f.name != config["field"]])
        except Exception as exc:
            raise ActionError(f"invalid value for {config['field']}: {exc}") from None
        if target == "account":
            account_services.account_save(account=obj)
        else:
            obj.save()
        return {"model": target, "id": str(obj.pk), "field": config["field"], "value": config.get("value")}


@register
class AddTag(Action):
    type = "add_tag"
    required = ("tag",)

    def run(self, config, ctx):
        tag, _ = Tag.objects.get_or_create(tenant=ctx.tenant, name=config["tag"])
        _require_account(ctx).tags.add(tag)
        return {"tag": tag.name}


@register
class RemoveTag(Action):
    type = "remove_tag"
    required = ("tag",)

    def run(self, config, ctx):
        tag = Tag.objects.for_tenant(ctx.tenant).filter(name=config["tag"]).first()
        if tag is not None:
            _require_account(ctx).tags.remove(tag)
        return {"tag": config["tag"], "removed": tag is not None}


@register
class AssignToUser(Action):
    type = "assign_to_user"
    required = ("user",)
    aliases = {"user_id": "user"}

    def run(self, config, ctx):
        account = _require_account(ctx)
        account_services.account_save(account=account, changes={"owner": _member(ctx.tenant, config["user"])})
        return {"owner": account.owner.email}


@register
class ChangeStatus(Action):
    type = "change_status"
    required = ("new_status",)

    def validate_config(self, config):
        config = super().validate_config(config)
        if config["new_status"] not in Account.Status.values:
            raise ConfigError("new_status", f"must be one of {', '.join(Account.Status.values)}")
        return config

    def run(self, config, ctx):
        account = _require_account(ctx)
        old = account.status
        account_services.account_save(account=account, changes={"status": config["new_status"]})
        if config.get("reason"):
            Note.objects.create(tenant=ctx.tenant, account=account,
                                body=f"Status {old} -> {config['new_status']} by rule '{ctx.workflow.name}': {config['reason']}")
        return {"from_status": old, "to_status": config["new_status"]}


@register
class UpdateHealthScore(Action):
    """Seed 001's ``{adjustment, reason, temporary, duration}``: records a new score with the latest
    components plus ``adjustment`` points (-100..100, clamped to 0-100). It replaces the account's active
    adjustment rather than adding to it. ``temporary`` needs ``duration`` (``2h``, ``3d``, ``1w``): the
    adjustment then expires by itself (``automation.health_adjustments``). ``reason`` may use {{ }}."""

    type = "update_health_score"
    required = ("reason",)
    templated = ("reason",)

    def validate_config(self, config):
        config = dict(config or {})
        value = config.get("adjustment")
        if value in (None, ""):
            raise ConfigError("adjustment", "is required")
        try:
            if isinstance(value, bool):
                raise InvalidOperation
            number = Decimal(str(value))
        except (InvalidOperation, ValueError):
            raise ConfigError("adjustment", "must be a number between -100 and 100") from None
        if not number.is_finite() or not -100 <= number <= 100:
            raise ConfigError("adjustment", "must be a number between -100 and 100")
        config = super().validate_config(config)
        if not str(config["reason"]).strip():
            raise ConfigError("reason", "is required")
        temporary = config.setdefault("temporary", False)
        if not isinstance(temporary, bool):
            raise ConfigError("temporary", "must be true or false")
        if temporary:
            if config.get("duration") in (None, ""):
                raise ConfigError("duration", "is required when temporary is true (like 2h, 3d or 1w)")
            parse_duration(config["duration"], "duration")
        elif config.get("duration") not in (None, ""):
            raise ConfigError("duration", "only applies with temporary: true (a permanent adjustment has none)")
        return config

    def run(self, config, ctx):
        account = _require_account(ctx)
        duration = parse_duration(config["duration"], "duration") if config.get("temporary") else None
        try:
            score = account_services.health_score_adjust(
                account=account, adjustment=config["adjustment"], reason=render(config["reason"], ctx),
                duration=duration, source=f"workflow:{ctx.workflow.pk}")
        except ValidationError as exc:
            raise ActionError(f"update_health_score: {'; '.join(exc.messages)}; the score is unchanged") from None
        return {"health_score_id": score.pk, "previous_score": float(score.previous_score)
                if score.previous_score is not None else None, "overall_score": float(score.overall_score),
                "risk_level": score.risk_level, "adjustment": float(score.adjustment),
                "expires_at": score.adjustment_expires_at.isoformat() if score.adjustment_expires_at else None}
