"""A tenant's retention (``RetentionPolicy``): tenant admins set how many days of history are kept; an empty
field keeps the platform default (``RETENTION_DEFAULTS``). Changes go to the audit trail."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin

from csplatform.admin_base import AuditedAdminMixin, TenantScopedAdmin, TenantScopedForm
from csplatform.permissions import ADMINS

from ..models import RetentionPolicy


class RetentionPolicyForm(TenantScopedForm):
    def clean(self):
        cleaned = super().clean()
        policy = self.instance
        if policy._state.adding and policy.tenant_id and RetentionPolicy.objects.filter(
                tenant_id=policy.tenant_id).exists():
            self.add_error(None, f"{policy.tenant} already has a retention policy: change that one.")
        return cleaned


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(AuditedAdminMixin, TenantScopedAdmin):
    form = RetentionPolicyForm
    read_roles = write_roles = ADMINS
    tenant_parent_field = None
    list_display = ("__str__", "updated_at")
    fields = ("events_days", "runs_days", "delivered_messages_days", "dead_messages_days", "audit_log_days")

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        for name in self.fields:
            key = name.removesuffix("_days")
            if name in form.base_fields:
                form.base_fields[name].help_text = (f"{form.base_fields[name].help_text} Empty: "
                                                    f"{settings.RETENTION_DEFAULTS[key]} days.")
        return form
