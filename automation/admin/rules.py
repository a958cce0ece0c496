"""Rules (workflows = event triggers) in the admin: the form, the list, saving, test and run.

Tenant admins write rules; practitioners may also test and run them ("Test now", "Run now for account…");
everyone else reads. The trigger config, conditions and actions are edited with inputs made from the
registries' schemas (``editors``; the JSON itself under "Advanced"), durations as an amount and a unit. Rules
are saved only through ``automation.services.workflow_save``: the form asks the service first (inside a
savepoint that is always rolled back), so whatever the service refuses appears as an error on the form field it
names and next to the input (``trigger_config.direction`` -> the trigger's direction, ``actions[0].config.title``
-> the first action's title), and nothing is stored. Editing an active rule saves a draft, and rules a
SuccessPlay keeps are read-only (``drafts``).
"""

from __future__ import annotations

import copy

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from accounts.models import Account
from csplatform.admin_base import TenantScopedAdmin, TenantScopedForm
from csplatform.admin_display import PrettyJSONField, json_display
from csplatform.permissions import ADMINS, MANAGERS

from .. import managed, services
from ..actions import actions as action_registry
from ..models import Run, Workflow
from ..selectors import with_recent_run_figures
from ..subjects import WATCHED
from ..triggers import triggers
from .display import rule_summary
from .drafts import DraftAdminMixin
from .editors import EditorsFormMixin, minutes_field, trigger_choices
from .firing import run_rule, test_rule

RECENT_DAYS = 7
JSON_FIELDS = ("trigger_config", "conditions", "actions", "rate_limiting", "retry_configuration")
JSON_OBJECT_FIELDS = ("trigger_config", "rate_limiting", "retry_configuration")
INBOUND_HOOK_PATH = "/api/hooks/{token}/"
RUN_PAGE = "admin/automation/workflow_run.html"
DURATION_FIELDS = {"cooldown_minutes": "Cooldown", "delay_minutes": "Delay after the event"}


class RunNowForm(forms.Form):
    account = forms.ModelChoiceField(queryset=Account.objects.none())
    dry_run = forms.BooleanField(required=False, initial=True, label="Dry run (write nothing)")

    def __init__(self, *args, rule: Workflow, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = Account.objects.for_tenant(rule.tenant_id).order_by("name")


# --- rules ---------------------------------------------------------------------------------------

class _RollBack(Exception):
    """Raised inside a savepoint to undo what it wrote."""


def _model_choices():
    return [("", "(the trigger's own: account, or none)")] + [(name, name) for name in sorted(WATCHED)]


class WorkflowAdminForm(EditorsFormMixin, TenantScopedForm):
    trigger_type = forms.ChoiceField(choices=trigger_choices)
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
            self.fields["trigger_type"].choices = [*trigger_choices(), (current, f"{current} (unknown)")]
        for name in DURATION_FIELDS:
            if name in self.fields:
                old = self.fields[name]
                self.fields[name] = minutes_field(required=old.required, initial=old.initial, help_text=old.help_text,
                                                  label=DURATION_FIELDS[name])
        self.use_editors("trigger_config", "conditions", "actions", "rate_limiting", "retry_configuration")

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
        """``trigger_config.direction`` -> on trigger_config and next to its direction input; unknown -> the form's."""
        errors = exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}
        for key, texts in errors.items():
            for text in texts:
                field = self.show_error(key, text)
                self.add_error(field, text if key in (None, field, "__all__") else f"{key}: {text}")


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
                         "description": "The trigger type's settings appear under it (its JSON under Advanced)."}),
            ("Conditions", {"fields": [json_field("conditions")],
                            "description": "Conditions on the rule's record (industry equals Software, arr gte "
                                           "10000, ...); none means always. Nested groups: edit the JSON."}),
            ("Actions", {"fields": [json_field("actions"), "continue_on_error"],
                         "description": f"Run in order. Known actions: {', '.join(action_registry.keys())}."}),
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
        return with_recent_run_figures(super().get_queryset(request), days=RECENT_DAYS)

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
