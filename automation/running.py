"""Starting a rule outside the event path: by hand (execute, the admin's "Run now"), as a dry run (test),
again (replay) or from an inbound webhook.

Every path ends in ``engine.fire``, so runs look the same whichever door started them (the rule APIs, the
admin, ``/api/hooks/<token>/``); these helpers find the subject the rule reads and shape a dry run's answer.
A request naming nothing the rule can run on raises ``RunRequestError``, a Django ``ValidationError`` naming
the field (``account_id``, ``entity_type``, ``entity_id``): the API answers it as a 400, the admin as a
message. Callers run these in the rule's tenant context.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import Account, Contact

from . import conditions, engine, webhook_subject
from .events import json_safe
from .models import Event, Run, Workflow
from .subjects import account_of, model_for, model_type_name
from .triggers import triggers


class RunRequestError(ValidationError):
    """The run asked for names no subject the rule can read (``{field: [message]}``)."""


def is_webhook(rule: Workflow) -> bool:
    return rule.trigger_type == "webhook"


def subject_model(rule: Workflow) -> str:
    """The model the rule's conditions read (seed 003's model_type, else the trigger's default)."""
    trigger = triggers.get(rule.trigger_type) if rule.trigger_type in triggers else None
    return rule.model_type or (trigger.subject_model if trigger else None) or "account"


def _get(rows, pk):
    try:
        return rows.filter(pk=pk).first()
    except (ValueError, TypeError, ValidationError):  # not even a well-formed id
        return None


def resolve_subject(rule: Workflow, *, tenant, account: Account | None = None, entity_type: str = "",
                    entity_id=None, body: dict | None = None, pick_first: bool = False):
    """``(subject, account)`` for a run started by hand. ``pick_first`` (dry runs) falls back to the
    tenant's first row of the rule's model, so a rule can be tried without naming anything."""
    if is_webhook(rule):  # as an inbound call would: the body may name the account
        body = body or {}
        record = webhook_record(rule, body)
        return webhook_subject.subject(rule.conditions, body), account or _account_of_body(rule, body, record)
    model_name = subject_model(rule)
    if entity_type:
        try:
            named = model_type_name(entity_type)
        except ValueError as exc:
            raise RunRequestError({"entity_type": [str(exc)]}) from None
        if named != model_name:  # the rule's conditions read fields of its own model only
            raise RunRequestError({"entity_type": [f"this rule reads {model_name} rows, not {named}"]})
    rows = model_for(model_name).objects.for_tenant(tenant)
    if entity_id not in (None, ""):
        subject = _get(rows, entity_id)
        if subject is None:
            raise RunRequestError({"entity_id": [f"{model_name} '{entity_id}' does not exist"]})
    elif model_name == "account" and account is not None:
        subject = account
    elif pick_first:
        if account is not None and model_name != "account":
            rows = rows.filter(account=account)
        subject = rows.order_by("pk").first()
        if subject is None:
            field = "account_id" if model_name == "account" else "entity_id"
            raise RunRequestError({field: [f"there is no {model_name} to run this rule against"]})
    else:
        field = "account_id" if model_name == "account" else "entity_id"
        raise RunRequestError({field: [f"this rule reads {model_name} rows: name one"]})
    return subject, account if account is not None else account_of(subject)


def account_in(tenant, account_id) -> Account | None:
    """The tenant's account with this id, or None (an inbound body may name anything)."""
    if account_id in (None, ""):
        return None
    return _get(Account.objects.for_tenant(tenant), account_id)


def webhook_record(rule: Workflow, body: dict):
    """The record an inbound body points at, for a webhook rule with a ``model_type`` (else None): a contact
    by ``contact_id`` or by ``email``, an account by ``account_id``; only the rule's tenant's."""
    if rule.model_type == "contact":
        contacts = Contact.objects.for_tenant(rule.tenant_id).select_related("account")
        if body.get("contact_id") not in (None, ""):
            return _get(contacts, body["contact_id"])
        email = body.get("email")
        return contacts.filter(email__iexact=email).order_by("pk").first() if isinstance(email, str) and email else None
    if rule.model_type == "account":
        return account_in(rule.tenant_id, body.get("account_id"))
    return None


def _account_of_body(rule: Workflow, body: dict, record) -> Account | None:
    return account_of(record) if record is not None else account_in(rule.tenant_id, body.get("account_id"))


def webhook_event(rule: Workflow, body: dict, account: Account | None) -> Event:
    """The inbound body as an Event, so the run records it as trigger data and actions read it as
    ``{{ entity.… }}``. It is handled here and now (``engine.process_event`` would hand one webhook
    event to every webhook rule of the tenant), so it is written already processed."""
    return Event.objects.create(tenant_id=rule.tenant_id, type="webhook", account=account, payload=json_safe(body),
                                processed_at=timezone.now(), attempts=1)


def execute(rule: Workflow, *, subject, account, body: dict | None, context: dict) -> Run:
    """Run the rule now, by hand: limits and the rule's status do not hold it back (engine's ``manual``)."""
    with transaction.atomic():
        event = webhook_event(rule, body or {}, account) if is_webhook(rule) else None
        record = webhook_record(rule, body or {}) if is_webhook(rule) else None
        return engine.fire(rule, event=event, subject=subject, account=account, manual=True, extra=context,
                           record=record)


def receive(rule: Workflow, body: dict) -> Run:
    """An inbound webhook: the body is the run's entity; the record it points at (``webhook_record``) is what
    the actions change, and its account (else the body's ``account_id``, if the tenant has that account) is
    the run's account. Not manual: the rule's status, scope and limits all hold."""
    with transaction.atomic():
        record = webhook_record(rule, body)
        account = _account_of_body(rule, body, record)
        event = webhook_event(rule, body, account)
        return engine.fire(rule, event=event, subject=webhook_subject.subject(rule.conditions, body), account=account,
                           record=record)


def replay(run: Run) -> tuple[Run, object]:
    """Fire a finished run's rule again, by hand, for the same event and account; a run without an event
    reads its subject as it is now (none if it is gone). Returns the new run and the subject it read (the
    run's account when there is none)."""
    rule = run.workflow
    subject = None
    if run.event is None and run.subject_model and run.subject_id:
        try:
            subject = model_for(run.subject_model).objects.for_tenant(run.tenant_id).filter(pk=run.subject_id).first()
        except (LookupError, ValueError):
            subject = None
    with transaction.atomic():
        new = engine.fire(rule, event=run.event, subject=subject, account=run.account, manual=True)
    return new, subject or run.account


def condition_trace(run: Run, rule: Workflow, target) -> list:
    """Which conditions a run saw: its recorded trace (debug mode), else the rule's conditions evaluated
    once more on ``target`` now; empty if that fails (the run already said whether they were met)."""
    trace = run.trace or []
    if not trace:
        try:
            conditions.evaluate(rule.conditions, target, trace=trace)
        except Exception:  # the detail is a courtesy
            trace = []
    return trace


class _RolledBack(Exception):
    def __init__(self, result: dict):
        self.result = result


def dry_run(rule: Workflow, *, subject, account, body: dict | None, sample_event: dict | None,
            context: dict) -> dict:
    """Fire the rule for real inside a transaction that is then rolled back: the answer says what the
    conditions saw and what each action did, and nothing stays written (on-commit work such as event
    dispatch is discarded with the savepoint)."""
    debug_mode = rule.debug_mode
    try:
        with transaction.atomic():
            raise _RolledBack(_simulate(rule, subject, account, body, sample_event, context))
    except _RolledBack as done:
        return done.result
    finally:
        rule.debug_mode = debug_mode


def _simulate(rule, subject, account, body, sample_event, context) -> dict:
    # fire() keeps the condition trace only in debug mode; a test always wants it. The row is updated
    # too because fire() reloads a rule that has limits; both are rolled back with everything else.
    Workflow.objects.filter(pk=rule.pk).update(debug_mode=True)
    rule.debug_mode = True
    event, matched = None, None
    if is_webhook(rule):
        event, matched = webhook_event(rule, body or {}, account), True
    elif sample_event is not None:
        event = Event.objects.create(
            tenant_id=rule.tenant_id, type=sample_event["type"], model=subject_model(rule),
            object_id=str(subject.pk) if subject is not None else "", account=account,
            payload=json_safe(sample_event.get("payload") or {}), changes=json_safe(sample_event.get("changes") or {}))
        matched = (rule.trigger_type in triggers
                   and triggers.get(rule.trigger_type).matches(rule.trigger_config, rule.model_type, event))
    run = engine.fire(rule, event=event, subject=subject, account=account, manual=True, extra=context)
    steps = [{"position": s.position, "type": s.action_type, "status": s.status, "output": s.output,
              "error": s.error, "duration_ms": s.duration_ms} for s in run.steps.order_by("position")]
    # Scope and the recursion guard are checked before the conditions, which then never ran.
    unevaluated = run.skip_reason in (Run.SkipReason.OUT_OF_SCOPE, Run.SkipReason.RECURSION_LIMIT)
    passed = None if unevaluated else run.skip_reason != Run.SkipReason.CONDITIONS_NOT_MET
    return {
        "dry_run": True,
        "workflow_id": rule.pk,
        "live": rule.is_live,
        "account_id": str(account.pk) if account is not None else None,
        "subject": {"model": run.subject_model, "id": run.subject_id},
        "trigger": {"type": rule.trigger_type, "checked": matched is not None, "matched": matched},
        "conditions": {"passed": passed, "trace": run.trace},
        "status": run.status,
        "skip_reason": run.skip_reason,
        "error": run.error,
        "actions": steps,
        "would_fire": rule.is_live and run.status != Run.Status.SKIPPED and matched is not False,
    }
