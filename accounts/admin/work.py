"""Tasks and notes."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.utils.html import format_html
from django.utils.text import Truncator

from csplatform.admin_base import TenantScopedAdmin
from csplatform.permissions import CONTRIBUTORS

from ..models import Note, Task
from ..task_sources import task_source_describe, task_sources_describe

# --- work ----------------------------------------------------------------------------------------

_UNKNOWN = object()


class TaskChangeList(ChangeList):
    """Names what made the tasks of the page at once (one query per kind of source, not per task)."""

    def get_results(self, request):
        super().get_results(request)
        described = task_sources_describe(self.result_list)
        for task in self.result_list:
            task._made_by = described[task.pk]


@admin.register(Task)
class TaskAdmin(TenantScopedAdmin):
    add_roles = CONTRIBUTORS
    creator_field = "created_by"
    list_display = ("title", "account", "assignee", "due_date", "priority", "status", "made_by")
    list_select_related = ("account", "assignee")
    list_filter = ("status", "priority", "due_date")
    search_fields = ("title", "account__name")
    autocomplete_fields = ("account",)
    exclude = ("source",)  # written by what made the task; shown, with a link, as "Made by"
    readonly_fields = ("made_by",)

    def get_changelist(self, request, **kwargs):
        return TaskChangeList

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        return fields if obj is not None else [f for f in fields if f != "made_by"]  # nothing made a new one

    @admin.display(description="Made by", ordering="source")
    def made_by(self, obj):
        """The rule, SuccessPlay or journey that made the task, linked; other sources as recorded."""
        if not obj.source:
            return "-"
        source = getattr(obj, "_made_by", _UNKNOWN)
        if source is _UNKNOWN:
            source = task_source_describe(obj)
        if source is None:
            return obj.source
        if not source.url:
            return str(source)
        return format_html('<a href="{}">{}</a>', source.url, str(source))


@admin.register(Note)
class NoteAdmin(TenantScopedAdmin):
    add_roles = CONTRIBUTORS
    creator_field = "author"
    list_display = ("short_body", "account", "author", "pinned", "created_at")
    list_select_related = ("account", "author")
    list_filter = ("pinned", "created_at")
    search_fields = ("body", "account__name")
    autocomplete_fields = ("account",)

    @admin.display(description="Note")
    def short_body(self, obj):
        return Truncator(obj.body).chars(80)
