"""The automation engine's part of the CSM cockpit (``accounts.cockpit.sources``; registered in ``ready()``).

* Timeline: the account's rule runs (a run skipped because its conditions did not match, or the account is out
  of the rule's scope, is noise and left out; cooldowns, rate limits and loops are shown with their reason) and
  the outbox messages those runs wrote, with what delivery says about them.
* What's next: delayed, debounced and retrying runs that wait, and the cooldowns in force for the account.
* Home: runs of free rules (workflows, event triggers) fired for the book; rules kept by a SuccessPlay or a
  journey are shown by their owners' sources instead (their executions).
"""

from __future__ import annotations

import datetime

from django.db.models import Count, Max, Q
from django.utils.text import Truncator

from accounts.cockpit.sources import BAD, GOOD, WARN, Entry, Kind, Play, Plays, Source, Upcoming, admin_url, register
from csplatform.json_schema import duration_words
from delivery.models import Outbox

from . import waits
from .delivery_outcomes import DEAD, DELIVERED, QUEUED, RETRYING, Deliveries, has_dead_message
from .managed import managed_sources, owner_of
from .models import Run, Workflow

RUN, MESSAGE = "run", "message"
NOISE = (Run.SkipReason.CONDITIONS_NOT_MET, Run.SkipReason.OUT_OF_SCOPE)
FIRED = (Run.Status.SUCCESS, Run.Status.FAILED, Run.Status.RUNNING)
RUN_TONES = {Run.Status.SUCCESS: GOOD, Run.Status.FAILED: BAD, Run.Status.SKIPPED: WARN}
MESSAGE_STATES = {Outbox.Status.PENDING: (QUEUED, ""), Outbox.Status.SENDING: (QUEUED, ""),
                  Outbox.Status.FAILED: (RETRYING, WARN), Outbox.Status.DELIVERED: (DELIVERED, GOOD),
                  Outbox.Status.DEAD: (DEAD, BAD)}


def _rule_name(run: Run) -> str:
    owner = owner_of(run.workflow)
    return f"{owner.kind if owner else 'Rule'} “{run.workflow.name}”"


def _messages_summary(counts: dict | None) -> str:
    if not counts:
        return ""
    parts = [f"{n} {state}" for state, n in counts.items() if n]
    total = sum(counts.values())
    return f"{total} message{'s' if total != 1 else ''}: {', '.join(parts)}"


class AutomationSource(Source):
    key = "automation"
    kinds = (Kind(RUN, "Rule runs", "Rule run", 30), Kind(MESSAGE, "Messages", "Message", 31))

    @staticmethod
    def _runs(account):
        return Run.objects.for_tenant(account.tenant_id).filter(account=account)

    def timeline(self, account, *, kinds, before, limit):
        entries = []
        if RUN in kinds:
            runs = self._runs(account).exclude(status=Run.Status.SKIPPED, skip_reason__in=NOISE)
            if before is not None:
                runs = runs.filter(created_at__lt=before)
            runs = list(runs.select_related("workflow").order_by("-created_at", "-id")[:limit])
            deliveries = Deliveries(account.tenant_id, [r.pk for r in runs])
            entries += [self._run(run, deliveries) for run in runs]
        if MESSAGE in kinds:
            messages = Outbox.objects.for_tenant(account.tenant_id).filter(
                run_id__in=self._runs(account).values("pk"))
            if before is not None:
                messages = messages.filter(created_at__lt=before)
            entries += [self._message(m) for m in messages.order_by("-created_at", "-id")[:limit]]
        return entries

    @staticmethod
    def _run(run: Run, deliveries: Deliveries) -> Entry:
        status = deliveries.status(run)
        if status == "delivery_failed":
            label, tone = "Delivery failed", BAD
        else:
            label, tone = run.get_status_display(), RUN_TONES.get(run.status, "")
        why = run.get_skip_reason_display() if run.skip_reason else ""
        if run.status == Run.Status.QUEUED and run.scheduled_for:
            why = f"waits until {run.scheduled_for:%d %b %Y %H:%M}"
        detail = "; ".join(filter(None, [why, Truncator(run.error).chars(300),
                                         _messages_summary(deliveries.run(run)), "started by hand" if run.manual else ""]))
        return Entry(run.created_at, RUN, f"{_rule_name(run)} ran", detail, label, tone,
                     admin_url("admin:automation_run_change", run.pk))

    @staticmethod
    def _message(message: Outbox) -> Entry:
        state, tone = MESSAGE_STATES.get(message.status, (message.status, ""))
        detail = f"attempt {message.attempts} of {message.max_attempts}"
        if message.status == Outbox.Status.FAILED:
            detail += f", next at {message.next_attempt_at:%d %b %H:%M}"
        if message.error and message.status != Outbox.Status.DELIVERED:
            detail += f": {Truncator(message.error).chars(200)}"
        return Entry(message.created_at, MESSAGE, f"{message.get_channel_display()} to {Truncator(message.target).chars(70)}",
                     detail, state.capitalize(), tone, admin_url("admin:delivery_outbox_change", message.pk))

    def upcoming(self, account, *, now):
        items = []
        waiting = (self._runs(account).filter(status=Run.Status.QUEUED, scheduled_for__isnull=False)
                   .select_related("workflow").order_by("scheduled_for")[:10])
        for run in waiting:
            what = "Retry" if run.attempt > 1 else "Waiting run" if run.started_at else "Delayed run"
            items.append(Upcoming(run.scheduled_for, what, f"{_rule_name(run)} runs",
                                  f"attempt {run.attempt}" if run.attempt > 1 else "",
                                  admin_url("admin:automation_run_change", run.pk)))
        last_fired = (self._runs(account).filter(Q(status__in=FIRED) | waits.waiting(), workflow__cooldown_minutes__gt=0)
                      .order_by().values("workflow_id", "workflow__name", "workflow__cooldown_minutes", "workflow__source")
                      .annotate(last=Max("created_at")))
        for row in last_fired:
            until = row["last"] + datetime.timedelta(minutes=row["workflow__cooldown_minutes"])
            if until > now:
                owner = owner_of(Workflow(source=row["workflow__source"]))
                items.append(Upcoming(until, "Cooldown ends",
                                      f"{owner.kind if owner else 'Rule'} “{row['workflow__name']}” may fire again",
                                      f"last fired {row['last']:%d %b %H:%M}, cooldown "
                                      f"{duration_words(row['workflow__cooldown_minutes'], 'minutes')}",
                                      admin_url("admin:automation_workflow_change", row["workflow_id"])))
        return items

    def plays(self, tenant, accounts, *, since, limit):
        runs = (Run.objects.for_tenant(tenant).filter(created_at__gte=since, status__in=FIRED, account__in=accounts)
                .exclude(workflow__source__in=managed_sources()))
        counts = runs.aggregate(fired=Count("pk"), dead=Count("pk", filter=has_dead_message()))
        runs = runs.annotate(has_dead=has_dead_message())
        latest = []
        for run in runs.select_related("workflow", "account").order_by("-created_at", "-id")[:limit]:
            failed = bool(run.has_dead)
            latest.append(Play(run.created_at, "Rule", run.workflow.name, run.account_id, run.account.name,
                               run.get_status_display(), BAD if failed or run.status == Run.Status.FAILED else GOOD,
                               failed, admin_url("admin:automation_run_change", run.pk)))
        return Plays(counts["fired"], counts["dead"], latest)


register(AutomationSource())
