"""Action types: what a rule does. One small class each: ``validate_config`` and ``run``.

Actions write through the accounts services, so their own writes raise events like any other
change (with depth + 1, see ``events.actions_running``). Actions that send something (email, SMS,
webhooks, Slack/HubSpot/Salesforce) write ``Outbox`` messages in the run's transaction and nothing
else: ``delivery`` sends them after commit. Cadences and score adjustments are not built
yet and fail with a clear step error.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.template import Context, TemplateSyntaxError
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Account, Contact, Note, Tag, Task
from csplatform.sandbox import MAX_RENDERED, sandbox_engine
from delivery import email as emails
from delivery import policy, retry
from delivery.models import IntegrationCredential, Outbox
from delivery.services import dispatch_on_commit, outbox_enqueue
from delivery.transports import RESERVED_HEADERS

from . import payloads
from .models import Workflow
from .registry import Registry
from .triggers import ConfigError, parse_duration


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
    position: int | None = None  # index of the running action in the rule (set by the engine)
    steps: list = field(default_factory=list)  # this run's finished steps so far (saved when the batch ends)
    batch: Any = None  # the engine's ``automation.batch.Batch``: where runs, steps and messages are recorded
    messages: list = field(default_factory=list)  # outbox messages the running action wrote (linked to its step)

    def enqueue(self, **fields):
        """Write one outbox message for this run (``delivery.services.outbox_enqueue``) and note it for the
        running step. A message whose key is new waits for the batch's end (it gets its id now)."""
        run_id = self.run.pk if self.run is not None else None
        message = outbox_enqueue(tenant=self.tenant, run_id=run_id, defer=self.batch.defer if self.batch else None,
                                 **fields)
        self.messages.append(message)
        return message

    def take_messages(self) -> list:
        """The messages written since the last call, and forget them (the engine links them to the step)."""
        taken, self.messages = self.messages, []
        return taken

    def template_context(self) -> dict:
        """Plain data only: templates cannot reach methods or other tenants' rows."""
        a = self.account
        account = None if a is None else {
            "id": str(a.pk), "name": a.name, "status": a.status, "industry": a.industry, "arr": float(a.arr),
            "health_score": float(a.health_score) if a.health_score is not None else None,
            "risk_level": a.risk_level, "renewal_date": str(a.renewal_date or ""),
            "owner_email": a.owner.email if a.owner_id else "",
        }
        subject = self.subject if self.subject is not None else a
        event = getattr(self.run, "event", None) if self.run is not None else None
        # Copies: a template may call a dict's or list's methods ({{ event.clear }}, {{ event.tags.pop }});
        # that must not change the payload saved with the run.
        payload = copy.deepcopy(self.event_payload)
        return {"account": account, "entity": payload, "event": payload,
                "workflow": {"id": self.workflow.pk, "name": self.workflow.name}, "custom": copy.deepcopy(self.extra),
                # seed 003's flat names ({{entity_type}}, {{entity_id}}, {{trigger_event}})
                "entity_type": subject._meta.model_name if subject is not None else "",
                "entity_id": str(subject.pk) if subject is not None else "",
                "trigger_event": event.type if event is not None else ""}


_templates = sandbox_engine()


def render(text: str, ctx: ActionContext) -> str:
    # No HTML escaping (the Context decides that, not the Engine): these are JSON bodies, titles, notes.
    # A plain str, not the SafeString templates return: a value rendered here and then used in an HTML
    # email must still be escaped there.
    context = Context(ctx.template_context(), autoescape=False)
    rendered = str.__str__(_templates.from_string(text or "").render(context))
    if len(rendered) > MAX_RENDERED:
        raise ActionError(f"a template rendered to {len(rendered)} characters (at most {MAX_RENDERED})")
    return rendered


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
        from .engine import fire  # the engine imports the action registry

        target = Workflow.objects.for_tenant(ctx.tenant).filter(pk=config["workflow_id"]).first()
        if target is None:
            raise ActionError(f"workflow {config['workflow_id']} does not exist")
        run = fire(target, event=ctx.run.event, subject=ctx.subject, account=ctx.account, depth=ctx.run.depth + 1,
                   manual=True, extra={**ctx.extra, **(config.get("context") or {})}, batch=ctx.batch)
        return {"run_id": run.pk, "status": run.status}


# --- delivery: actions that write Outbox messages in the run's transaction ---------------------------
# (``delivery`` is imported lazily: it registers itself with the scheduler, which imports the
# engine, which imports this module.)

def render_json(value, ctx: ActionContext):
    """Render every string inside a JSON-like value (seed 003's templated bodies and mappings)."""
    if isinstance(value, str):
        return render(value, ctx)
    if isinstance(value, dict):
        return {str(k): render_json(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [render_json(v, ctx) for v in value]
    return value


def check_json_templates(value, field_name: str) -> None:
    if isinstance(value, str):
        check_template(value, field_name)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_json_templates(item, f"{field_name}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json_templates(item, f"{field_name}[{index}]")


def _string_map(config: dict, key: str) -> dict:
    value = config.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in value.items()):
        raise ConfigError(key, "must be an object of names to strings")
    for name, item in value.items():
        check_template(str(item), f"{key}.{name}")
    return {k: str(v) for k, v in value.items()}


def _valid_email(value, field_name: str) -> str:
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    try:
        validate_email(value)
    except ValidationError:
        raise ConfigError(field_name, f"'{value}' is not a valid email address") from None
    return value


class DeliveryAction(Action):
    """Base of the actions that send: options every channel shares (seed 001 ``delay``, ``retry_count``)."""

    needs_account = False

    def validate_config(self, config):

        config = super().validate_config(config)
        if config.get("delay") not in (None, "", "0h", "0m", "0d"):
            parse_duration(config["delay"], "delay")
        if config.get("retry_count") is not None:
            if not isinstance(config["retry_count"], int) or not 0 <= config["retry_count"] <= 10:
                raise ConfigError("retry_count", "must be an integer from 0 to 10")
        return config

    def _deliver_at(self, config: dict):

        if config.get("delay") in (None, "", "0h", "0m", "0d"):
            return None
        return timezone.now() + parse_duration(config["delay"], "delay")

    def _key(self, ctx: ActionContext) -> str:
        """Idempotency key prefix: one per run and step (a retried run is a new run, so a new message)."""
        import uuid


        run = ctx.run
        if run is None or run.pk is None:
            return f"adhoc:{uuid.uuid4().hex}"
        position = getattr(ctx, "position", None)
        if position is None:
            position = f"m{Outbox.objects.for_tenant(ctx.tenant).filter(run_id=run.pk).count()}"
        return f"run:{run.pk}:{position}:{self.type}"

    def _enqueue(self, ctx: ActionContext, config: dict, messages: list[dict]) -> list:
        """Write the messages (channel, target, payload, …; ``key`` suffix) and hand them on after commit."""

        retry_policy = retry.policy_for(ctx.workflow, config)
        deliver_at = self._deliver_at(config)
        base = self._key(ctx)
        run = ctx.run if getattr(ctx.run, "pk", None) else None
        # Within a run step a key is new unless two messages share it (the same phone twice): send those once.
        key_is_new = run is not None and ctx.position is not None
        rows, seen = [], set()
        for message in messages:
            message = dict(message)
            key = f"{base}:{message.pop('key', '')}"[:255]
            if key in seen:
                continue
            seen.add(key)
            rows.append(ctx.enqueue(retry_policy=retry_policy, deliver_at=deliver_at, dispatch=False, idempotency_key=key,
                                    key_is_new=key_is_new, **message))
        if deliver_at is None:
            dispatch_on_commit([r.pk for r in rows])
        return rows

    @staticmethod
    def _summary(rows) -> dict:
        return {"messages": [{"outbox_id": r.pk, "message_id": r.message_id, "target": r.target} for r in rows]}

    def _require_connected(self, ctx: ActionContext, integration: str) -> None:

        if not IntegrationCredential.objects.for_tenant(ctx.tenant).filter(integration=integration).exists():
            raise ActionError(f"{integration} is not connected for this tenant (add its credential); nothing was sent")


WEBHOOK_METHODS = ("POST", "PUT", "PATCH", "DELETE")


@register
class Webhook(DeliveryAction):
    """Seed 001/003/004 webhook: ``url``, ``method``, ``headers``, and a templated ``payload`` (``body``),
    or, without one, seed 004's event payload (event_type, account, health_score, csm, …). Signed with
    the tenant's webhook secrets when sent."""

    type = "webhook"
    required = ("url",)
    aliases = {"body": "payload"}

    def validate_config(self, config):

        config = super().validate_config(config)
        if not isinstance(config["url"], str):
            raise ConfigError("url", "must be a string")
        check_template(config["url"], "url")
        if "{{" not in config["url"]:
            try:
                policy.check_static(config["url"])
            except policy.Refused as exc:
                raise ConfigError("url", str(exc)) from None
        config["method"] = str(config.get("method") or "POST").upper()
        if config["method"] not in WEBHOOK_METHODS:
            raise ConfigError("method", f"must be one of {', '.join(WEBHOOK_METHODS)}")
        headers = _string_map(config, "headers")
        reserved = sorted(h for h in headers if h.lower() in RESERVED_HEADERS)
        if reserved:
            raise ConfigError("headers", f"{', '.join(reserved)} cannot be set (the platform sets them)")
        if config.get("payload") is not None:
            if not isinstance(config["payload"], (dict, list, str)):
                raise ConfigError("payload", "must be an object, a list or a string")
            check_json_templates(config["payload"], "payload")
        return config

    def run(self, config, ctx):

        url = render(config["url"], ctx).strip()
        try:
            policy.parse(url)
        except policy.Refused as exc:
            raise ActionError(f"the URL '{url}' is not usable: {exc}") from None
        headers = {name: render(value, ctx) for name, value in (config.get("headers") or {}).items()}
        payload = config.get("payload")
        body = render_json(payload, ctx) if payload not in (None, "", {}) else payloads.event_payload(ctx)
        rows = self._enqueue(ctx, config, [{"channel": "webhook", "target": url, "method": config.get("method", "POST"),
                                            "headers": headers, "payload": body}])
        return {**self._summary(rows), "url": url}


EMAIL_RECIPIENTS = ("entity_email", "primary_contact", "customer_contacts", "assigned_user", "account_owner",
                    "internal_team", "custom")


@register
class SendEmail(DeliveryAction):
    """Seed 001/003 email: a tenant template (``template_id``: id or name) rendered per recipient, one
    message each. Recipients: seed 003's ``recipient`` (entity_email, assigned_user, custom +
    ``custom_email``, …) and/or seed 001's ``recipients`` {customer_contacts, internal_team,
    specific_emails}. Contacts who opted out are skipped (listed in the step output); if nobody is
    left the step fails with the reason."""

    type = "send_email"
    aliases = {"template": "template_id"}
    required = ("template_id",)
    templated = ("subject",)

    def validate_config(self, config):
        config = super().validate_config(config)
        recipient = config.get("recipient")
        if recipient is not None and recipient not in EMAIL_RECIPIENTS:
            raise ConfigError("recipient", f"must be one of {', '.join(EMAIL_RECIPIENTS)}")
        if recipient == "custom":
            _valid_email(config.get("custom_email") or "", "custom_email")
        recipients = config.get("recipients")
        if recipients is not None:
            if not isinstance(recipients, dict):
                raise ConfigError("recipients", "must be an object {customer_contacts, internal_team, specific_emails}")
            for index, email in enumerate(recipients.get("specific_emails") or []):
                _valid_email(email, f"recipients.specific_emails[{index}]")
        for index, email in enumerate(config.get("specific_emails") or []):
            _valid_email(email, f"specific_emails[{index}]")
        _string_map(config, "personalization")
        return config

    def _recipients(self, config: dict, ctx: ActionContext) -> list[tuple[str, Any]]:

        account = ctx.account
        contacts = Contact.objects.for_tenant(ctx.tenant)
        found: dict[str, tuple[str, Any]] = {}

        def add(email, contact=None):
            if email and email.lower() not in found:
                if contact is None:
                    contact = contacts.filter(email__iexact=email).first()
                found[email.lower()] = (email, contact)

        def of_account(qs):
            return list(qs.filter(account=account).exclude(email="").order_by("-is_primary", "name")) if account else []

        spec = config.get("recipients") if isinstance(config.get("recipients"), dict) else {}
        kinds = [k for k, on in (("customer_contacts", spec.get("customer_contacts")),
                                 ("internal_team", spec.get("internal_team"))) if on]
        if config.get("recipient"):
            kinds.append(config["recipient"])
        specific = list(spec.get("specific_emails") or []) + list(config.get("specific_emails") or [])
        if not kinds and not specific:
            kinds = ["entity_email"]
        for kind in kinds:
            if kind == "entity_email":
                subject = ctx.subject
                if subject is not None and subject._meta.label == "accounts.Contact":
                    add(subject.email, subject)
                elif isinstance((ctx.event_payload or {}).get("email"), str):
                    add(ctx.event_payload["email"])
                else:
                    for contact in of_account(contacts)[:1]:
                        add(contact.email, contact)
            elif kind == "primary_contact":
                primary = of_account(contacts.filter(is_primary=True)) or of_account(contacts)[:1]
                for contact in primary[:1]:
                    add(contact.email, contact)
            elif kind == "customer_contacts":
                for contact in of_account(contacts):
                    add(contact.email, contact)
            elif kind in ("assigned_user", "account_owner", "internal_team"):
                if account is not None and account.owner_id:
                    found.setdefault(account.owner.email.lower(), (account.owner.email, None))
            elif kind == "custom":
                add(config["custom_email"])
        for email in specific:
            add(email)
        return list(found.values())

    def run(self, config, ctx):

        template = emails.email_template_get(ctx.tenant, config["template_id"])
        if template is None:
            raise ActionError(f"email template '{config['template_id']}' does not exist")
        recipients = self._recipients(config, ctx)
        skipped = [{"email": e, "reason": "opted out of email"} for e, c in recipients if c is not None and c.email_opt_out]
        sendable = [(e, c) for e, c in recipients if c is None or not c.email_opt_out]
        if not sendable:
            reason = ("every recipient has opted out of email: " + ", ".join(s["email"] for s in skipped)) if skipped \
                else "no recipient: the event has no contact with an email address"
            raise ActionError(f"send_email: {reason}; nothing was sent")
        custom = {**ctx.extra, **{k: render(v, ctx) for k, v in (config.get("personalization") or {}).items()}}
        messages, prefix = [], self._key(ctx)
        for address, contact in sendable:
            account = ctx.account or (contact.account if contact is not None else None)
            context = emails.email_context(tenant=ctx.tenant, account=account, contact=contact, custom=custom)
            try:
                # Picks the template's A/B variant from the message's key, so a retry sends the same one.
                rendered = emails.render_for_send(template, context, key=f"{prefix}:{address.lower()}"[:255],
                                                  subject=config.get("subject"))
            except ValueError as exc:
                raise ActionError(f"send_email: {exc}") from None
            headers = {"List-Unsubscribe": f"<{context['unsubscribe_url']}>"} if contact is not None else {}
            messages.append({"channel": "email", "target": address, "key": address.lower(), "payload": {
                **rendered, "headers": headers, "contact_id": contact.pk if contact is not None else None}})
        rows = self._enqueue(ctx, config, messages)
        return {**self._summary(rows), "template": template.name, "skipped": skipped}


SMS_RECIPIENTS = ("entity_phone", "primary_contact", "customer_contacts", "custom")


@register
class SendSms(DeliveryAction):
    """Seed 003's SMS: ``message`` (templated) or a template's text part, to ``recipient`` (entity_phone,
    primary_contact, customer_contacts, or custom with ``phone``) through the tenant's SMS provider."""

    type = "send_sms"
    templated = ("message",)

    def validate_config(self, config):
        config = super().validate_config(config)
        if not config.get("message") and not config.get("template_id"):
            raise ConfigError("message", "is required (or a template_id)")
        recipient = config.setdefault("recipient", "entity_phone")
        if recipient not in SMS_RECIPIENTS:
            raise ConfigError("recipient", f"must be one of {', '.join(SMS_RECIPIENTS)}")
        if recipient == "custom" and not str(config.get("phone") or "").strip():
            raise ConfigError("phone", "is required when recipient is custom")
        return config

    def run(self, config, ctx):


        self._require_connected(ctx, "sms")
        contacts = Contact.objects.for_tenant(ctx.tenant).exclude(phone="")
        recipient, phones = config["recipient"], []
        subject = ctx.subject if ctx.subject is not None and ctx.subject._meta.label == "accounts.Contact" else None
        if recipient == "custom":
            phones = [(render(str(config["phone"]), ctx), None)]
        elif recipient == "entity_phone" and subject is not None and subject.phone:
            phones = [(subject.phone, subject)]
        elif ctx.account is not None:
            of_account = list(contacts.filter(account=ctx.account).order_by("-is_primary", "name"))
            chosen = of_account if recipient == "customer_contacts" else of_account[:1]
            phones = [(c.phone, c) for c in chosen]
        if not phones:
            raise ActionError("send_sms: no recipient with a phone number; nothing was sent")
        messages = []
        for phone, contact in phones:
            if config.get("message"):
                body = render(config["message"], ctx)
            else:
                template = emails.email_template_get(ctx.tenant, config["template_id"])
                if template is None:
                    raise ActionError(f"template '{config['template_id']}' does not exist")
                context = emails.email_context(tenant=ctx.tenant, account=ctx.account, contact=contact, custom=ctx.extra)
                body = emails.render_email(template, context)[1]
            messages.append({"channel": "sms", "target": phone, "key": phone,
                             "payload": {"body": body, "contact_id": contact.pk if contact is not None else None}})
        return self._summary(self._enqueue(ctx, config, messages))


INTEGRATION_ACTIONS = {
    "slack": ("post_message", "send_message"),
    "hubspot": ("upsert", "create", "update"),
    "salesforce": ("upsert", "create", "update"),
}
CRM_DEFAULTS = {"hubspot": ("contacts", "email"), "salesforce": ("Contact", "Email")}


def _crm_message(integration: str, operation: str, obj: str | None, id_field: str | None, record_id, values: dict) -> dict:
    default_obj, default_id = CRM_DEFAULTS[integration]
    id_field = id_field or default_id
    if integration == "hubspot":
        payload = {"operation": operation, "id_property": id_field, "id": record_id, "properties": values}
    else:
        if operation == "upsert":
            values = {k: v for k, v in values.items() if k != id_field}  # Salesforce wants it in the URL only
        payload = {"operation": operation, "external_id_field": id_field, "id": record_id, "fields": values}
    return {"channel": integration, "target": obj or default_obj, "payload": payload,
            "method": "PATCH" if operation == "update" else "POST", "key": f"{integration}:{obj or default_obj}"}


@register
class IntegrationAction(DeliveryAction):
    """Seed 001's ``{integration, action, parameters}``: Slack ``post_message`` {channel, text, blocks};
    HubSpot/Salesforce ``upsert``/``create``/``update`` {object, properties (fields), id_property
    (external_id_field), id}. String parameters are templates."""

    type = "integration_action"
    required = ("integration", "action")

    def validate_config(self, config):
        config = super().validate_config(config)
        integration = config["integration"]
        if integration not in INTEGRATION_ACTIONS:
            raise ConfigError("integration", f"must be one of {', '.join(INTEGRATION_ACTIONS)}")
        if config["action"] not in INTEGRATION_ACTIONS[integration]:
            raise ConfigError("action", f"{integration} supports {', '.join(INTEGRATION_ACTIONS[integration])}")
        params = config.setdefault("parameters", {})
        if not isinstance(params, dict):
            raise ConfigError("parameters", "must be an object")
        check_json_templates(params, "parameters")
        if integration == "slack":
            for key in ("channel", "text"):
                if not params.get(key):
                    raise ConfigError(f"parameters.{key}", "is required")
        elif config["action"] == "update" and not params.get("id"):
            raise ConfigError("parameters.id", "is required to update a record")
        return config

    def run(self, config, ctx):
        integration = config["integration"]
        self._require_connected(ctx, integration)
        params = render_json(config.get("parameters") or {}, ctx)
        if integration == "slack":
            payload = {"text": params["text"], **({"blocks": params["blocks"]} if params.get("blocks") else {})}
            message = {"channel": "slack", "target": params["channel"], "payload": payload, "key": "slack"}
        else:
            values = params.get("properties") or params.get("fields") or {}
            message = _crm_message(integration, config["action"], params.get("object"),
                                   params.get("id_property") or params.get("external_id_field"), params.get("id"), values)
        return self._summary(self._enqueue(ctx, config, [message]))


@register
class SyncToExternal(DeliveryAction):
    """Seed 003's CRM sync: ``integration`` (salesforce/hubspot), ``mapping`` {CRM field: template},
    optional ``object`` and ``id_field`` (default Contact/Email, contacts/email). Upserts by the id
    field's mapped value; creates when it maps to nothing."""

    type = "sync_to_external"
    required = ("integration", "mapping")

    def validate_config(self, config):
        config = super().validate_config(config)
        if config["integration"] not in CRM_DEFAULTS:
            raise ConfigError("integration", f"must be one of {', '.join(CRM_DEFAULTS)}")
        if not isinstance(config["mapping"], dict) or not config["mapping"]:
            raise ConfigError("mapping", "must be a non-empty object of CRM field to template")
        _string_map(config, "mapping")
        return config

    def run(self, config, ctx):
        integration = config["integration"]
        self._require_connected(ctx, integration)
        values = {field_name: render(str(t), ctx) for field_name, t in config["mapping"].items()}
        id_field = config.get("id_field") or CRM_DEFAULTS[integration][1]
        record_id = next((v for k, v in values.items() if k.lower() == id_field.lower() and v), None)
        operation = "upsert" if record_id else "create"
        message = _crm_message(integration, operation, config.get("object"), id_field, record_id, values)
        return {**self._summary(self._enqueue(ctx, config, [message])), "operation": operation}


class NotBuilt(Action):
    """An action whose machinery does not exist yet: fail clearly, never pretend."""

    needs_account = False

    def validate_config(self, config):
        return dict(config or {})

    def run(self, config, ctx):
        raise ActionError(f"{self.type}: not implemented yet; nothing was done")


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
        from decimal import Decimal, InvalidOperation


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
        from django.core.exceptions import ValidationError


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
