"""Tasks and notes."""

from __future__ import annotations

from django.contrib import admin
from django.utils.text import Truncator

from csplatform.admin_base import TenantScopedAdmin
from csplatform.permissions import CONTRIBUTORS

from ..models import Note, Task

# --- work ----------------------------------------------------------------------------------------

@admin.register(Task)
class TaskAdmin(TenantScopedAdmin):
    add_roles = CONTRIBUTORS
    creator_field = "created_by"
    list_display = ("title", "account", "assignee", "due_date", "priority", "status", "source")
    list_select_related = ("account", "assignee")
    list_filter = ("status", "priority", "due_date")
    search_fields = ("title", "account__name")
    autocomplete_fields = ("account",)


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
