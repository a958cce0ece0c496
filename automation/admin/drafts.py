"""The Workflow admin's drafts and kept rules (mixed into ``rules.WorkflowAdmin``).

* Editing an active rule saves a draft (``services.workflow_save`` decides): the change form then shows
  the draft's values, a message says the live version keeps running, and "Publish draft" / "Discard draft"
  (a button on the change page, and list actions) apply or drop it.
* A rule another app keeps (``automation.managed``, a SuccessPlay's rule) is read-only here and cannot be
  deleted: its page says where to change it. Its owner saves it through the service, never through this.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from .. import managed, services
from ..definitions import DEFINITION_KEYS, apply_definition, definition_of
from .display import rule_summary

CONFIRM_PAGE = "admin/automation/workflow_draft_confirm.html"


def draft_summary(rule) -> str:
    """What the draft changes, then the rule as the draft would make it: "changes name, actions: manual → ..."."""
    live = definition_of(rule)
    changed = [name for name in DEFINITION_KEYS if rule.draft.get(name, live[name]) != live[name]]
    view = apply_definition(rule, rule.draft)
    named = f"'{view.name}' " if "name" in changed else ""
    return f"changes {', '.join(changed) or 'nothing'}: {named}{rule_summary(view)}"


class DraftAdminMixin:
    """Mixed into ``rules.WorkflowAdmin`` (uses its ``_allowed`` and the ModelAdmin API)."""

    # -- kept rules: read-only, never deleted here --

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and not (obj is not None and managed.is_managed(obj))

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not (obj is not None and managed.is_managed(obj))

    def refuse_managed(self, rules) -> None:
        """Deleting: Django's confirmation page already refuses kept rules (has_delete_permission); a crafted
        POST must not get further."""
        kept = [rule for rule in rules if managed.is_managed(rule)]
        if kept:
            raise PermissionDenied(managed.refusal(kept[0]))

    @admin.display(description="Managed by")
    def managed_by_link(self, obj):
        owner, found = managed.owner_of(obj), managed.managed_by(obj)
        if owner is None:
            return "-"
        try:
            link = reverse(owner.admin_url_name, args=[found["id"]]) if found["id"] is not None else ""
        except NoReverseMatch:
            link = ""
        what = f"{found['type']} '{found['name']}'" if found["name"] else f"its {found['type']}"
        text = (f"This rule is compiled from {what} and saved again whenever it changes: edit or delete it there "
                f"(API: {found['endpoint']}).")
        return format_html('{} <a href="{}">Open it</a>', text, link) if link else text

    # -- versions and drafts --

    @admin.display(description="Version", ordering="version")
    def version_label(self, obj):
        return f"{obj.version} + draft" if obj.draft is not None else str(obj.version)

    def _draft_text(self, obj) -> str:
        if obj.draft is None:
            return f"Version {obj.version} is live; no draft pending."
        by = f" by {obj.draft_by.email}" if obj.draft_by_id else ""
        when = timezone.localtime(obj.draft_updated_at).strftime("%Y-%m-%d %H:%M") if obj.draft_updated_at else "?"
        return f"Version {obj.version} keeps running. Draft saved {when}{by}, {draft_summary(obj)}."

    @admin.display(description="Live version and draft")
    def draft_state(self, obj):
        """With the buttons: shown to those who may change the rule (``get_fieldsets`` picks)."""
        if obj.draft is None:
            return self._draft_text(obj)
        return format_html('{} <a class="button" href="{}">Publish draft</a> <a class="button" href="{}">Discard '
                           'draft</a>', self._draft_text(obj),
                           reverse("admin:automation_workflow_publish", args=[obj.pk]),
                           reverse("admin:automation_workflow_discard_draft", args=[obj.pk]))

    @admin.display(description="Live version and draft")
    def draft_state_readonly(self, obj):
        return self._draft_text(obj)

    def after_save(self, request, obj, had_draft: bool) -> None:
        """Tell the CSM that the edit went to a draft (save_model's service call decided)."""
        if obj.draft is not None:
            live = "is active" if obj.status == obj.Status.ACTIVE else "has a draft pending"
            self.message_user(request, f"'{obj}' {live}, so your changes were saved as its draft: version "
                                       f"{obj.version} keeps running until you publish it. The draft "
                                       f"{draft_summary(obj)}.", messages.WARNING)
        elif had_draft:
            self.message_user(request, f"'{obj}' no longer differs from its live version: the draft was dropped.",
                              messages.INFO)

    @admin.action(description="Publish draft of selected rules", permissions=["change"])
    def publish_drafts(self, request, queryset):
        self._each_draft(request, queryset, services.workflow_publish, "Published")

    @admin.action(description="Discard draft of selected rules", permissions=["change"])
    def discard_drafts(self, request, queryset):
        self._each_draft(request, queryset, services.workflow_discard_draft, "Draft discarded")

    def _each_draft(self, request, queryset, service, done_text: str) -> None:
        done = []
        for rule in self._allowed(request, queryset, self.has_change_permission):
            if rule.draft is None:
                self.message_user(request, f"'{rule}' has no draft.", messages.INFO)
                continue
            try:
                rule = service(rule=rule, actor=request.user)
            except ValidationError as exc:
                self.message_user(request, f"'{rule}' was not published: {'; '.join(exc.messages)}", messages.ERROR)
                continue
            done.append(f"{rule} (version {rule.version})")
        if done:
            self.message_user(request, f"{done_text}: {', '.join(done)}.", messages.SUCCESS)

    def draft_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/publish/", wrap(self.publish_view), name="automation_workflow_publish"),
            path("<path:object_id>/discard-draft/", wrap(self.discard_view), name="automation_workflow_discard_draft"),
        ]

    def publish_view(self, request, object_id):
        return self._draft_view(request, object_id, services.workflow_publish, "Publish draft",
                                "Publishing makes the draft the live definition as the next version; new runs use it.")

    def discard_view(self, request, object_id):
        return self._draft_view(request, object_id, services.workflow_discard_draft, "Discard draft",
                                "Discarding drops the draft; the live version is not changed.")

    def _draft_view(self, request, object_id, service, title: str, explanation: str):
        rule = self.get_object(request, object_id)
        if rule is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, rule):
            raise PermissionDenied
        change_page = reverse("admin:automation_workflow_change", args=[rule.pk])
        if rule.draft is None:
            self.message_user(request, f"'{rule}' has no draft.", messages.INFO)
            return HttpResponseRedirect(change_page)
        if request.method == "POST":
            try:
                rule = service(rule=rule, actor=request.user)
            except ValidationError as exc:
                self.message_user(request, f"'{rule}' was not published: {'; '.join(exc.messages)}", messages.ERROR)
            else:
                self.message_user(request, f"{title}: '{rule}' runs version {rule.version}.", messages.SUCCESS)
            return HttpResponseRedirect(change_page)
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "rule": rule, "title": title,
            "live": rule_summary(rule), "draft": draft_summary(rule),
            "explanation": explanation,
        }
        return TemplateResponse(request, CONFIRM_PAGE, context)
