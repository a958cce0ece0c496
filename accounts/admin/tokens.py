"""API tokens in the admin: superusers see every user's, other staff their own. Nobody adds or edits one here
(a new key must be shown once: the login, ``issue_api_token``) and the digest is never shown; the "Revoke"
action stops a token at once."""

from __future__ import annotations

from django.apps import apps
from django.contrib import admin, messages
from django.utils import timezone

from .. import tokens
from ..models import ApiToken

if apps.is_installed("rest_framework.authtoken"):
    # DRF's own token admin would create plain-text keys that nothing accepts any more.
    from rest_framework.authtoken.models import TokenProxy

    if admin.site.is_registered(TokenProxy):
        admin.site.unregister(TokenProxy)


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return ApiToken.State.choices

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == ApiToken.State.REVOKED:
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == ApiToken.State.EXPIRED:
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        if self.value() == ApiToken.State.ACTIVE:
            return queryset.filter(revoked_at__isnull=True).exclude(expires_at__lte=now)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("key_prefix", "user", "name", "state", "created_at", "expires_at", "last_used_at", "revoked_at")
    list_filter = (StateFilter,)
    list_select_related = ("user",)
    search_fields = ("prefix", "name", "user__email")
    fields = ("key_prefix", "user", "name", "state", "created_at", "expires_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset if request.user.is_superuser else queryset.filter(user=request.user)

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request) and (
            obj is None or request.user.is_superuser or obj.user_id == request.user.pk)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Key", ordering="prefix")
    def key_prefix(self, obj):
        return f"{obj.prefix}…"

    @admin.action(description="Revoke the selected API tokens")
    def revoke(self, request, queryset):
        revoked = sum(tokens.api_token_revoke(token=token) for token in queryset)
        self.message_user(request, f"{revoked} API token(s) revoked.", messages.SUCCESS)
