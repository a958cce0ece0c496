"""Actions that send: the ``DeliveryAction`` base and webhook, email and SMS.

They write ``Outbox`` messages in the run's transaction (``ActionContext.enqueue``) and nothing else:
``delivery`` sends them after commit. Slack/HubSpot/Salesforce are in ``integrations``.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from accounts.models import Contact
from csplatform import json_schema as js
from delivery import email as emails
from delivery import policy, retry
from delivery.feedback import suppressed_reasons
from delivery.models import EmailTemplate, IntegrationCredential, Outbox
from delivery.services import dispatch_on_commit
from delivery.transports import RESERVED_HEADERS

from .. import payloads
from ..subjects import model_for
from ..triggers import ConfigError, triggers
from .base import (
    Action, ActionContext, ActionError, check_json_templates, check_template, register, render, render_json,
    string_map,
)


def _valid_email(value, field_name: str) -> str:
    try:
        validate_email(value)
    except ValidationError:
        raise ConfigError(field_name, f"'{value}' is not a valid email address") from None
    return value


def check_template_exists(tenant_id, ref, field_name: str = "template_id") -> None:
    """At save: ``ref`` names one of the tenant's email templates (id or name, as ``email_template_get`` finds
    them at run time; a default template's name counts, it is installed on first use)."""
    templates = EmailTemplate.objects.for_tenant(tenant_id)
    if isinstance(ref, bool) or not isinstance(ref, (int, str)):
        raise ConfigError(field_name, "must be a template's id or name")
    if str(ref).isascii() and str(ref).isdigit() and templates.filter(pk=int(ref)).exists():
        return
    if templates.filter(name=str(ref)).exists() or str(ref) in emails.DEFAULT_TEMPLATES:
        return
    names = sorted({*templates.values_list("name", flat=True)[:20], *emails.DEFAULT_TEMPLATES})
    raise ConfigError(field_name, f"template '{ref}' does not exist in this tenant; its templates: {', '.join(names)}")


def subject_reaches_people(rule) -> bool:
    """Whether a rule's subject can lead to a contact (it is an account, a contact, belongs to an account, or
    is an inbound webhook's body, which may carry an email)."""
    name = rule.model_type or triggers.get(rule.trigger_type).subject_model
    if not name:
        return True
    fields = {field.name for field in model_for(name)._meta.get_fields()}
    return name == "account" or bool(fields & {"email", "phone", "account"})


DELIVERY_SETTINGS = ("retry_count",)  # seed 001's ``delay`` is every action's: checked and run by automation.waits


class DeliveryAction(Action):
    """Base of the actions that send: ``retry_count``, the option every channel shares (seed 001's ``delay``
    makes the run wait before the action: ``automation.waits``)."""

    needs_account = False
    settings_schema = {"retry_count": js.integer(minimum=0, maximum=10)}

    def validate_config(self, config):
        config = super().validate_config(config)
        if config.get("retry_count") is not None:
            if not isinstance(config["retry_count"], int) or not 0 <= config["retry_count"] <= 10:
                raise ConfigError("retry_count", "must be an integer from 0 to 10")
        return config

    def _key(self, ctx: ActionContext) -> str:
        """Idempotency key prefix: one per run and step (a retried run is a new run, so a new message)."""
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
            rows.append(ctx.enqueue(retry_policy=retry_policy, dispatch=False, idempotency_key=key,
                                    key_is_new=key_is_new, **message))
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
    known = ("method", "headers", "payload", *DELIVERY_SETTINGS)
    settings_schema = {**DeliveryAction.settings_schema, "url": js.template(), "method": js.enum(WEBHOOK_METHODS),
                       "headers": js.json_object(), "payload": js.any_json(description="Empty: seed 004's payload.")}

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
        headers = string_map(config, "headers")
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
        # HTTP field values carry no surrounding whitespace: "Bearer {{ key }}" with no key is "Bearer", not an
        # illegal header that fails every attempt.
        headers = {name: render(value, ctx).strip() for name, value in (config.get("headers") or {}).items()}
        payload = config.get("payload")
        body = render_json(payload, ctx) if payload not in (None, "", {}) else payloads.event_payload(ctx)
        rows = self._enqueue(ctx, config, [{"channel": "webhook", "target": url, "method": config.get("method", "POST"),
                                            "headers": headers, "payload": body}])
        return {**self._summary(rows), "url": url}


EMAIL_RECIPIENTS = ("entity_email", "primary_contact", "customer_contacts", "assigned_user", "account_owner",
                    "internal_team", "custom")
# Seed 003's email ``priority``, as the headers mail clients show (normal adds none).
EMAIL_PRIORITY = {"high": {"X-Priority": "1 (Highest)", "Importance": "high"}, "normal": {},
                  "low": {"X-Priority": "5 (Lowest)", "Importance": "low"}}


@register
class SendEmail(DeliveryAction):
    """Seed 001/003 email: a tenant template (``template_id``: id or name) rendered per recipient, one
    message each. Recipients: seed 003's ``recipient`` (entity_email, assigned_user, custom +
    ``custom_email``, …) and/or seed 001's ``recipients`` {customer_contacts, internal_team,
    specific_emails}. No recipient means ``entity_email``; for a subject that is not a contact that is the
    account's primary contact (as ``primary_contact``). ``priority`` (high, normal, low) sets the mail's
    priority headers. Contacts who opted out are skipped (listed in the step output); if nobody is
    left the step fails with the reason."""

    type = "send_email"
    aliases = {"template": "template_id"}
    required = ("template_id",)
    templated = ("subject",)
    known = ("recipient", "custom_email", "recipients", "specific_emails", "personalization", "priority",
             *DELIVERY_SETTINGS)
    settings_schema = {**DeliveryAction.settings_schema, "template_id": js.text(description="A template's id or name."),
                       "recipient": js.enum(EMAIL_RECIPIENTS), "custom_email": js.text(fmt="email"),
                       "recipients": js.json_object(), "specific_emails": js.many(js.text(fmt="email")),
                       "personalization": js.json_object(), "priority": js.enum(EMAIL_PRIORITY)}

    def validate_config(self, config):
        config = super().validate_config(config)
        if config.get("priority") is not None and config["priority"] not in EMAIL_PRIORITY:
            raise ConfigError("priority", f"must be one of {', '.join(EMAIL_PRIORITY)}")
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
        string_map(config, "personalization")
        return config

    def check_for_rule(self, config, rule):
        check_template_exists(rule.tenant_id, config["template_id"])
        people = {"entity_email", "primary_contact", "customer_contacts", "assigned_user", "account_owner",
                  "internal_team"}
        spec = config.get("recipients") if isinstance(config.get("recipients"), dict) else {}
        kinds = {config.get("recipient") or ("entity_email" if not spec and not config.get("specific_emails") else None),
                 *(k for k in ("customer_contacts", "internal_team") if spec.get(k))}
        if kinds & people and not subject_reaches_people(rule):
            raise ConfigError("recipient", "this rule's subject has no email address and no account: "
                                           "send to custom_email or specific_emails")

    def _recipients(self, config: dict, ctx: ActionContext, missing: list[str]) -> list[tuple[str, Any]]:
        """(address, contact or None) per recipient; why a wanted recipient has no address goes to ``missing``."""
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

        def primary():
            """The account's primary contact (else its first); missing says why it cannot be written to."""
            contact = contacts.filter(account=account).order_by("-is_primary", "pk").first() if account else None
            if contact is None:
                missing.append("the event has no account" if account is None else f"account '{account.name}' has no contacts")
            elif not contact.email:
                missing.append(f"contact '{contact.name}' of account '{account.name}' has no email address")
            else:
                add(contact.email, contact)

        spec = config.get("recipients") if isinstance(config.get("recipients"), dict) else {}
        kinds = [k for k, on in (("customer_contacts", spec.get("customer_contacts")),
                                 ("internal_team", spec.get("internal_team"))) if on]
        if config.get("recipient"):
            kinds.append(config["recipient"])
        specific = list(spec.get("specific_emails") or []) + list(config.get("specific_emails") or [])
        if not kinds and not specific:
            kinds = ["entity_email"]
        for kind in kinds:
            subject = ctx.subject if isinstance(ctx.subject, Contact) else None
            if kind == "entity_email" and subject is not None:
                if subject.email:
                    add(subject.email, subject)
                else:
                    missing.append(f"contact '{subject.name}' has no email address")
            elif kind == "entity_email" and isinstance((ctx.event_payload or {}).get("email"), str):
                add(ctx.event_payload["email"])
            elif kind in ("entity_email", "primary_contact"):
                primary()
            elif kind == "customer_contacts":
                reachable = of_account(contacts)
                for contact in reachable:
                    add(contact.email, contact)
                if not reachable:
                    missing.append("the account has no contact with an email address")
            elif kind in ("assigned_user", "account_owner", "internal_team"):
                if account is not None and account.owner_id:
                    found.setdefault(account.owner.email.lower(), (account.owner.email, None))
                else:
                    missing.append("the account has no owner")
            elif kind == "custom":
                add(config["custom_email"])
        for email in specific:
            add(email)
        return list(found.values())

    def run(self, config, ctx):
        template = emails.email_template_get(ctx.tenant, config["template_id"])
        if template is None:
            raise ActionError(f"email template '{config['template_id']}' does not exist")
        missing: list[str] = []
        recipients = self._recipients(config, ctx, missing)
        # Opted-out contacts and addresses on the tenant's suppression list (hard bounces, complaints) are skipped.
        suppressed = suppressed_reasons(ctx.tenant, [e for e, _ in recipients])
        why = {e: "opted out of email" if c is not None and c.email_opt_out else suppressed.get(e.lower())
               for e, c in recipients}
        skipped = [{"email": e, "reason": why[e]} for e, _ in recipients if why[e]]
        sendable = [(e, c) for e, c in recipients if not why[e]]
        if not sendable:
            if skipped and all(s["reason"] == "opted out of email" for s in skipped):
                reason = "every recipient has opted out of email: " + ", ".join(s["email"] for s in skipped)
            elif skipped:
                reason = "every recipient was skipped: " + ", ".join(f"{s['email']} ({s['reason']})" for s in skipped)
            else:
                reason = f"no recipient: {'; '.join(dict.fromkeys(missing)) or 'nobody to write to'}"
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
            headers = {**EMAIL_PRIORITY[config.get("priority") or "normal"],
                       **({"List-Unsubscribe": f"<{context['unsubscribe_url']}>"} if contact is not None else {})}
            messages.append({"channel": "email", "target": address, "key": address.lower(), "payload": {
                **rendered, "headers": headers, "contact_id": contact.pk if contact is not None else None}})
        rows = self._enqueue(ctx, config, messages)
        return {**self._summary(rows), "template": template.name, "skipped": skipped}


SMS_RECIPIENTS = ("entity_phone", "primary_contact", "customer_contacts", "custom")


@register
class SendSms(DeliveryAction):
    """Seed 003's SMS: a template's text part (``template_id``), else ``message`` (templated), to ``recipient``
    (entity_phone, primary_contact, customer_contacts, or custom with ``phone``) through the tenant's SMS
    provider."""

    type = "send_sms"
    templated = ("message",)
    known = ("template_id", "recipient", "phone", *DELIVERY_SETTINGS)
    settings_schema = {**DeliveryAction.settings_schema, "recipient": js.enum(SMS_RECIPIENTS)}

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

    def check_for_rule(self, config, rule):
        if config.get("template_id") not in (None, ""):
            check_template_exists(rule.tenant_id, config["template_id"])
        if config["recipient"] != "custom" and not subject_reaches_people(rule):
            raise ConfigError("recipient", "this rule's subject has no phone number and no account: use custom")

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
            if not config.get("template_id"):
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
