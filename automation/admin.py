"""The automation admin a CSM works in: rules (workflows = event triggers), their runs and steps, events.

Everything is scoped by tenant and role through ``csplatform.admin_base`` (DESIGN.md "Roles"):
tenant admins write rules; practitioners may also test and run them ("Test now", "Run now for
account…", "Replay"); everyone else reads. Rules are saved only through
``automation.services.workflow_save``: the form asks the service first (inside a savepoint that is
always rolled back), so whatever the service refuses appears as an error on the form field it names
(``trigger_config.direction`` -> the trigger config box, ``actions[0].type`` -> the actions box),
and nothing is stored. Editing an active rule saves a draft, and rules a SuccessPlay keeps are read-only
(``admin_drafts``). Runs, steps and events are history: read-only.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.db.models import Count, ExpressionWrapper, F, FloatField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce, NullIf
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator
from rest_framework.exceptions import ValidationError as DRFValidationError

from accounts.models import Account
from csplatform.admin_base import ReadOnlyAdmin, ReadOnlyInline, TenantScopedAdmin, TenantScopedForm
from csplatform.admin_display import PrettyJSONField, json_display, refusal_text
from csplatform.permissions import ADMINS, MANAGERS
from csplatform.tenancy import tenant_context
from delivery.models import Outbox

from . import conditions, engine, managed, services
from .actions import actions as action_registry
from .admin_drafts import DraftAdminMixin, rule_page
from .api import running
from .conditions.tree import iter_leaves
from .models import Event, Run, RunStep, ScheduledSlot, Workflow
from .subjects import WATCHED, model_for
from .triggers import triggers

RECENT_DAYS = 7
JSON_FIELDS = ("trigger_config", "conditions", "actions", "rate_limiting", "retry_configuration")
JSON_OBJECT_FIELDS = ("trigger_config", "rate_limiting", "retry_configuration")
INBOUND_HOOK_PATH = "/api/hooks/{token}/"
FINISHED = (Run.Status.SUCCESS, Run.Status.FAILED, Run.Status.SKIPPED)


# --- readable summaries --------------------------------------------------------------------------

def _num(value) -> str:
    """40.0 -> "40", 2.5 -> "2.5"."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else f"{number:g}"


def _items(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def trigger_details(trigger_type: str, config: dict, model_type: str) -> list[str]:
    """The parts of a trigger's config a CSM needs to recognise the rule, in words."""
    c = config if isinstance(config, dict) else {}
    parts: list[str] = []
    if trigger_type == "health_score_change":
        direction, threshold = c.get("direction") or "decrease", c.get("threshold")
        if threshold is not None:
            parts.append({"decrease": f"below {_num(threshold)}", "increase": f"at or above {_num(threshold)}"}
                         .get(direction, f"crossing {_num(threshold)}"))
        parts.append(direction)
        if c.get("minimum_change"):
            parts.append(f"by at least {_num(c['minimum_change'])}")
        if c.get("time_window"):
            parts.append(f"within {c['time_window']}")
    elif trigger_type in ("model_created", "model_deleted", "account_created"):
        parts.append(model_type or "account")
    elif trigger_type in ("model_updated", "field_changed"):
        fields = c.get("fields") or ([c["field"]] if c.get("field") else [])
        parts.append(f"{model_type}.{'/'.join(map(str, fields))}" if fields else model_type)
        if "from" in c:
            parts.append(f"from {c['from']}")
        if "to" in c:
            parts.append(f"to {c['to']}")
    elif trigger_type in ("status_change", "stage_change"):
        kind = trigger_type.split("_")[0]
        for key in (f"from_{kind}", f"to_{kind}"):
            if c.get(key):
                parts.append(f"{key.split('_')[0]} {c[key]}")
        if c.get("include_new_accounts"):
            parts.append("new accounts too")
    elif trigger_type == "engagement_event":
        parts += [str(c[k]) for k in ("event_type",) if c.get(k)]
        if c.get("engagement_types"):
            parts.append(_items(c["engagement_types"]))
        if c.get("time_threshold"):
            parts.append(f"after {c['time_threshold']}")
    elif trigger_type == "goal_event":
        parts += [str(c[k]) for k in ("event",) if c.get(k)]
        if c.get("goal_types"):
            parts.append(_items(c["goal_types"]))
    elif trigger_type == "event":
        parts += [str(c[k]) for k in ("event_type",) if c.get(k)]
    elif trigger_type == "scheduled":
        parts.append(" ".join(str(c[k]) for k in ("schedule", "time", "timezone") if c.get(k)))
        if c.get("days_of_week"):
            parts.append(f"days {_items(c['days_of_week'])}")
    elif trigger_type == "time_based":
        parts += [p for p in (model_type, f"every {c['check_every']}" if c.get("check_every") else "") if p]
    elif trigger_type not in ("manual", "webhook"):
        # A trigger registered by another app: its simple settings, as they are.
        if model_type:
            parts.append(model_type)
        parts += [f"{k}={v}" for k, v in c.items() if isinstance(v, (str, int, float, bool)) and v not in ("", None)][:3]
    if c.get("debounce_seconds"):
        parts.append(f"debounce {_num(c['debounce_seconds'])} s")
    return [p for p in parts if p]


def condition_count(tree) -> int:
    if not tree:
        return 0
    try:
        return sum(1 for _ in iter_leaves(tree))
    except (KeyError, TypeError, AttributeError):  # not a normalised tree (never saved through the service)
        return len(tree) if isinstance(tree, list) else 1


def rule_summary(rule: Workflow) -> str:
    """ "health_score_change (below 40, decrease) → 1 condition → create_task, webhook"."""
    details = trigger_details(rule.trigger_type, rule.trigger_config, rule.model_type)
    trigger = f"{rule.trigger_type} ({', '.join(details)})" if details else rule.trigger_type
    count = condition_count(rule.conditions)
    when = "no conditions" if count == 0 else f"{count} condition{'s' if count != 1 else ''}"
    steps = rule.actions if isinstance(rule.actions, list) else []
    then = ", ".join(str(a.get("type")) if isinstance(a, dict) else str(a) for a in steps) or "no actions"
    return f"{trigger} → {when} → {then}"


def trace_table(trace):
    """The condition evaluation of a debug-mode run: which condition passed or failed, with the values seen."""
    if not trace:
        return "-"
    rows = []
    for entry in trace:
        if not isinstance(entry, dict):
            rows.append(("", "", "", json.dumps(entry, default=str), ""))
            continue
        passed = entry.get("passed")
        rows.append((
            "✔" if passed else "✘", entry.get("field", ""), entry.get("operator", ""),
            json.dumps(entry.get("expected"), ensure_ascii=False, default=str),
            json.dumps(entry.get("actual"), ensure_ascii=False, default=str),
        ))
    return format_html(
        "<table><thead><tr><th></th><th>Field</th><th>Operator</th><th>Expected</th><th>Actual</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                         rows),
    )


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def failed_conditions(trace) -> str:
    misses = [e for e in trace or [] if isinstance(e, dict) and not e.get("passed")]
    return "; ".join(
        f"{e.get('field')} {e.get('operator')} {json.dumps(e.get('expected'), default=str)} "
        f"(was {json.dumps(e.get('actual'), default=str)})"
        for e in misses[:5]
    )


# --- firing a rule by hand -----------------------------------------------------------------------
# The same helpers as the API's /test and /execute (``automation.api.running``), so a rule started
# from the admin runs exactly as one started from the API: same subject, same webhook event, same
# dry run (everything written, then rolled back with its on-commit work).

def _subject(rule: Workflow, account: Account | None):
    return running.resolve_subject(rule, tenant=rule.tenant, account=account, pick_first=True)


def _what(rule: Workflow, subject) -> str:
    if isinstance(subject, models.Model):  # a webhook rule's subject is the (empty) request body
        return f"'{rule}' on {subject._meta.verbose_name} '{subject}'"
    return f"'{rule}'"


def test_rule(rule: Workflow, account: Account | None) -> tuple[int, str]:
    """Dry run: fire ``rule`` now (not held back by status or limits) and roll everything back.
    Returns (message level, message)."""
    with tenant_context(rule.tenant):
        try:
            subject, account = _subject(rule, account)
            result = running.dry_run(rule, subject=subject, account=account, body=None, sample_event=None,
                                     context={})
        except DRFValidationError as exc:
            return messages.WARNING, f"'{rule}' cannot be tested: {refusal_text(exc)}"
        except Exception as exc:  # a bug in the engine or an action: say so, never a server error page
            return messages.ERROR, f"Test of '{rule}' crashed: {type(exc).__name__}: {exc}"
    what = _what(rule, subject)
    if result["status"] == Run.Status.SKIPPED:
        text = f"skipped ({Run.SkipReason(result['skip_reason']).label.lower()})"
        misses = failed_conditions(result["conditions"]["trace"])
        level, text = messages.WARNING, text + (f": {misses}" if misses else "")
    else:
        level = messages.SUCCESS if result["status"] == Run.Status.SUCCESS else messages.ERROR
        text = outcome_text(result["status"], [(a["type"], a["status"], a["error"], a["output"])
                                               for a in result["actions"]])
    if not result["live"]:
        text += " (the rule is not live: activate and enable it to let events fire it)"
    return level, f"Test of {what} (dry run, nothing was saved): {text}"


def run_rule(rule: Workflow, account: Account | None) -> tuple[int, str]:
    """Fire ``rule`` now for ``account``, for real (manual: status, cooldown and rate limit do not hold it)."""
    with tenant_context(rule.tenant):
        try:
            subject, account = _subject(rule, account)
            with transaction.atomic():
                run = running.execute(rule, subject=subject, account=account, body=None, context={})
                level, text = describe_run(run, rule, subject or account)
        except DRFValidationError as exc:
            return messages.WARNING, f"'{rule}' cannot be run: {refusal_text(exc)}"
        except Exception as exc:
            return messages.ERROR, f"Run of '{rule}' crashed: {type(exc).__name__}: {exc}"
    return level, f"Ran {_what(rule, subject)} as run {run.pk}: {text}"


def outcome_text(status: str, steps) -> str:
    parts = []
    for action_type, step_status, error, output in steps:
        detail = error or (json.dumps(output, default=str) if output else "")
        parts.append(f"{action_type}: {step_status}" + (f" ({Truncator(detail).chars(160)})" if detail else ""))
    return f"{status}" + (f" — {'; '.join(parts)}" if parts else " (no actions)")


def describe_run(run: Run, rule: Workflow, target) -> tuple[int, str]:
    """(message level, text) for a run just made by hand or by a replay."""
    if run.status == Run.Status.SKIPPED:
        text = f"skipped ({run.get_skip_reason_display().lower()})"
        if run.skip_reason == Run.SkipReason.CONDITIONS_NOT_MET and target is not None:
            trace = run.trace or []
            if not trace:  # recorded only in debug mode: evaluate once more for the message
                try:
                    conditions.evaluate(rule.conditions, target, trace=trace)
                except Exception:  # the run already said "not met"; the detail is a courtesy
                    trace = []
            misses = failed_conditions(trace)
            text += f": {misses}" if misses else ""
        return messages.WARNING, text
    if run.status == Run.Status.QUEUED:
        return messages.INFO, f"queued for {run.scheduled_for or 'later'}"
    steps = [(s.action_type, s.status, s.error, s.output) for s in run.steps.order_by("position")]
    level = messages.SUCCESS if run.status == Run.Status.SUCCESS else messages.ERROR
    return level, outcome_text(run.status, steps)


RUN_PAGE = rule_page("""
<p>{{ summary }}</p>
<p>Runs the rule now for the chosen account, whatever its status, cooldown or rate limit. A dry run
writes nothing: every change the actions make is rolled back and only the outcome is shown.</p>
<form method="post">{% csrf_token %}{{ form.as_p }}
<div class="submit-row"><input type="submit" class="default" value="Run"></div></form>
""")


class RunNowForm(forms.Form):
    account = forms.ModelChoiceField(queryset=Account.objects.none())
    dry_run = forms.BooleanField(required=False, initial=True, label="Dry run (write nothing)")

    def __init__(self, *args, rule: Workflow, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = Account.objects.for_tenant(rule.tenant_id).order_by("name")


# --- rules ---------------------------------------------------------------------------------------

class _RollBack(Exception):
    """Raised inside a savepoint to undo what it wrote."""


def _trigger_choices():
    return [(name, name) for name in triggers.keys()]


def _model_choices():
    return [("", "(the trigger's own: account, or none)")] + [(name, name) for name in sorted(WATCHED)]


class WorkflowAdminForm(TenantScopedForm):
    trigger_type = forms.ChoiceField(choices=_trigger_choices)
    model_type = forms.ChoiceField(choices=_model_choices, required=False,
                                   help_text="The model a model trigger (model_created, field_changed, …) watches.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        draft = getattr(self.instance, "draft", None)
        if draft is not None:
            # A rule with a draft pending is edited from its draft: saving continues it (and never
            # quietly drops what the draft already changed by starting again from the live values).
            self.initial.update({name: draft[name] for name in (*services.CONTENT_FIELDS, "scope_accounts")
                                 if name in draft and name in self.fields})
        current = getattr(self.instance, "trigger_type", "")
        if "trigger_type" in self.fields and current and current not in triggers:
            # A rule whose trigger is no longer registered: show it, so saving names the problem.
            self.fields["trigger_type"].choices = [*_trigger_choices(), (current, f"{current} (unknown)")]

    def clean(self):
        cleaned = super().clean()
        for name in JSON_FIELDS:
            if name in self.fields and name in cleaned and cleaned[name] is None:
                cleaned[name] = self._meta.model._meta.get_field(name).get_default()
        for name in JSON_OBJECT_FIELDS:
            if name in self.fields and not isinstance(cleaned.get(name, {}), dict):
                self.add_error(name, "must be a JSON object ({...})")
        return cleaned

    def rule_data(self) -> dict:
        """What the service gets: the form's values of the rule fields it knows (and the scope)."""
        names = (*services.RULE_FIELDS, "scope_accounts")
        return {name: self.cleaned_data[name] for name in names if name in self.fields and name in self.cleaned_data}

    def _post_clean(self):
        super()._post_clean()  # the instance now holds the form's values, tenant included
        if self._errors or self.model_admin is None or getattr(self.instance, "tenant_id", None) is None:
            return
        probe = copy.copy(self.instance)
        try:
            with transaction.atomic():
                services.workflow_save(rule=probe, data=self.rule_data())
                raise _RollBack  # only asking: the real save is the admin's save_model
        except _RollBack:
            pass
        except ValidationError as exc:
            self._add_service_errors(exc)

    def _add_service_errors(self, exc: ValidationError) -> None:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}
        for key, texts in errors.items():
            field = self._field_for(key)
            for text in texts:
                self.add_error(field, text if key in (None, field, "__all__") else f"{key}: {text}")

    def _field_for(self, key: str | None) -> str | None:
        """``trigger_config.direction`` -> trigger_config, ``actions[0].type`` -> actions; else non-field."""
        if not key or key == "__all__":
            return None
        if key == "trigger_config.model_type" and "model_type" in self.fields:
            return "model_type"
        head = re.split(r"[.\[]", key, maxsplit=1)[0]
        return head if head in self.fields else None


@admin.register(Workflow)
class WorkflowAdmin(DraftAdminMixin, TenantScopedAdmin):
    """Rules. Tenant admins write; practitioners may test and run them; everyone else reads. Rules kept by a
    SuccessPlay are read-only for everyone here."""

    form = WorkflowAdminForm
    write_roles = ADMINS
    run_roles = MANAGERS
    tenant_parent_field = None
    creator_field = "created_by"
    list_display = ("name", "status", "enabled", "version_label", "summary", "last_run_at", "runs_recent",
                    "success_rate")
    list_filter = ("status", "enabled", "trigger_type", "source")
    search_fields = ("name",)
    autocomplete_fields = ("scope_accounts",)
    formfield_overrides = {models.JSONField: {"form_class": PrettyJSONField}}
    actions = ("activate", "pause", "publish_drafts", "discard_drafts", "test_now", "run_now_for_account")
    readonly_fields = (
        "source", "summary", "inbound_webhook", "inbound_webhook_hidden", "last_run_at", "created_by", "created_at",
        "updated_at", "recent_runs", *(f"{name}_pretty" for name in JSON_FIELDS),
        "version_label", "draft_state", "draft_state_readonly", "managed_by_link",  # admin_drafts
    )

    def get_fieldsets(self, request, obj=None):
        editable = obj is None or self.has_change_permission(request, obj)

        def json_field(name):
            return name if editable else f"{name}_pretty"

        state = "draft_state" if editable else "draft_state_readonly"
        fieldsets = [
            (None, {"fields": ["name", "description", ("status", "enabled"),
                               *([] if obj is None else ["summary", state])]}),
            ("Trigger", {"fields": ["trigger_type", "model_type", json_field("trigger_config")],
                         "description": f"Known triggers: {', '.join(triggers.keys())}."}),
            ("Conditions", {"fields": [json_field("conditions")],
                            "description": 'A group {"all": [...]} / {"any": [...]} of {"field", "operator", '
                                           '"value"} conditions; empty means always.'}),
            ("Actions", {"fields": [json_field("actions"), "continue_on_error"],
                         "description": f'A list of {{"type", "config"}}, run in order. Known actions: '
                                        f'{", ".join(action_registry.keys())}.'}),
            ("Scope", {"fields": ["scope_all_accounts", "scope_accounts"]}),
            ("Limits and retries", {"fields": [
                "cooldown_minutes", json_field("rate_limiting"), "delay_minutes", "allow_retries",
                json_field("retry_configuration"), "failure_threshold", "debug_mode",
            ]}),
        ]
        if obj is not None and obj.trigger_type == "webhook":
            shown = "inbound_webhook" if self.has_change_permission(request, obj) else "inbound_webhook_hidden"
            fieldsets.append(("Inbound webhook", {"fields": [shown]}))
        if obj is not None:
            fieldsets.append(("Activity", {"fields": ["recent_runs", "last_run_at", "source", "created_by",
                                                      "created_at", "updated_at"]}))
        if obj is not None and managed.is_managed(obj):
            fieldsets.insert(0, ("Managed rule", {"fields": ["managed_by_link"]}))
        if self.needs_tenant_choice(request, obj):
            fieldsets.insert(0, (None, {"fields": ["tenant_choice"]}))
        return fieldsets

    # -- the list: summary and 7-day run statistics in the one list query --

    def get_queryset(self, request):
        since = timezone.now() - timedelta(days=RECENT_DAYS)
        recent = Run.objects.filter(workflow=OuterRef("pk"), created_at__gte=since).order_by().values("workflow")

        def count(**filters):
            runs = recent.filter(**filters).annotate(n=Count("pk")).values("n")[:1]
            return Coalesce(Subquery(runs, output_field=models.IntegerField()), Value(0))

        return super().get_queryset(request).annotate(
            runs_7d=count(),
            ok_7d=count(status=Run.Status.SUCCESS),
            done_7d=count(status__in=[Run.Status.SUCCESS, Run.Status.FAILED]),
        ).annotate(
            success_rate_7d=ExpressionWrapper(F("ok_7d") * 100.0 / NullIf(F("done_7d"), 0), output_field=FloatField()),
        )

    @admin.display(description="Trigger → conditions → actions")
    def summary(self, obj):
        return rule_summary(obj)

    @admin.display(description=f"Runs ({RECENT_DAYS} d)", ordering="runs_7d")
    def runs_recent(self, obj):
        count = getattr(obj, "runs_7d", None)
        if not count:
            return 0 if count == 0 else "-"
        return format_html('<a href="{}?workflow__id__exact={}">{}</a>',
                           reverse("admin:automation_run_changelist"), obj.pk, count)

    @admin.display(description=f"Success ({RECENT_DAYS} d)", ordering="success_rate_7d")
    def success_rate(self, obj):
        rate, done = getattr(obj, "success_rate_7d", None), getattr(obj, "done_7d", 0)
        if rate is None:
            return "-"
        return f"{rate:.0f} % ({getattr(obj, 'ok_7d', 0)}/{done})"

    @admin.display(description="Inbound URL")
    def inbound_webhook(self, obj):
        address = INBOUND_HOOK_PATH.format(token=obj.webhook_token)
        return format_html("<code>POST {}</code><br><small>The token is a secret: anyone who has this URL can "
                           "start the rule.</small>", address)

    @admin.display(description="Inbound URL")
    def inbound_webhook_hidden(self, obj):
        return "Hidden: only tenant admins see the webhook token."

    @admin.display(description="Recent runs")
    def recent_runs(self, obj):
        runs = list(Run.objects.filter(workflow=obj).select_related("account")[:10])
        if not runs:
            return "-"
        rows = [(reverse("admin:automation_run_change", args=[r.pk]), r.pk, r.created_at.strftime("%Y-%m-%d %H:%M"),
                 r.account or "-", r.status, r.get_skip_reason_display() if r.skip_reason else "") for r in runs]
        return format_html(
            '<table><tbody>{}</tbody></table><a href="{}?workflow__id__exact={}">All runs</a>',
            format_html_join("", '<tr><td><a href="{}">#{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
                             rows),
            reverse("admin:automation_run_changelist"), obj.pk,
        )

    trigger_config_pretty = json_display("trigger_config", "Trigger config")
    conditions_pretty = json_display("conditions", "Conditions")
    actions_pretty = json_display("actions", "Actions")
    rate_limiting_pretty = json_display("rate_limiting", "Rate limiting")
    retry_configuration_pretty = json_display("retry_configuration", "Retry configuration")

    # -- saving and deleting through the service --

    def save_model(self, request, obj, form, change):
        data = form.rule_data()
        if not change:
            data["source"] = "admin"
        had_draft = obj.draft is not None
        services.workflow_save(rule=obj, data=data, actor=request.user)
        if change:
            self.after_save(request, obj, had_draft)

    def save_related(self, request, form, formsets, change):
        # The service has set scope_accounts already; only inlines (none today) are left.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request, obj):
        self.refuse_managed([obj])
        services.workflow_delete(rule=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        rules = list(queryset)
        self.refuse_managed(rules)
        for rule in rules:
            services.workflow_delete(rule=rule, actor=request.user)

    # -- test and run --

    def has_run_permission(self, request, obj=None):
        return self.has_role(request, frozenset(self.run_roles), obj)

    def _allowed(self, request, queryset, check):
        """The rules ``check`` allows; the others are named in a message (kept rules with why, for writes)."""
        allowed, refused, kept = [], [], []
        writes = check.__name__ == "has_change_permission"
        for rule in queryset.select_related("tenant"):
            if writes and managed.is_managed(rule):
                kept.append(rule)
                continue
            (allowed if check(request, rule) else refused).append(rule)
        for rule in kept:
            self.message_user(request, f"'{rule}' was not changed: {managed.refusal(rule)}", messages.WARNING)
        if refused:
            self.message_user(request, f"Your role does not allow this for: {', '.join(map(str, refused))}.",
                              messages.WARNING)
        return allowed

    def _set_status(self, request, queryset, status):
        changed = []
        for rule in self._allowed(request, queryset, self.has_change_permission):
            try:
                services.workflow_save(rule=rule, data={"status": status})
            except ValidationError as exc:
                self.message_user(request, f"'{rule}' was not changed: {'; '.join(exc.messages)}", messages.ERROR)
                continue
            changed.append(rule)
        if changed:
            self.message_user(request, f"{Workflow.Status(status).label}: {', '.join(map(str, changed))}.",
                              messages.SUCCESS)
        off = [str(r) for r in changed if status == Workflow.Status.ACTIVE and not r.enabled]
        if off:
            self.message_user(request, f"Active but switched off (enabled is unticked), so not firing yet: "
                                       f"{', '.join(off)}.", messages.WARNING)

    @admin.action(description="Activate selected rules", permissions=["change"])
    def activate(self, request, queryset):
        self._set_status(request, queryset, Workflow.Status.ACTIVE)

    @admin.action(description="Pause selected rules", permissions=["change"])
    def pause(self, request, queryset):
        self._set_status(request, queryset, Workflow.Status.PAUSED)

    @admin.action(description="Test now (dry run on the tenant's first account, writes nothing)",
                  permissions=["run"])
    def test_now(self, request, queryset):
        for rule in self._allowed(request, queryset, self.has_run_permission):
            account = Account.objects.for_tenant(rule.tenant_id).order_by("name", "pk").first()
            level, text = test_rule(rule, account)
            self.message_user(request, text, level)

    @admin.action(description="Run now for account…", permissions=["run"])
    def run_now_for_account(self, request, queryset):
        rules = self._allowed(request, queryset, self.has_run_permission)
        if len(rules) != 1:
            if rules:
                self.message_user(request, "Choose one rule to run for an account.", messages.WARNING)
            return None
        return HttpResponseRedirect(reverse("admin:automation_workflow_run", args=[rules[0].pk]))

    def get_urls(self):
        run = path("<path:object_id>/run/", self.admin_site.admin_view(self.run_view), name="automation_workflow_run")
        return [run, *self.draft_urls(), *super().get_urls()]

    def run_view(self, request, object_id):
        rule = self.get_object(request, object_id)
        if rule is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_run_permission(request, rule):
            raise PermissionDenied
        form = RunNowForm(request.POST or None, rule=rule)
        if request.method == "POST" and form.is_valid():
            run = test_rule if form.cleaned_data["dry_run"] else run_rule
            level, text = run(rule, form.cleaned_data["account"])
            self.message_user(request, text, level)
            return HttpResponseRedirect(reverse("admin:automation_workflow_change", args=[rule.pk]))
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "rule": rule, "form": form,
            "title": f"Run '{rule}' now", "summary": rule_summary(rule),
        }
        return TemplateResponse(request, RUN_PAGE, context)


# --- runs ----------------------------------------------------------------------------------------

class RunStepInline(ReadOnlyInline):
    model = RunStep
    fields = ("position", "action_type", "status", "attempts", "error", "duration_ms", "output_pretty")
    readonly_fields = fields
    ordering = ("position",)

    output_pretty = json_display("output", "Output")


class SkipReasonFilter(admin.SimpleListFilter):
    title = "skip reason"
    parameter_name = "skip_reason"

    def lookups(self, request, model_admin):
        return [("none", "Not skipped"), *Run.SkipReason.choices]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(skip_reason="")
        if self.value():
            return queryset.filter(skip_reason=self.value())
        return queryset


@admin.register(Run)
class RunAdmin(TenantScopedAdmin):
    """Run history: read-only; tenant admins may delete runs, practitioners may replay them."""

    write_roles = frozenset()
    delete_roles = ADMINS
    run_roles = MANAGERS
    tenant_parent_field = None
    deleted_with_parent = True
    list_display = ("number", "workflow", "account", "status", "skip_reason", "depth", "attempt", "manual",
                    "created_at", "duration")
    list_display_links = ("number",)
    list_select_related = ("workflow", "account")
    list_filter = ("status", SkipReasonFilter, ("workflow", admin.RelatedOnlyFieldListFilter), "manual", "created_at")
    search_fields = ("workflow__name", "account__name", "subject_id")
    date_hierarchy = "created_at"
    inlines = (RunStepInline,)
    actions = ("replay",)
    fieldsets = (
        (None, {"fields": ("workflow", "workflow_version", "status", "skip_reason", "error", "account", "subject",
                           "event", "depth", "manual")}),
        ("Timing", {"fields": ("created_at", "scheduled_for", "started_at", "finished_at", "duration")}),
        ("Retries", {"fields": ("attempt", "retry_of", "start_position")}),
        ("Detail", {"fields": ("trigger_data_pretty", "result_pretty", "trace_table")}),
    )
    readonly_fields = ("workflow", "workflow_version", "status", "skip_reason", "error", "account", "subject", "event",
                       "depth", "manual",
                       "created_at", "scheduled_for", "started_at", "finished_at", "duration", "attempt", "retry_of",
                       "start_position", "trigger_data_pretty", "result_pretty", "trace_table", "outbox_messages")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_run_permission(self, request, obj=None):
        return self.has_role(request, frozenset(self.run_roles), obj)

    def get_fieldsets(self, request, obj=None):
        # The messages section only on runs whose steps wrote messages (most runs write none).
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and Outbox.objects.for_tenant(obj.tenant_id).filter(run_id=obj.pk).exists():
            fieldsets = (*fieldsets, ("Outbox messages (delivery of each step)", {"fields": ("outbox_messages",)}))
        return fieldsets

    @admin.display(description="Messages")
    def outbox_messages(self, obj):
        """What the run's steps wrote and how delivery went (delivery keeps plain run/step ids)."""
        steps = {step.pk: f"{step.position}: {step.action_type}" for step in obj.steps.all()}
        rows = [(reverse("admin:delivery_outbox_change", args=[m.pk]), steps.get(m.run_step_id, "-"), m.channel,
                 Truncator(m.target).chars(60), m.status, m.attempts, m.last_status_code or "-", m.error or "-",
                 m.next_attempt_at, m.delivered_at or "-")
                for m in Outbox.objects.for_tenant(obj.tenant_id).filter(run_id=obj.pk).order_by("run_step_id", "id")]
        return format_html(
            "<table><thead><tr><th>Step</th><th>Channel</th><th>Target</th><th>Status</th><th>Attempts</th>"
            "<th>Last code</th><th>Error</th><th>Next attempt</th><th>Delivered</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join("", '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>'
                                 "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows))

    @admin.display(description="Run", ordering="pk")
    def number(self, obj):
        return f"#{obj.pk}"

    @admin.display(description="Duration")
    def duration(self, obj):
        start = obj.started_at or obj.created_at
        if obj.finished_at is None or start is None:
            return "-"
        return duration_text(max((obj.finished_at - start).total_seconds(), 0))

    @admin.display(description="Subject")
    def subject(self, obj):
        return f"{obj.subject_model} {obj.subject_id}".strip() or "-"

    trigger_data_pretty = json_display("trigger_data", "Trigger data")
    result_pretty = json_display("result", "Result")

    @admin.display(description="Condition trace")
    def trace_table(self, obj):
        if not obj.trace:
            return "Not recorded (turn on the rule's debug mode to record which condition passed or failed)."
        return trace_table(obj.trace)

    @admin.action(description="Replay (fire the rule again for the same event and account)", permissions=["run"])
    def replay(self, request, queryset):
        for run in queryset.select_related("workflow__tenant", "event", "account"):
            if not self.has_run_permission(request, run):
                self.message_user(request, f"Run {run.pk}: your role does not allow replaying it.", messages.WARNING)
                continue
            if run.status not in FINISHED:
                self.message_user(request, f"Run {run.pk} is still {run.status}; only finished runs are replayed.",
                                  messages.WARNING)
                continue
            level, text = replay_run(run)
            self.message_user(request, text, level)


def replay_run(run: Run) -> tuple[str, str]:
    rule = run.workflow
    subject = None
    if run.event is None and run.subject_model and run.subject_id:
        try:
            subject = model_for(run.subject_model).objects.for_tenant(run.tenant_id).filter(pk=run.subject_id).first()
        except (LookupError, ValueError):
            subject = None
    with tenant_context(rule.tenant):
        try:
            with transaction.atomic():
                new = engine.fire(rule, event=run.event, subject=subject, account=run.account, manual=True)
        except Exception as exc:
            return messages.ERROR, f"Replay of run {run.pk} crashed: {type(exc).__name__}: {exc}"
        level, text = describe_run(new, rule, subject or run.account)
    return level, f"Replayed run {run.pk} of '{rule}' as run {new.pk}: {text}"


# --- events and schedule slots -------------------------------------------------------------------

class ProcessedFilter(admin.SimpleListFilter):
    title = "processed"
    parameter_name = "processed"

    def lookups(self, request, model_admin):
        return [("yes", "Processed"), ("no", "Pending"), ("failed", "Failed (set aside)")]

    def queryset(self, request, queryset):
        if self.value() == "failed":
            return queryset.filter(failed_at__isnull=False)
        if self.value() in ("yes", "no"):
            return queryset.filter(processed_at__isnull=self.value() == "no", failed_at__isnull=True)
        return queryset


class HistoryAdmin(ReadOnlyAdmin):
    """Read-only history written by the engine."""

    write_roles = frozenset()
    tenant_parent_field = None
    deleted_with_parent = True


@admin.register(Event)
class EventAdmin(HistoryAdmin):
    list_display = ("type", "model", "object_id", "account", "depth", "created_at", "processed_at", "attempts",
                    "failed_at")
    list_select_related = ("account",)
    list_filter = (ProcessedFilter, "type", "model", "created_at")
    search_fields = ("type", "object_id", "account__name")
    date_hierarchy = "created_at"
    fields = ("type", "model", "object_id", "account", "depth", "created_at", "processed_at", "attempts",
              "failed_at", "last_error", "changes_pretty", "payload_pretty")
    readonly_fields = fields
    actions = ["process_again"]
    retry_roles = MANAGERS

    def has_retry_permission(self, request, obj=None):
        return self.has_role(request, frozenset(self.retry_roles), obj)

    @admin.action(description="Process again (failed events: fresh attempts, handed to a worker)",
                  permissions=["retry"])
    def process_again(self, request, queryset):
        from .engine import event_retry

        allowed = [e for e in queryset.filter(failed_at__isnull=False) if self.has_retry_permission(request, e)]
        for event in allowed:
            event_retry(event)
        self.message_user(request, f"Handed {len(allowed)} failed event(s) to a worker again; events that had "
                                   f"not failed were left as they were.", messages.SUCCESS)

    changes_pretty = json_display("changes", "Changes")
    payload_pretty = json_display("payload", "Payload")


@admin.register(ScheduledSlot)
class ScheduledSlotAdmin(HistoryAdmin):
    list_display = ("workflow", "slot", "runs", "created_at")
    list_select_related = ("workflow",)
    list_filter = (("workflow", admin.RelatedOnlyFieldListFilter), "slot")
    date_hierarchy = "slot"
    fields = ("workflow", "slot", "runs", "created_at")
    readonly_fields = fields
