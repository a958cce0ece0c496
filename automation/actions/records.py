"""Actions on the tenant's own records: tasks, notes, tags, field updates, status, owner, health score.

They write through the accounts services, so their writes raise events like any other change (with
depth + 1, see ``events.actions_running``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Account, Contact, Note, Tag, Task
from csplatform import json_schema as js

from .. import assignees, rule_index
from ..subjects import model_for, name_of
from ..triggers import ConfigError, parse_duration, triggers
from .base import Action, ActionContext, ActionError, register, render

OFFSET = re.compile(r"^\+?(\d+)([dw])$")


def offset_date(offset: str):
    """Today plus a checked offset such as ``+3d`` or ``+1w`` (``OFFSET``)."""
    amount, unit = OFFSET.match(str(offset)).groups()
    return timezone.localdate() + timedelta(days=int(amount) * (7 if unit == "w" else 1))


def _due_date(config: dict):
    if config.get("due_days") is not None:
        return timezone.localdate() + timedelta(days=int(config["due_days"]))
    if config.get("due_date_offset"):
        return offset_date(config["due_date_offset"])
    return None


def _assignee(value, ctx: ActionContext, *, required: bool = False):
    """The user ``value`` (id, email, role name or template: ``automation.assignees``) names now; None when a
    role has nobody to pick, unless ``required``. A member who left or a template naming nobody fails the step."""
    try:
        return assignees.resolve(value, tenant_id=getattr(ctx.tenant, "pk", ctx.tenant), account=ctx.account,
                                 render=lambda text: render(text, ctx), required=required)
    except assignees.AssigneeError as exc:
        raise ActionError(str(exc)) from None


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
    known = ("assignee", "due_days", "due_date_offset", "priority")
    settings_schema = {"title": js.template(), "assignee": js.text(description="A member (id or email), a role name "
                                                                               "such as auto, or a template."),
                       "due_days": js.integer(minimum=0), "due_date_offset": js.text(pattern=OFFSET.pattern),
                       "priority": js.enum(Task.Priority.values)}

    def validate_config(self, config):
        config = super().validate_config(config)
        if config.get("due_date_offset") and not OFFSET.match(str(config["due_date_offset"])):
            raise ConfigError("due_date_offset", "must look like +3d or +1w")
        due_days = config.get("due_days")
        if due_days is not None and (isinstance(due_days, bool) or not isinstance(due_days, int) or due_days < 0):
            raise ConfigError("due_days", "must be a whole number of days, 0 or more")
        if due_days is not None and config.get("due_date_offset"):
            raise ConfigError("due_date_offset", "give due_days or due_date_offset, not both")
        if config.get("priority", "medium") not in Task.Priority.values:
            raise ConfigError("priority", f"must be one of {', '.join(Task.Priority.values)}")
        return config

    def check_for_rule(self, config, rule):
        if config.get("assignee") not in (None, ""):
            assignees.check(config["assignee"], rule.tenant_id, "assignee")

    def run(self, config, ctx):
        account = ctx.account
        assignee = _assignee(config.get("assignee") or "auto", ctx)
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
    """``body`` (seed 003: ``content``); ``created_by``: ``system`` (no author, the default) or a member's id
    or email; ``is_private``: only false (every member of the tenant reads an account's notes)."""

    type = "create_note"
    required = ("body",)
    aliases = {"content": "body"}
    templated = ("body",)
    known = ("created_by", "is_private")
    settings_schema = {"created_by": js.text(description="system, or a member's id or email"), "is_private": js.boolean()}

    def validate_config(self, config):
        config = super().validate_config(config)
        if config.get("is_private") not in (None, False):
            raise ConfigError("is_private", "notes are read by every member of the tenant; only false is possible")
        return config

    def check_for_rule(self, config, rule):
        if config.get("created_by") not in (None, "", "system"):
            assignees.check(config["created_by"], rule.tenant_id, "created_by", roles=False)

    def run(self, config, ctx):
        author = None if config.get("created_by") in (None, "", "system") else \
            _assignee(config["created_by"], ctx, required=True)
        note = Note(tenant=ctx.tenant, account=_require_account(ctx), body=render(config["body"], ctx), author=author)
        if not _inserted_with_batch(note, ctx):
            note.save()
        return {"note_id": note.pk}


def _inserted_with_batch(row, ctx) -> bool:
    """Leave a new row to the batch's one INSERT per model (``Batch.defer_row``) when no live rule watches its
    creation: a run's note was the one round trip per run left in a batch. When a rule does watch, it is saved now,
    so its event is raised inside the running rule's chain (depth, loop guard)."""
    batch = ctx.batch
    if batch is None or rule_index.interested(row.tenant_id, "model_created", name_of(type(row)), memo=batch.rule_index):
        return False
    return batch.defer_row(row)


# Fields a rule may set, per model: nothing that moves money, ownership of rows or tenancy.
UPDATABLE_FIELDS = {
    "account": {"status", "industry", "size", "renewal_date", "licensed_seats"},
    "contact": {"role", "is_primary", "email_opt_out", "timezone", "status", "source", "engagement_score"},
    "opportunity": {"stage", "risk_level", "probability", "close_date", "kind"},
    "task": {"status", "priority", "due_date"},
    "goal": {"status"},
    "supportticket": {"status", "priority"},
}


def _update_target(config: dict, rule) -> str:
    """The model update_field writes: ``model`` if given, else the rule's subject (an inbound webhook's: the
    account), so a contact rule's ``status`` is the contact's, and the check at save is the run's."""
    subject = (rule.model_type or triggers.get(rule.trigger_type).subject_model) if rule is not None else None
    return config.get("model") or subject or "account"


@register
class UpdateField(Action):
    """``field`` of the rule's subject (or of ``model``: account, contact, task, goal, supportticket) set to
    ``value``; the field must be on the allow-list and the value valid for it (type, choices) at save."""

    type = "update_field"
    required = ("field",)
    known = ("value", "model")
    settings_schema = {"value": js.any_json(), "model": js.enum(UPDATABLE_FIELDS)}

    def validate_config(self, config):
        config = super().validate_config(config)
        if config.get("model") is not None and config["model"] not in UPDATABLE_FIELDS:
            raise ConfigError("model", f"must be one of {', '.join(UPDATABLE_FIELDS)}")
        return config

    def check_for_rule(self, config, rule):
        target, name = _update_target(config, rule), config["field"]
        if name not in UPDATABLE_FIELDS.get(target, set()):
            allowed = ", ".join(sorted(UPDATABLE_FIELDS.get(target, set()))) or "none"
            raise ConfigError("field", f"'{name}' cannot be updated by a rule on {target} (allowed: {allowed})")
        try:
            field = model_for(target)._meta.get_field(name)
        except FieldDoesNotExist:  # pragma: no cover - the allow-list names real fields
            raise ConfigError("field", f"{target} has no field '{name}'") from None
        value = config.get("value")
        if field.choices and value not in (None, "") and value not in [key for key, _ in field.flatchoices]:
            allowed = ", ".join(str(key) for key, _ in field.flatchoices)
            raise ConfigError("value", f"'{value}' is not a valid {target} {name}; one of: {allowed}")
        try:
            field.clean(value, None)
        except (TypeError, ValueError):  # a number for a date, a list for a number, …
            raise ConfigError("value", f"not valid for {target}.{name}: {type(value).__name__} {value!r}") from None
        except ValidationError as exc:
            raise ConfigError("value", f"not valid for {target}.{name}: {' '.join(exc.messages)}") from None

    def run(self, config, ctx):
        target = _update_target(config, ctx.workflow)
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


def _tagged(ctx: ActionContext):
    """What add_tag / remove_tag change: the rule's record if it has tags (a contact), else its account."""
    if isinstance(ctx.subject, (Account, Contact)):
        return ctx.subject
    return _require_account(ctx)


@register
class AddTag(Action):
    type = "add_tag"
    required = ("tag",)

    def run(self, config, ctx):
        tag, _ = Tag.objects.get_or_create(tenant=ctx.tenant, name=config["tag"])
        record = _tagged(ctx)
        record.tags.add(tag)
        return {"tag": tag.name, "model": record._meta.model_name, "id": str(record.pk)}


@register
class RemoveTag(Action):
    type = "remove_tag"
    required = ("tag",)

    def run(self, config, ctx):
        tag = Tag.objects.for_tenant(ctx.tenant).filter(name=config["tag"]).first()
        record = _tagged(ctx)
        if tag is not None:
            record.tags.remove(tag)
        return {"tag": config["tag"], "removed": tag is not None, "model": record._meta.model_name}


@register
class AssignToUser(Action):
    """Makes ``user`` (seed 003: ``user_id``) the owner of the rule's record when it has one (a deal), else of
    its account: a member's id or email, a role name (``automation.assignees``) or a template such as
    ``{{ entity.owner }}``."""

    type = "assign_to_user"
    required = ("user",)
    aliases = {"user_id": "user"}
    known = ()

    def check_for_rule(self, config, rule):
        assignees.check(config["user"], rule.tenant_id, "user")

    def run(self, config, ctx):
        user = _assignee(config["user"], ctx, required=True)
        record = ctx.subject
        if isinstance(record, models.Model) and not isinstance(record, Account) and hasattr(record, "owner_id"):
            record.owner = user
            record.save(update_fields=["owner", "updated_at"])
            return {"owner": user.email, "model": record._meta.model_name, "id": str(record.pk)}
        account = _require_account(ctx)
        account_services.account_save(account=account, changes={"owner": user})
        return {"owner": account.owner.email}


@register
class ChangeStatus(Action):
    """Seed 001: ``new_status``, ``reason`` (a note on the account; may use {{ }}), ``notify_team``: a task
    for the account's owner (else a member picked as for ``auto``, ``automation.assignees``) saying so."""

    type = "change_status"
    required = ("new_status",)
    templated = ("reason",)
    known = ("notify_team",)
    settings_schema = {"new_status": js.enum(Account.Status.values), "notify_team": js.boolean()}

    def validate_config(self, config):
        config = super().validate_config(config)
        if config["new_status"] not in Account.Status.values:
            raise ConfigError("new_status", f"must be one of {', '.join(Account.Status.values)}")
        if not isinstance(config.get("notify_team", False), bool):
            raise ConfigError("notify_team", "must be true or false")
        return config

    def run(self, config, ctx):
        account = _require_account(ctx)
        old, new = account.status, config["new_status"]
        reason = render(config.get("reason") or "", ctx)
        account_services.account_save(account=account, changes={"status": new})
        if reason:
            Note.objects.create(tenant=ctx.tenant, account=account,
                                body=f"Status {old} -> {new} by rule '{ctx.workflow.name}': {reason}")
        output = {"from_status": old, "to_status": new}
        if config.get("notify_team"):
            task = Task.objects.create(
                tenant=ctx.tenant, account=account, source=f"workflow:{ctx.workflow.pk}", priority=Task.Priority.HIGH,
                title=f"{account.name}: status changed from {old} to {new}"[:255], description=reason,
                assignee=assignees.pick(account.tenant_id, account, "auto"), due_date=timezone.localdate())
            output["task_id"] = task.pk
        return output


@register
class UpdateHealthScore(Action):
    """Seed 001's ``{adjustment, reason, temporary, duration}``: records a new score with the latest
    components plus ``adjustment`` points (-100..100, clamped to 0-100). It replaces the account's active
    adjustment rather than adding to it. ``temporary`` needs ``duration`` (``2h``, ``3d``, ``1w``): the
    adjustment then expires by itself (``automation.health_adjustments``). ``reason`` may use {{ }}."""

    type = "update_health_score"
    required = ("reason",)
    templated = ("reason",)
    known = ("adjustment", "temporary", "duration")
    settings_schema = {"adjustment": js.number(minimum=-100, maximum=100), "temporary": js.boolean(),
                       "duration": js.duration(description="How long a temporary adjustment lasts.")}

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
