"""The audit trail: who changed which configuration of a tenant, when, and from what to what.

Rows are written only by ``accounts.audit.audit_record`` (memberships, tenant settings, and the
configuration of the other apps: rules, playbook triggers, journeys, templates, webhook secrets) and
are never changed afterwards. Tenant admins read them in the admin and at ``/api/audit-log/``.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from csplatform.tenancy import TenantOwnedModel


class AuditLog(TenantOwnedModel):
    class Action(models.TextChoices):
        CREATE = "create", "Create"
        UPDATE = "update", "Update"
        DELETE = "delete", "Delete"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Who made the change; empty for the system (commands, automation).",
    )
    # Kept as text so the row still says who it was after the user is deleted.
    actor_email = models.CharField(max_length=254, blank=True, default="")
    action = models.CharField(max_length=10, choices=Action.choices)
    object_type = models.CharField(max_length=100, help_text="app_label.model, e.g. accounts.membership")
    object_id = models.CharField("object ID", max_length=64, blank=True, default="")
    object_repr = models.CharField(max_length=200, blank=True, default="")
    changes = models.JSONField(default=dict, blank=True, help_text="{field: [before, after]}; secrets masked")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "created_at"], name="audit_tenant_created"),
            models.Index(fields=["tenant", "object_type", "object_id"], name="audit_tenant_object"),
        ]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.object_type} {self.object_repr or self.object_id}"

    def save(self, *args, **kwargs):
        # An audit trail that can be rewritten is no audit trail: rows are insert-only.
        if not self._state.adding:
            raise ValueError("Audit log entries cannot be changed.")
        super().save(*args, **kwargs)
