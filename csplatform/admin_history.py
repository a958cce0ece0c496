"""The admin's "History" page of a tenant's object: its audit trail first (``accounts.AuditLog``: who changed
what, from what to what, through the admin, the API or a command), then Django's log of the edits made in
this admin. Every ``admin_base.TenantScopedAdmin`` has it.

The trail is for the tenant's admins (docs/security.md), as on its own pages: other members read that it is
theirs to see. The page shows the newest ``audit_page_size`` entries and links to all of them in the audit log.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.admin.utils import unquote
from django.urls import reverse

from accounts.models import AuditLog

from .admin_display import changes_table
from .permissions import ADMINS


class AuditHistoryMixin:
    """For admins with ``tenant_id_of`` and ``has_role_in`` (``admin_base.TenantRoles``)."""

    object_history_template = "admin/audit_object_history.html"
    audit_read_roles = ADMINS
    audit_page_size = 100

    def audit_trail(self, request, obj) -> dict:
        """The history page's ``audit_*`` context: whether the user may read the trail, and its newest entries."""
        try:
            tenant_id = self.tenant_id_of(obj)  # a tenant's own page: the tenant itself
        except AttributeError:  # a row of no tenant keeps no trail
            tenant_id = None
        if tenant_id is None:
            return {"audit_kept": False}
        if not self.has_role_in(request, frozenset(self.audit_read_roles), tenant_id):
            return {"audit_kept": True, "audit_readable": False}
        where = {"object_type": obj._meta.label_lower, "object_id": str(obj.pk)}
        entries = AuditLog.objects.for_tenant(tenant_id).filter(**where).order_by("-created_at", "-id")
        count = entries.count()
        rows = [(entry, changes_table(entry.changes)) for entry in entries[: self.audit_page_size]]
        return {"audit_kept": True, "audit_readable": True, "audit_rows": rows, "audit_count": count,
                "audit_all_url": f"{reverse('admin:accounts_auditlog_changelist')}?{urlencode(where)}"
                if count > len(rows) else ""}

    def history_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if obj is not None and self.has_view_or_change_permission(request, obj):  # else Django refuses
            context.update(self.audit_trail(request, obj))
        return super().history_view(request, object_id, context)
