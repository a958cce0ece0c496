"""The CRM journeys' part of the CSM cockpit (``accounts.cockpit.sources``; registered in ``ready()``).
Like the CRM API and admin, it is for tenant admins and practitioners only.

* Timeline: journeys started for the account's contacts, journeys their rule did not start (no contact to
  reach, the re-entry rule, ...: the reason from the rule's failed run), and the steps that ran (sent, with what
  delivery says of the message; skipped or failed, with the reason stored on the step).
* What's next: the steps scheduled (or deferred by quiet hours) of the account's active journeys.
* Home: journeys started for the book, "delivery failed" when a step failed or its message died.
* Action: start a journey for one of the account's contacts (``services.start_journey``).
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils.text import Truncator

from accounts.cockpit.sources import (
    BAD, GOOD, WARN, Action, Entry, Kind, ModelChoice, Play, Plays, Source, Upcoming, admin_url, register,
)
from accounts.cockpit.own import offer_contacts
from automation.models import Run
from csplatform.permissions import MANAGERS
from delivery.models import Outbox

from . import rules, services
from .actions import refusal_words
from .models import CRMPlaybook, CRMPlaybookExecution, CRMStepExecution, journeys_labelled

JOURNEY, STEP = "journey", "journey_step"
ExecStatus, StepStatus = CRMPlaybookExecution.Status, CRMStepExecution.Status
JOURNEY_TONES = {ExecStatus.CONVERTED: GOOD, ExecStatus.COMPLETED: GOOD, ExecStatus.FAILED: BAD,
                 ExecStatus.CANCELLED: WARN}
STEP_TONES = {StepStatus.SENT: GOOD, StepStatus.FAILED: BAD, StepStatus.SKIPPED: WARN,
              StepStatus.SKIPPED_QUIET_HOURS: WARN, StepStatus.CANCELLED: WARN}
DELIVERY_WORDS = {Outbox.Status.PENDING: "queued", Outbox.Status.SENDING: "queued", Outbox.Status.FAILED: "retrying",
                  Outbox.Status.DELIVERED: "delivered", Outbox.Status.DEAD: "not delivered (dead)"}


def _journey(execution: CRMPlaybookExecution) -> str:
    return execution.playbook.title or execution.playbook.name


def _step_name(row: CRMStepExecution) -> str:
    name = (row.step.name if row.step_id else "") or row.get_channel_display()
    return f"Step {row.step_order + 1} of “{_journey(row.execution)}”: {name}"


def _failing(tenant_id):
    """Executions with a failed step or a step whose message died (one EXISTS each, in the same query)."""
    dead = Outbox.objects.for_tenant(tenant_id).filter(status=Outbox.Status.DEAD).values("message_id")
    steps = CRMStepExecution.objects.for_tenant(tenant_id).filter(execution=OuterRef("pk"))
    return Exists(steps.filter(Q(status=StepStatus.FAILED) | Q(outbox_message_id__in=dead)))


class JourneysSource(Source):
    key = "crm"
    read_roles = MANAGERS
    kinds = (Kind(JOURNEY, "Journeys", "Journey", 40), Kind(STEP, "Journey steps", "Journey step", 41))

    def timeline(self, account, *, kinds, before, limit):
        entries = []
        if JOURNEY in kinds:
            rows = CRMPlaybookExecution.objects.for_tenant(account.tenant_id).filter(account=account)
            if before is not None:
                rows = rows.filter(started_at__lt=before)
            for e in rows.select_related("playbook", "contact").order_by("-started_at", "-id")[:limit]:
                detail = "; ".join(filter(None, [f"{e.get_source_display()} start",
                                                 f"converted, {e.conversion_value}" if e.conversion_value else "",
                                                 Truncator(e.error).chars(200)]))
                entries.append(Entry(e.started_at, JOURNEY, f"Journey “{_journey(e)}” started for {e.contact.name}",
                                     detail, e.get_status_display(), JOURNEY_TONES.get(e.status, ""),
                                     admin_url("admin:crm_crmplaybookexecution_change", e.pk)))
            entries += self._not_started(account, before, limit)
        if STEP in kinds:
            entries += self._steps(account, before, limit)
        return entries

    @staticmethod
    def _not_started(account, before, limit) -> list[Entry]:
        """Starts a journey's rule refused (no contact to reach, the re-entry rule, ...): the rule's failed run
        says why (``crm.actions``); shown as the journey's, with the reason, not as a rule's."""
        journey = journeys_labelled(CRMPlaybook.objects.for_tenant(account.tenant_id).filter(workflow_id=OuterRef("workflow_id")))
        runs = Run.objects.for_tenant(account.tenant_id).filter(account=account, status=Run.Status.FAILED,
                                                                 workflow__source=rules.SOURCE)
        if before is not None:
            runs = runs.filter(created_at__lt=before)
        runs = runs.annotate(journey=Subquery(journey.values("label")[:1])).exclude(journey=None)
        entries = []
        for run in runs.only("pk", "created_at", "error").order_by("-created_at", "-id")[:limit]:
            reason, detail = refusal_words(run.error)
            entries.append(Entry(run.created_at, JOURNEY, f"Journey “{run.journey}” not started: {reason}",
                                 Truncator(detail).chars(200), "Not started", WARN,
                                 admin_url("admin:automation_run_change", run.pk)))
        return entries

    @staticmethod
    def _steps(account, before, limit) -> list[Entry]:
        rows = (CRMStepExecution.objects.for_tenant(account.tenant_id).filter(execution__account=account)
                .exclude(status__in=CRMStepExecution.PENDING_STATUSES).annotate(at=Coalesce("sent_at", "updated_at")))
        if before is not None:
            rows = rows.filter(at__lt=before)
        rows = list(rows.select_related("step", "execution__playbook").order_by("-at", "-id")[:limit])
        ids = [r.outbox_message_id for r in rows if r.outbox_message_id]
        delivery = dict(Outbox.objects.for_tenant(account.tenant_id).filter(message_id__in=ids)
                        .values_list("message_id", "status")) if ids else {}
        entries = []
        for row in rows:
            status, tone = row.get_status_display(), STEP_TONES.get(row.status, "")
            state = delivery.get(row.outbox_message_id)
            if state is not None:
                status = f"Sent, {DELIVERY_WORDS[state]}"
                tone = BAD if state == Outbox.Status.DEAD else WARN if state == Outbox.Status.FAILED else tone
            detail = "; ".join(filter(None, [f"to {row.recipient}" if row.recipient else "", row.subject,
                                             f"variant {row.variant}" if row.variant else "",
                                             Truncator(row.error).chars(200)]))
            entries.append(Entry(row.at, STEP, _step_name(row), detail, status, tone,
                                 admin_url("admin:crm_crmplaybookexecution_change", row.execution_id)))
        return entries

    def upcoming(self, account, *, now):
        rows = (CRMStepExecution.objects.for_tenant(account.tenant_id)
                .filter(execution__account=account, execution__status=ExecStatus.ACTIVE,
                        status__in=CRMStepExecution.PENDING_STATUSES)
                .select_related("step", "execution__playbook", "execution__contact").order_by("scheduled_for")[:10])
        return [Upcoming(row.scheduled_for, "Journey step", _step_name(row),
                         f"{row.get_channel_display()} to {row.execution.contact.name}"
                         + (" (deferred: quiet hours)" if row.status == StepStatus.DEFERRED else ""),
                         admin_url("admin:crm_crmplaybookexecution_change", row.execution_id)) for row in rows]

    def plays(self, tenant, accounts, *, since, limit):
        rows = CRMPlaybookExecution.objects.for_tenant(tenant).filter(started_at__gte=since, account__in=accounts)
        counts = rows.aggregate(fired=Count("pk"), failing=Count("pk", filter=_failing(tenant)))
        rows = rows.annotate(failing=_failing(tenant))
        latest = [Play(e.started_at, "Journey", _journey(e), e.account_id, e.account.name, e.get_status_display(),
                       BAD if e.failing else JOURNEY_TONES.get(e.status, ""), e.failing,
                       admin_url("admin:crm_crmplaybookexecution_change", e.pk))
                  for e in rows.select_related("playbook", "account").order_by("-started_at", "-id")[:limit]]
        return Plays(counts["fired"], counts["failing"], latest)


class StartJourneyForm(forms.Form):
    journey = ModelChoice(label="Journey", queryset=None)
    contact = ModelChoice(label="Contact", queryset=None)

    def __init__(self, *args, account, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["journey"].queryset = CRMPlaybook.objects.for_tenant(account.tenant_id).filter(active=True) \
            .order_by("title", "name")
        offer_contacts(self.fields["contact"], account)
        self.fields["contact"].initial = next(iter(self.fields["contact"].rows), None)  # the primary one first


class StartJourney(Action):
    key, label, roles, order = "journey", "Start a journey", MANAGERS, 30

    def form(self, account, user, data=None):
        return StartJourneyForm(data, prefix=self.key, account=account)

    def perform(self, form, account, user):
        journey, contact = form.cleaned_data["journey"], form.cleaned_data["contact"]
        try:
            services.start_journey(contact, journey, {}, source=CRMPlaybookExecution.Source.ADMIN, started_by=user)
        except services.JourneyRefused as refused:
            raise ValidationError(refused.message) from None
        return f"Journey “{journey.title or journey.name}” started for {contact.name}."


JourneysSource.actions = (StartJourney(),)
register(JourneysSource())
