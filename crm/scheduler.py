"""The step scheduler: ``execute_pending_steps(now=None)`` runs every due step once.

Called by celery beat every minute (``crm.tasks.execute_pending_steps_task``), by ``tick`` (registered
as due work), by the ``execute_pending_steps`` command and, for a just-started journey whose first
step is due at once, right after the start commits.

Per tenant, in that tenant's context, batches of due executions (``status = active`` and
``next_step_at <= now``) are taken with ``SELECT … FOR UPDATE SKIP LOCKED``: two schedulers never
take the same execution, and a step execution row is unique per execution and step, so a step is
sent at most once. For each execution the current step is:

* skipped (conditions not met: skip, branch forward or end, as the step says),
* deferred to the end of the contact's quiet hours (customer channels; the row stays ``deferred``
  and the execution's ``next_step_at`` moves to the end of the window), or skipped if the step says so,
* sent through ``crm.channels.send`` (the outbox, in this transaction), or recorded ``failed``.

Then the execution advances: the next step is due ``delay_hours`` after now; after the last step it
is ``completed``. A failing step is recorded and the journey goes on; an unexpected error in one
execution is recorded on it (its savepoint rolled back) and never stops the batch, so no execution
is left stuck and nothing is dropped silently.
"""

from __future__ import annotations

import datetime
import hashlib
import html
import logging
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.template import Context, Engine
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import strip_tags

from accounts.models import Membership, Role, Tenant
from automation import conditions
from csplatform.tenancy import system_context, tenant_context
from delivery.feedback import suppressed_reasons

from .channels import ChannelError, chat_route, send
from .discounts import discount_issue
from .models import CUSTOMER_CHANNELS, Channel, CRMPlaybookExecution, CRMStep, CRMStepExecution
from .quiet_hours import window_for
from .services import crm_settings_for, schedule_step

log = logging.getLogger("crm.scheduler")

ExecStatus = CRMPlaybookExecution.Status
StepStatus = CRMStepExecution.Status
BATCH_SIZE = 100
MAX_ROUNDS = 100

_subjects = Engine(debug=False, autoescape=False, builtins=["django.template.defaultfilters"])


@dataclass
class SchedulerResult:
    executions: int = 0
    steps: Counter = field(default_factory=Counter)
    errors: int = 0

    def as_dict(self) -> dict:
        return {"executions": self.executions, "errors": self.errors, **dict(self.steps)}


def _due(tenant, now, execution_ids=None):
    qs = CRMPlaybookExecution.objects.for_tenant(tenant).filter(status=ExecStatus.ACTIVE, next_step_at__lte=now)
    if execution_ids is not None:
        qs = qs.filter(pk__in=list(execution_ids))
    return qs


def tenants_with_due_steps(now) -> list[Tenant]:
    with system_context("crm: list tenants with due journey steps"):
        ids = set(CRMPlaybookExecution.objects.filter(status=ExecStatus.ACTIVE, next_step_at__lte=now)
                  .values_list("tenant_id", flat=True).distinct())
        return list(Tenant.objects.filter(pk__in=ids).order_by("pk")) if ids else []


def execute_pending_steps(now: datetime.datetime | None = None, *, tenant=None, execution_ids=None,
                          batch_size: int = BATCH_SIZE, max_rounds: int = MAX_ROUNDS) -> dict:
    """Run every step due at ``now`` (default: the current time) once; returns counts by outcome."""
    now = now or timezone.now()
    result = SchedulerResult()
    tenants = [tenant] if tenant is not None else tenants_with_due_steps(now)
    for t in tenants:
        with tenant_context(t):
            _run_tenant(t, now, execution_ids, batch_size, max_rounds, result)
    return result.as_dict()


def _run_tenant(tenant, now, execution_ids, batch_size, max_rounds, result: SchedulerResult) -> None:
    crm_settings = crm_settings_for(tenant)
    steps_cache: dict[int, dict[int, CRMStep]] = {}
    for _ in range(max_rounds):
        with transaction.atomic():
            batch = list(_due(tenant, now, execution_ids).order_by("next_step_at", "id")
                         .select_related("playbook", "contact", "account", "account__owner")
                         .select_for_update(skip_locked=True, of=("self",))[:batch_size])
            if not batch:
                return
            for execution in batch:
                result.executions += 1
                steps = steps_cache.get(execution.playbook_id)
                if steps is None:
                    steps = steps_cache[execution.playbook_id] = {
                        s.order: s for s in CRMStep.objects.for_tenant(tenant).filter(playbook_id=execution.playbook_id)}
                try:
                    with transaction.atomic():
                        outcome = run_step(execution, steps, now, crm_settings)
                except Exception as exc:  # a bug or a broken row: record it, keep the batch going
                    log.exception("crm execution %s: step failed unexpectedly", execution.pk)
                    result.errors += 1
                    outcome = _record_crash(execution, steps, now, exc)
                result.steps[outcome] += 1


# --- one step -----------------------------------------------------------------------------------

def _current(execution, steps: dict[int, CRMStep]) -> CRMStep | None:
    """The step to run: the one at ``current_step``, or the next existing one (steps may have been
    deleted in the admin while the journey ran)."""
    later = sorted(order for order in steps if order >= execution.current_step)
    return steps[later[0]] if later else None


def _next_order(steps: dict[int, CRMStep], after: int) -> int | None:
    later = sorted(order for order in steps if order > after)
    return later[0] if later else None


def _advance(execution, steps, now, *, to: int | None, after: int) -> None:
    """Move to step ``to`` (or the one after ``after``) and schedule it; complete when there is none."""
    target = to if to is not None and to in steps else _next_order(steps, after)
    if target is None:
        execution.status, execution.completed_at, execution.next_step_at = ExecStatus.COMPLETED, now, None
    else:
        execution.current_step = target
        execution.next_step_at = now + datetime.timedelta(hours=float(steps[target].delay_hours or Decimal("0")))
    execution.save(update_fields=["status", "completed_at", "next_step_at", "current_step", "updated_at"])
    if target is None:  # a step scheduled before it was deleted or branched over will never run
        CRMStepExecution.objects.filter(execution=execution, status__in=CRMStepExecution.PENDING_STATUSES).update(
            status=StepStatus.CANCELLED, error="the journey ended before this step", updated_at=now)
    else:
        schedule_step(execution, steps[target])


def _email_skip_reason(tenant_id, contact) -> str:
    """Why an email step is skipped for this contact (opted out, or the address bounced or complained), or ""."""
    if contact.email_opt_out:
        return "the contact opted out of email"
    why = suppressed_reasons(tenant_id, [contact.email])
    return f"the contact's address is {next(iter(why.values()))}" if why else ""


def run_step(execution: CRMPlaybookExecution, steps: dict[int, CRMStep], now, crm_settings) -> str:
    """Run the current step of ``execution`` (locked by the caller); returns the outcome."""
    step = _current(execution, steps)
    if step is None:
        _advance(execution, steps, now, to=None, after=10**6)
        return "completed"
    row = schedule_step(execution, step)
    if row.status not in CRMStepExecution.PENDING_STATUSES:  # already done (should not happen): move on
        _advance(execution, steps, now, to=None, after=step.order)
        return "already_done"
    contact = execution.contact

    if step.conditions and not conditions.evaluate(step.conditions, contact, now=now):
        row.status, row.error = StepStatus.SKIPPED, "conditions not met"
        if step.on_condition_fail == CRMStep.OnConditionFail.STOP:
            row.error += "; journey ended"
            row.save()
            _advance(execution, {}, now, to=None, after=step.order)
        elif step.on_condition_fail == CRMStep.OnConditionFail.BRANCH:
            row.error += f"; branched to step {step.branch_to}"
            row.save()
            _advance(execution, steps, now, to=step.branch_to, after=step.order)
        else:
            row.save()
            _advance(execution, steps, now, to=None, after=step.order)
        return "skipped"

    if step.channel in CUSTOMER_CHANNELS:
        window = window_for(contact, crm_settings)
        until = window.until(now) if window is not None else None
        if until is not None:
            if step.quiet_hours == CRMStep.QuietHours.SKIP:
                row.status, row.error = StepStatus.SKIPPED_QUIET_HOURS, f"quiet hours until {until.isoformat()}"
                row.save()
                _advance(execution, steps, now, to=None, after=step.order)
                return "skipped_quiet_hours"
            row.status, row.scheduled_for = StepStatus.DEFERRED, until
            row.error = f"deferred from {now.isoformat()}: contact's quiet hours"
            row.save()
            execution.next_step_at = until
            execution.save(update_fields=["next_step_at", "updated_at"])
            return "deferred"

    skip = _email_skip_reason(row.tenant_id, contact) if step.channel == Channel.EMAIL else ""
    if skip:
        row.status, row.error = StepStatus.SKIPPED, skip
        row.save()
        _advance(execution, steps, now, to=None, after=step.order)
        return "skipped"

    try:
        with transaction.atomic():  # a failed send leaves no discount code behind
            _send_step(execution, step, row, now, crm_settings)
    except ChannelError as exc:
        row.status, row.error, row.discount_code = StepStatus.FAILED, str(exc), None
        row.save()
        _advance(execution, steps, now, to=None, after=step.order)
        return "failed"
    _advance(execution, steps, now, to=None, after=step.order)
    return "sent"


def _record_crash(execution, steps, now, exc: Exception) -> str:
    """After an unexpected error (the step's savepoint is rolled back): mark the step failed and go on;
    if even that fails, fail the execution so it is never picked up again in a loop."""
    message = f"{type(exc).__name__}: {exc}"[:2000]
    try:
        with transaction.atomic():
            execution.refresh_from_db()
            step = _current(execution, steps)
            if step is None:
                raise RuntimeError("no current step")
            row = schedule_step(execution, step)
            row.status, row.error = StepStatus.FAILED, message
            row.save()
            _advance(execution, steps, now, to=None, after=step.order)
            return "failed"
    except Exception:
        log.exception("crm execution %s: could not record the failure; failing the execution", execution.pk)
    CRMPlaybookExecution.objects.for_tenant(execution.tenant_id).filter(pk=execution.pk).update(
        status=ExecStatus.FAILED, error=message, next_step_at=None, completed_at=now, updated_at=now)
    return "execution_failed"


# --- rendering and sending ----------------------------------------------------------------------

def choose_variant(execution, step: CRMStep) -> dict | None:
    """A/B split: a stable, weighted choice per execution and step (the same on every retry)."""
    variants = [v for v in (step.variants or []) if isinstance(v, dict) and v.get("name")]
    total = sum(float(v.get("weight", 1)) for v in variants)
    if not variants or total <= 0:
        return None
    digest = hashlib.sha256(f"{execution.pk}:{step.order}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * total
    for v in variants:
        point -= float(v.get("weight", 1))
        if point < 0:
            return v
    return variants[-1]


def _owner(execution):
    """The account owner (CSM); failing that, the tenant's first admin, so the notification is not lost."""
    owner = execution.account.owner
    if owner is not None and owner.email:
        return owner, ""
    admin = (Membership.objects.filter(tenant_id=execution.tenant_id, role=Role.TENANT_ADMIN)
             .select_related("user").order_by("created_at", "pk").first())
    if admin is not None and admin.user.email:
        return admin.user, "the account has no owner; sent to a tenant admin"
    return None, ""


def template_context(execution, step: CRMStep, code=None, owner=None) -> dict:
    contact, account = execution.contact, execution.account
    return {
        "contact": {"id": contact.pk, "name": contact.name, "first_name": (contact.name or "").split(" ")[0],
                    "email": contact.email, "phone": contact.phone, "role": contact.role},
        "account": {"id": str(account.pk), "name": account.name, "status": account.status,
                    "arr": float(account.arr), "risk_level": account.risk_level,
                    "health_score": float(account.health_score) if account.health_score is not None else None,
                    "renewal_date": account.renewal_date.isoformat() if account.renewal_date else ""},
        "owner": {"name": (owner.get_full_name() or owner.email) if owner else "", "email": owner.email if owner else ""},
        "journey": {"name": execution.playbook.name, "title": str(execution.playbook)},
        "step": {"order": step.order, "name": step.name, "channel": step.channel},
        "execution": {"id": execution.pk, "started_at": execution.started_at.isoformat()},
        "discount_code": code.code if code else "",
        "discount_percent": code.percent if code else step.discount_percent,
        "discount_expires_at": code.expires_at if code else None,
        "context": execution.context or {},
    }


def html_to_text(rendered: str) -> str:
    text = html.unescape(strip_tags(rendered))
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def _send_step(execution, step: CRMStep, row: CRMStepExecution, now, crm_settings) -> None:
    contact = execution.contact
    variant = choose_variant(execution, step)
    template = (variant or {}).get("template") or step.template
    subject_source = (variant or {}).get("subject") or step.subject
    owner, note = (None, "")
    chat_transport = crm_settings.chat_transport
    if step.channel == Channel.OWNER_DM:
        owner, note = _owner(execution)
        if owner is None:
            raise ChannelError("the account has no owner and the tenant no admin with an email address")
        recipient = owner.email
    elif step.channel == Channel.EMAIL:
        recipient = contact.email
    elif step.channel == Channel.CHAT:  # the tenant's chat transport, else the fallback order
        chat_transport, recipient, note = chat_route(execution.tenant_id, contact, execution.context or {},
                                                     crm_settings.chat_transport)
    else:
        recipient = contact.phone
    if not recipient:
        raise ChannelError(f"no {step.get_channel_display().lower()} address for "
                           f"{'the owner' if step.channel == Channel.OWNER_DM else contact}")
    code = None
    if step.discount_percent and step.channel != Channel.OWNER_DM:
        code = discount_issue(contact=contact, percent=step.discount_percent, execution=execution, now=now,
                              expiry_days=crm_settings.discount_expiry_days)
    elif step.channel == Channel.OWNER_DM:  # the owner sees the code the customer was offered
        code = execution.discount_codes.filter(used_at__isnull=True).order_by("-created_at").first()
    ctx = template_context(execution, step, code, owner)
    try:
        rendered = render_to_string(template, ctx)
        subject = (_subjects.from_string(subject_source).render(Context(ctx, autoescape=False)).strip()
                   if subject_source else "")
    except Exception as exc:
        raise ChannelError(f"template {template}: {type(exc).__name__}: {exc}") from None
    is_html = template.endswith((".html", ".htm"))
    body = html_to_text(rendered) if is_html else rendered.strip()
    extra = {"journey": execution.playbook.name, "chat_transport": chat_transport}
    if is_html:
        extra["html"] = rendered
    if step.channel == Channel.EMAIL:
        extra["contact_id"] = contact.pk
    row.variant = (variant or {}).get("name", "")
    row.recipient, row.subject = recipient[:255], subject[:255]
    row.discount_code = code if step.channel != Channel.OWNER_DM else None
    message_id = send(row, step.channel, recipient, subject, body, {**extra, "template_context": ctx})
    row.status, row.sent_at, row.outbox_message_id = StepStatus.SENT, now, message_id or ""
    row.error = note
    row.save()
