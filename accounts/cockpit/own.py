"""The accounts app's own part of the cockpit: notes, engagements, tasks (with what made them), stage moves,
health scores, tickets, survey responses and goals on the timeline; the renewal and tasks due in "what's next"; logging a note or an
engagement and creating a task as actions (through ``accounts.services``). Registered in ``AccountsConfig.ready``.
"""

from __future__ import annotations

import datetime

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Case, F, QuerySet, When
from django.utils import timezone
from django.utils.text import Truncator

from csplatform.permissions import CONTRIBUTORS

from .. import services
from ..task_sources import TaskSource, task_sources_describe
from ..models import (
    Contact, Engagement, Goal, HealthScore, JourneyHistory, Note, Opportunity, SupportTicket, SurveyResponse, Task,
)
from .sources import BAD, GOOD, WARN, Action, Entry, Kind, ModelChoice, Source, Upcoming, admin_url, register

NOTE, ENGAGEMENT, TASK, STAGE, HEALTH, TICKET, SURVEY, GOAL = (
    "note", "engagement", "task", "stage", "health", "ticket", "survey", "goal")
BAND_TONES = {"healthy": GOOD, "moderate": "", "at_risk": WARN, "critical": BAD}


def person(user) -> str:
    """A user as a CSM knows them: their name, else their email."""
    if user is None:
        return "nobody"
    return user.get_full_name() or user.email or user.get_username()


def _short(text: str, length: int = 280) -> str:
    return Truncator(text or "").chars(length)


#: When a goal's latest moment was: achieved at, else its last change for a missed or at-risk goal, else set.
GOAL_MOMENT = Case(When(status=Goal.Status.ACHIEVED, achieved_at__isnull=False, then=F("achieved_at")),
                   When(status__in=(Goal.Status.MISSED, Goal.Status.AT_RISK), then=F("updated_at")),
                   default=F("created_at"))
GOAL_WORDS = {Goal.Status.ACHIEVED: ("Goal achieved", GOOD), Goal.Status.MISSED: ("Goal missed", BAD),
              Goal.Status.AT_RISK: ("Goal at risk", WARN)}


def _rows(model, account, time_field: str, before, limit: int, related=()):
    """The account's latest ``limit`` rows of ``model`` (a model, or a queryset of one) older than ``before``."""
    rows = (model if isinstance(model, QuerySet) else model.objects).for_tenant(account.tenant_id).filter(account=account)
    if before is not None:
        rows = rows.filter(**{f"{time_field}__lt": before})
    return list(rows.select_related(*related).order_by(f"-{time_field}", "-pk")[:limit])


def survey_tone(kind: str, score: int) -> str:
    if kind == SurveyResponse.Kind.NPS:
        return GOOD if score >= 9 else WARN if score >= 7 else BAD
    return GOOD if score >= 4 else WARN if score == 3 else BAD


class AccountsSource(Source):
    key = "accounts"
    kinds = (
        Kind(NOTE, "Notes", "Note", 10), Kind(ENGAGEMENT, "Engagements", "Engagement", 11),
        Kind(TASK, "Tasks", "Task", 12), Kind(STAGE, "Stage moves", "Stage move", 13),
        Kind(HEALTH, "Health scores", "Health score", 14), Kind(TICKET, "Tickets", "Ticket", 15),
        Kind(SURVEY, "Survey responses", "Survey response", 16), Kind(GOAL, "Goals", "Goal", 17),
    )

    def timeline(self, account, *, kinds, before, limit):
        # Each kind's ``limit`` newest rows (one query each), but entries only for the ``limit`` newest of them all:
        # the page shows at most that many (``timeline_page``), and an entry costs more than its row (words, links,
        # what made a task).
        found: list[tuple[datetime.datetime, str, object]] = []
        for kind, (rows, time_field, related) in self._reads().items():
            if kind in kinds:
                found += [(getattr(row, time_field), kind, row)
                          for row in _rows(rows, account, time_field, before, limit, related)]
        found.sort(key=lambda item: item[0], reverse=True)  # stable: equal times keep the kinds' order
        if len(found) > limit:  # the cut keeps every row as old as the last one kept (see ``timeline_page``)
            found = [item for item in found if item[0] >= found[limit - 1][0]]
        today = timezone.localdate()
        made_by = task_sources_describe([row for _, kind, row in found if kind == TASK])
        return [self._task(row, today, made_by[row.pk]) if kind == TASK else self._entry(kind, row)
                for _, kind, row in found]

    @staticmethod
    def _reads() -> dict:
        """kind -> (model or queryset, time field, related rows read with it)."""
        return {
            NOTE: (Note, "created_at", ["author"]),
            ENGAGEMENT: (Engagement, "occurred_at", ["contact", "user"]),
            TASK: (Task, "created_at", ["assignee"]),
            STAGE: (JourneyHistory, "entered_at", ["stage", "from_stage", "moved_by"]),
            HEALTH: (HealthScore, "calculated_at", []),
            TICKET: (SupportTicket, "opened_at", []),
            SURVEY: (SurveyResponse, "responded_at", ["contact"]),
            GOAL: (Goal.objects.annotate(at=GOAL_MOMENT), "at", []),
        }

    def _entry(self, kind: str, row) -> Entry:
        if kind == NOTE:
            return Entry(row.created_at, NOTE, f"Note by {person(row.author)}" + (" (pinned)" if row.pinned else ""),
                         _short(row.body), url=admin_url("admin:accounts_note_change", row.pk))
        if kind == ENGAGEMENT:
            return self._engagement(row)
        if kind == STAGE:
            h = row
            return Entry(h.entered_at, STAGE, f"Moved to {h.stage.name}" +
                         (f" from {h.from_stage.name}" if h.from_stage_id else ""),
                         "; ".join(filter(None, [h.reason, f"by {person(h.moved_by)}" if h.moved_by_id else ""])),
                         url=admin_url("admin:accounts_journeyhistory_change", h.pk))
        if kind == HEALTH:
            return self._score(row)
        if kind == TICKET:
            t = row
            return Entry(t.opened_at, TICKET, f"Opened: {t.subject}",
                         f"{t.get_priority_display()} priority" + (f", CSAT {t.csat}" if t.csat else ""),
                         t.get_status_display(),
                         BAD if t.status in ("open", "pending") and t.priority in ("high", "urgent") else
                         WARN if t.status in ("open", "pending") else "",
                         admin_url("admin:accounts_supportticket_change", t.pk))
        if kind == SURVEY:
            r = row
            return Entry(r.responded_at, SURVEY, f"{r.kind.upper()} {r.score}" +
                         (f" from {r.contact.name}" if r.contact_id else ""), _short(r.comment),
                         tone=survey_tone(r.kind, r.score), url=admin_url("admin:accounts_surveyresponse_change", r.pk))
        return self._goal(row)

    @staticmethod
    def _goal(g: Goal) -> Entry:
        """A goal at its latest moment: achieved, missed, at risk, else set."""
        title, tone = GOAL_WORDS.get(g.status, ("Goal set", ""))
        detail = ", ".join(filter(None, [g.goal_type.replace("_", " "), f"target {g.target_date:%d %b %Y}"
                                         if g.target_date else "", f"set {g.created_at:%d %b %Y}"
                                         if g.status != Goal.Status.CREATED else "", _short(g.description, 200)]))
        return Entry(g.at, GOAL, f"{title}: {g.title}", detail, g.get_status_display(), tone,
                     admin_url("admin:accounts_goal_change", g.pk))

    @staticmethod
    def _engagement(e: Engagement) -> Entry:
        who = e.contact.name if e.contact_id else ""
        title = f"{e.get_kind_display()}" + (f" with {who}" if who else "") + (f" by {person(e.user)}" if e.user_id else "")
        tone = GOOD if e.outcome == "completed" else BAD if e.outcome in ("missed", "negative", "no_response") else ""
        return Entry(e.occurred_at, ENGAGEMENT, title, _short(e.summary), e.get_outcome_display(), tone,
                     admin_url("admin:accounts_engagement_change", e.pk))

    @staticmethod
    def _task(t: Task, today: datetime.date, made_by: TaskSource | None) -> Entry:
        open_ = t.status in Task.OPEN_STATUSES
        overdue = open_ and t.due_date is not None and t.due_date < today
        detail = ", ".join(filter(None, [f"for {person(t.assignee)}" if t.assignee_id else "unassigned",
                                         f"due {t.due_date:%d %b %Y}" if t.due_date else "",
                                         f"{t.get_priority_display().lower()} priority"]))
        # What made it, by name and linked (a rule, a SuccessPlay, a journey); an unnamed source as recorded.
        links = ((f"Made by {made_by}", made_by.url),) if made_by else ((f"Made by {t.source}", ""),) if t.source else ()
        return Entry(t.created_at, TASK, t.title, detail, "Overdue" if overdue else t.get_status_display(),
                     BAD if overdue else GOOD if t.status == Task.Status.DONE else "",
                     admin_url("admin:accounts_task_change", t.pk), links)

    @staticmethod
    def _score(s: HealthScore) -> Entry:
        change = ""
        if s.previous_score is not None:
            change = f"{s.overall_score - s.previous_score:+.1f} since the previous score ({s.previous_score})"
        if s.adjustment:
            change += f"; adjusted by {s.adjustment:+} ({s.adjustment_reason})"
        return Entry(s.calculated_at, HEALTH, f"Health score {s.overall_score}", change.strip("; "),
                     s.get_risk_level_display(), BAND_TONES.get(s.risk_level, ""),
                     admin_url("admin:accounts_healthscore_change", s.pk))

    def upcoming(self, account, *, now):
        today = timezone.localdate(now)
        items = []
        if account.renewal_date and account.renewal_date >= today:
            days = (account.renewal_date - today).days
            items.append(Upcoming(account.renewal_date, "Renewal", f"Renewal in {days} days",
                                  f"ARR {account.arr:,.0f}", admin_url("admin:accounts_account_change", account.pk)))
        for deal in (Opportunity.objects.for_tenant(account.tenant_id).filter(account=account, close_date__gte=today)
                     .exclude(stage__in=Opportunity.CLOSED_STAGES).order_by("close_date")[:3]):
            items.append(Upcoming(deal.close_date, deal.get_kind_display(), deal.name,
                                  f"{deal.get_stage_display()}, {deal.value:,.0f} {deal.currency}, {deal.probability} %",
                                  admin_url("admin:accounts_opportunity_change", deal.pk)))
        for task in (Task.objects.for_tenant(account.tenant_id).filter(account=account, status__in=Task.OPEN_STATUSES)
                     .exclude(due_date=None).select_related("assignee").order_by("due_date")[:5]):
            late = " (overdue)" if task.due_date < today else ""
            items.append(Upcoming(task.due_date, "Task due", task.title + late, f"for {person(task.assignee)}",
                                  admin_url("admin:accounts_task_change", task.pk)))
        return items


# --- actions --------------------------------------------------------------------------------------

class _DateInput(forms.DateInput):
    input_type = "date"


class _DateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%dT%H:%M")  # what a datetime-local input shows (the form's time zone)


def members_of(tenant_id):
    return get_user_model().objects.filter(memberships__tenant_id=tenant_id).order_by("first_name", "last_name", "email")


def contacts_of(account):
    return Contact.objects.for_tenant(account.tenant_id).filter(account=account).order_by("-is_primary", "name")


def offer_contacts(field: ModelChoice, account) -> None:
    """Offer the account's contacts (the primary one first) in ``field``, read once per page: the account object
    the page passes to every form keeps them."""
    field.queryset = contacts_of(account)
    if "_cockpit_contacts" not in account.__dict__:
        account.__dict__["_cockpit_contacts"] = list(field.queryset)
    field.rows = account.__dict__["_cockpit_contacts"]


class NoteForm(forms.Form):
    body = forms.CharField(label="Note", widget=forms.Textarea(attrs={"rows": 3}))
    pinned = forms.BooleanField(label="Pin it", required=False)


class EngagementForm(forms.Form):
    kind = forms.ChoiceField(label="Kind", choices=Engagement.Kind.choices)
    outcome = forms.ChoiceField(label="Outcome", choices=Engagement.Outcome.choices,
                                initial=Engagement.Outcome.COMPLETED)
    occurred_at = forms.DateTimeField(label="When", widget=_DateTimeInput, initial=timezone.now)
    contact = ModelChoice(label="Contact", queryset=None, required=False)
    summary = forms.CharField(label="Summary", widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(self, *args, account, **kwargs):
        super().__init__(*args, **kwargs)
        offer_contacts(self.fields["contact"], account)


class TaskForm(forms.Form):
    title = forms.CharField(label="Title", max_length=255)
    assignee = ModelChoice(label="Assigned to", queryset=None, required=False, labels=person)
    due_date = forms.DateField(label="Due", widget=_DateInput, required=False)
    priority = forms.ChoiceField(label="Priority", choices=Task.Priority.choices, initial=Task.Priority.MEDIUM)
    description = forms.CharField(label="Description", widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(self, *args, account, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = members_of(account.tenant_id)
        self.fields["assignee"].initial = user.pk  # a task made here is mine unless I say otherwise


class LogNote(Action):
    key, label, roles, order = "note", "Log a note", CONTRIBUTORS, 10

    def form(self, account, user, data=None):
        return NoteForm(data, prefix=self.key)

    def perform(self, form, account, user):
        services.note_create(account=account, author=user, **form.cleaned_data)
        return "Note logged."


class LogEngagement(Action):
    key, label, roles, order = "engagement", "Log an engagement", CONTRIBUTORS, 11

    def form(self, account, user, data=None):
        return EngagementForm(data, prefix=self.key, account=account)

    def perform(self, form, account, user):
        engagement = services.engagement_create(account=account, user=user, **form.cleaned_data)
        return f"{engagement.get_kind_display()} logged."


class CreateTask(Action):
    key, label, roles, order = "task", "Create a task", CONTRIBUTORS, 12

    def form(self, account, user, data=None):
        return TaskForm(data, prefix=self.key, account=account, user=user)

    def perform(self, form, account, user):
        task = services.task_create(account=account, created_by=user, **form.cleaned_data)
        return f"Task “{task.title}” created" + (f" for {person(task.assignee)}." if task.assignee_id else ".")


AccountsSource.actions = (LogNote(), LogEngagement(), CreateTask())
register(AccountsSource())
