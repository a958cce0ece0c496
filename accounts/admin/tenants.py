"""Tenants, memberships (roles) and the audit trail."""

from __future__ import annotations

import copy

from django import forms
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.utils.text import capfirst

from csplatform.admin_base import ReadOnlyAdmin, TenantScopedAdmin, TenantScopedForm, adopt
from csplatform.admin_display import changes_table
from csplatform.permissions import ADMINS

from .. import services
from ..models import AuditLog, Membership, Tenant

# --- tenants and memberships ---------------------------------------------------------------------

def _number(value) -> str:
    """35.00 as "35", 12.50 as "12.5"."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


class TenantAdminForm(TenantScopedForm):
    def clean(self):
        cleaned = super().clean()
        candidate = copy.copy(self.instance)
        for name, value in cleaned.items():
            setattr(candidate, name, value)
        try:
            services.tenant_validate_health_settings(candidate)
        except ValidationError as exc:
            self.add_error(None, exc)
        return cleaned


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    """Superusers manage tenants; a tenant admin sees only their own tenant and changes only its
    health score weights and risk bands."""

    form = TenantAdminForm
    read_roles = write_roles = ADMINS
    add_roles = delete_roles = frozenset()  # superusers only
    tenant_parent_field = None
    list_display = ("name", "slug", "timezone", "weights", "risk_bands")
    search_fields = ("name", "slug")
    field_labels = {
        "weight_usage": "Usage", "weight_engagement": "Engagement", "weight_support": "Support sentiment",
        "weight_adoption": "Adoption", "band_healthy": "Healthy from", "band_moderate": "Moderate from",
        "band_at_risk": "At risk from",
    }
    fieldsets = (
        (None, {"fields": ("name", "slug", "timezone")}),
        ("Health score weights (%)", {
            "fields": ("weight_usage", "weight_engagement", "weight_support", "weight_adoption"),
            "description": "Relative weights; components missing from a score are left out and the rest scaled up.",
        }),
        ("Risk bands (lower bounds)", {"fields": ("band_healthy", "band_moderate", "band_at_risk")}),
    )

    def tenant_id_of(self, obj):
        return obj.pk

    def get_readonly_fields(self, request, obj=None):
        return () if request.user.is_superuser else ("name", "slug", "timezone")

    @admin.display(description="Weights: usage / engagement / support / adoption (%)")
    def weights(self, obj):
        return " / ".join(_number(w) for w in (obj.weight_usage, obj.weight_engagement, obj.weight_support,
                                               obj.weight_adoption))

    @admin.display(description="Risk bands: healthy / moderate / at risk from")
    def risk_bands(self, obj):
        return " / ".join(_number(b) for b in (obj.band_healthy, obj.band_moderate, obj.band_at_risk))

    def save_model(self, request, obj, form, change):
        if change:
            # validates, saves and records the change in the audit trail
            services.tenant_update_settings(tenant=obj, actor=request.user)
            return
        # the service creates it with the default journey stages and records it in the audit trail
        settings = {f: getattr(obj, f) for f in services.TENANT_SETTINGS_FIELDS if f not in ("slug", "name")}
        adopt(obj, services.tenant_create(slug=obj.slug, name=obj.name, settings=settings, actor=request.user))


class MembershipAddForm(TenantScopedForm):
    """Grant a role by email: an unknown email becomes a new user (password optional); an existing
    user keeps their name and password, which a tenant admin must not change."""

    email = forms.EmailField()
    first_name = forms.CharField(required=False, help_text="Only used for a new user.")
    last_name = forms.CharField(required=False, help_text="Only used for a new user.")
    password = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput,
        help_text="Only used for a new user; leave blank to have them set one through a password reset.",
    )

    class Meta:
        model = Membership
        fields = ("tenant", "role")

    def clean_password(self):
        password = self.cleaned_data.get("password")
        if password:
            password_validation.validate_password(password)
        return password


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    read_roles = write_roles = ADMINS
    tenant_parent_field = None
    list_display = ("user_email", "user_name", "tenant", "role", "created_at")
    list_filter = ("role", ("tenant", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("user", "tenant")
    search_fields = ("user__email", "user__first_name", "user__last_name")

    def get_base_form(self, request, obj=None):
        return MembershipAddForm if obj is None else self.form

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["tenant", "email", "first_name", "last_name", "password", "role"]
        return ["user", "tenant", "role", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("user", "tenant", "created_at")

    @admin.display(description="Email", ordering="user__email")
    def user_email(self, obj):
        return obj.user.email

    @admin.display(description="Name")
    def user_name(self, obj):
        return obj.user.get_full_name()

    # Every grant, role change and revocation goes through the services, which write the audit trail.
    def save_model(self, request, obj, form, change):
        if change:
            services.membership_set_role(membership=obj, role=obj.role, actor=request.user)
            return
        data = form.cleaned_data
        new_user = not get_user_model().objects.filter(email__iexact=data["email"]).exists()
        membership = services.membership_grant(
            tenant=obj.tenant, email=data["email"], role=obj.role,
            password=(data["password"] or None) if new_user else None,
            first_name=data["first_name"] if new_user else "", last_name=data["last_name"] if new_user else "",
            actor=request.user,
        )
        adopt(obj, membership)

    def delete_model(self, request, obj):
        services.membership_revoke(membership=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("user", "tenant"):
            services.membership_revoke(membership=membership, actor=request.user)


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    """The audit trail: tenant admins read it; nobody adds, changes or deletes entries."""

    read_roles = ADMINS
    write_roles = add_roles = delete_roles = frozenset()
    tenant_parent_field = None
    list_display = ("created_at", "who", "action", "object_kind", "object_name", "changed_fields")
    list_filter = ("action", "object_type", "created_at")
    search_fields = ("object_repr", "object_id", "actor_email")
    date_hierarchy = "created_at"
    fields = ("created_at", "who", "action", "object_kind", "object_name", "object_type", "object_ref",
              "changes_table")
    readonly_fields = fields
    DONE = {"create": "Created", "update": "Changed", "delete": "Deleted"}

    def change_view(self, request, object_id, form_url="", extra_context=None):
        entry = self.get_object(request, unquote(object_id))
        if entry is not None:  # "Changed rule “At risk” by alice@…", not "update automation.workflow At risk"
            done = self.DONE.get(entry.action, entry.get_action_display())
            name = entry.object_repr or entry.object_id
            subtitle = f"{done} {self.object_kind(entry).lower()} “{name}” by {self.who(entry)}"
            extra_context = {"subtitle": subtitle, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")

    def lookup_allowed(self, lookup, value, request=None):
        # One object's entries (the "all entries" link of an object's history page).
        return lookup in ("object_type", "object_id") or super().lookup_allowed(lookup, value, request)

    @admin.display(description="Who", ordering="actor_email")
    def who(self, obj):
        return obj.actor_email or "the system"

    @admin.display(description="Name", ordering="object_repr")
    def object_name(self, obj):
        return obj.object_repr or "-"

    @admin.display(description="Object ID", ordering="object_id")
    def object_ref(self, obj):
        return obj.object_id or "-"

    @admin.display(description="Object", ordering="object_type")
    def object_kind(self, obj):
        """The kind of object in words ("Membership"), not its ``app_label.model``."""
        try:
            return capfirst(apps.get_model(obj.object_type)._meta.verbose_name)
        except (LookupError, ValueError):
            return obj.object_type

    @admin.display(description="Changed")
    def changed_fields(self, obj):
        return ", ".join(obj.changes or {}) or "-"

    @admin.display(description="Changes")
    def changes_table(self, obj):
        return changes_table(obj.changes)
