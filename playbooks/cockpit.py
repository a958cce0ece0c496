"""The playbooks' part of the CSM cockpit (``accounts.cockpit.sources``; registered in ``ready()``).

* Timeline: the account's playbook executions (SuccessPlays and the trigger settings' plays), reading
  "Delivery failed" when a message of the play's run died.
* Home: the executions started for the book in the window.
* Action: run a SuccessPlay for the account now (``services.trigger_playbook_manually``: the engine, the
  cooldown unless forced with a reason), for tenant admins and practitioners.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.utils.text import Truncator

from accounts.cockpit.sources import (
    BAD, GOOD, WARN, Action, Entry, Kind, ModelChoice, Play, Plays, Source, admin_url, register,
)
from automation.delivery_outcomes import has_dead_message
from csplatform.permissions import MANAGERS

from . import services
from .models import Playbook, PlaybookExecution

PLAY = "play"
Status = PlaybookExecution.Status
TONES = {Status.COMPLETED: GOOD, Status.FAILED: BAD, Status.CANCELLED: WARN}


def _name(execution: PlaybookExecution) -> tuple[str, str]:
    """(what, name): a SuccessPlay by its name, a trigger setting's play by its type."""
    if execution.playbook_id:
        return "SuccessPlay", execution.playbook.name
    return "Playbook", execution.get_playbook_type_display() or "Play"


def _status(execution: PlaybookExecution) -> tuple[str, str, bool]:
    if getattr(execution, "has_dead", False):
        return "Delivery failed", BAD, True
    return execution.get_status_display(), TONES.get(execution.status, ""), False


def _executions(tenant_id):
    return (PlaybookExecution.objects.for_tenant(tenant_id).annotate(has_dead=has_dead_message("run_id"))
            .select_related("playbook", "started_by"))


class PlaybooksSource(Source):
    key = "playbooks"
    kinds = (Kind(PLAY, "Plays", "Play", 20),)

    def timeline(self, account, *, kinds, before, limit):
        rows = _executions(account.tenant_id).filter(account=account)
        if before is not None:
            rows = rows.filter(started_at__lt=before)
        entries = []
        for execution in rows.order_by("-started_at", "-id")[:limit]:
            what, name = _name(execution)
            label, tone, _ = _status(execution)
            who = f"by {execution.started_by_label}" + (" (cooldown overridden)" if execution.forced else "")
            detail = "; ".join(filter(None, [Truncator(execution.reason).chars(300), Truncator(execution.outcome).chars(200),
                                             who]))
            entries.append(Entry(execution.started_at, PLAY, f"{what} “{name}” started", detail, label, tone,
                                 admin_url("admin:playbooks_playbookexecution_change", execution.pk)))
        return entries

    def plays(self, tenant, accounts, *, since, limit):
        rows = PlaybookExecution.objects.for_tenant(tenant).filter(started_at__gte=since, account__in=accounts)
        counts = rows.aggregate(fired=Count("pk"), dead=Count("pk", filter=has_dead_message("run_id")))
        rows = rows.annotate(has_dead=has_dead_message("run_id")).select_related("playbook")
        latest = []
        for execution in rows.select_related("account").order_by("-started_at", "-id")[:limit]:
            what, name = _name(execution)
            label, tone, failed = _status(execution)
            latest.append(Play(execution.started_at, what, name, execution.account_id, execution.account.name, label,
                               tone, failed, admin_url("admin:playbooks_playbookexecution_change", execution.pk)))
        return Plays(counts["fired"], counts["dead"], latest)


class TriggerPlayForm(forms.Form):
    playbook = ModelChoice(label="SuccessPlay", queryset=None)
    reason = forms.CharField(label="Reason", required=False, max_length=2000,
                             help_text="Why you run it now (needed to override the cooldown).")
    force = forms.BooleanField(label="Override the cooldown", required=False)

    def __init__(self, *args, account, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["playbook"].queryset = Playbook.objects.for_tenant(account.tenant_id).order_by("-is_active", "name")


class TriggerPlay(Action):
    key, label, roles, order = "play", "Run a SuccessPlay", MANAGERS, 20

    def form(self, account, user, data=None):
        return TriggerPlayForm(data, prefix=self.key, account=account)

    def perform(self, form, account, user):
        play = form.cleaned_data["playbook"]
        try:
            execution = services.trigger_playbook_manually(play, account, form.cleaned_data["reason"], user=user,
                                                           force=form.cleaned_data["force"])
        except services.PlaybookCooldown as exc:
            raise ValidationError(exc.message) from None
        return f"“{play.name}” ran for {account.name}: {execution.get_status_display().lower()}."


PlaybooksSource.actions = (TriggerPlay(),)
register(PlaybooksSource())
