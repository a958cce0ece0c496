"""Action types: what a rule does. One small class each: ``validate_config`` and ``run``.

Actions write through the accounts services, so their own writes raise events like any other
change (with depth + 1, see ``events.actions_running``). Actions that need the delivery layer
(email, SMS, webhooks, integrations, cadences) fail with a clear step error until it exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.template import Context, Engine, TemplateSyntaxError
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Account, Note, Tag, Task

from .registry import Registry
from .triggers import ConfigError


class ActionError(Exception):
    """The action could not do its work; the message is recorded on the run step."""


@dataclass
class ActionContext:
    tenant: Any
    workflow: Any
    run: Any
    account: Account | None
    subject: Any
    event_payload: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def template_context(self) -> dict:
        """Plain data only: templates cannot reach methods or other tenants' rows."""
        a = self.account
        account = None if a is None else {
            "id": str(a.pk), "name": a.name, "status": a.status, "industry": a.industry, "arr": float(a.arr),
            "health_score": float(a.health_score) if a.health_score is not None else None,
            "risk_level": a.risk_level, "renewal_date": str(a.renewal_date or ""),
            "owner_email": a.owner.email if a.owner_id else "",
        }
        return {"account": account, "entity": self.event_payload, "event": self.event_payload,
                "workflow": {"id": self.workflow.pk, "name": self.workflow.name}, "custom": self.extra}


_templates = Engine(debug=False, autoescape=False, libraries={}, builtins=["django.template.defaultfilters"])


def render(text: str, ctx: ActionContext) -> str:
    return _templates.from_string(text or "").render(Context(ctx.template_context()))


def check_template(text: str, field_name: str) -> None:
    if "{%" in (text or ""):
        raise ConfigError(field_name, "only {{ variables }} are allowed, not {% tags %}")
    try:
        _templates.from_string(text or "")
    except TemplateSyntaxError as exc:
        raise ConfigError(field_name, f"invalid template: {exc}") from None


class Action:
    type = ""
    required: tuple[str, ...] = ()
    templated: tuple[str, ...] = ()
    aliases: dict[str, str] = {}  # seed 003's names for the same settings
    needs_account = True

    def validate_config(self, config: dict) -> dict:
        config = dict(config or {})
        for alias, name in self.aliases.items():
            if alias in config and name not in config:
                config[name] = config.pop(alias)
        for key in self.required:
            if config.get(key) in (None, ""):
                raise ConfigError(key, "is required")
        for key in self.templated:
            check_template(config.get(key, ""), key)
        return config

    def run(self, config: dict, ctx: ActionContext) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError


actions: Registry[Action] = Registry("action")


def register(cls):
    actions.register(cls.type)(cls())
    return cls


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
class TriggerWorkflow(Action):
    """Runs another rule of the tenant now, one level deeper (cycles are refused when rules are saved)."""

    type = "trigger_workflow"
    required = ("workflow_id",)

    def run(self, config, ctx):
        from .engine import fire
        from .models import Workflow

        target = Workflow.objects.for_tenant(ctx.tenant).filter(pk=config["workflow_id"]).first()
        if target is None:
            raise ActionError(f"workflow {config['workflow_id']} does not exist")
        run = fire(target, event=ctx.run.event, subject=ctx.subject, account=ctx.account, depth=ctx.run.depth + 1,
                   manual=True, extra={**ctx.extra, **(config.get("context") or {})})
        return {"run_id": run.pk, "status": run.status}


class NeedsDelivery(Action):
    """Hands a message to the delivery layer (outbox), which is not built yet: fail, never pretend."""

    needs_account = False

    def validate_config(self, config):
        return dict(config or {})

    def run(self, config, ctx):
        raise ActionError(f"{self.type}: the delivery layer (outbox) is not configured yet; nothing was sent")


for _type in ("send_email", "send_sms", "webhook", "integration_action", "sync_to_external", "add_to_cadence"):
    register(type(f"Pending_{_type}", (NeedsDelivery,), {"type": _type}))


@register
class UpdateHealthScore(NeedsDelivery):
    type = "update_health_score"

    def run(self, config, ctx):
        raise ActionError("update_health_score: score adjustments are not implemented yet; the score is unchanged")
