"""Tenancy: the one scoping helper every tenant-owned read goes through.

Every tenant-owned model inherits ``TenantOwnedModel``; code reads its rows with
``Model.objects.for_tenant(tenant)``. The API base viewset (``csplatform.api``) and the admin base
class do that for views, so no view filters on ``tenant`` by hand. The current tenant is also kept in
a context variable (``tenant_context``) so that background work and, on PostgreSQL, row-level
security can know it without passing it through every call.
"""

from __future__ import annotations

import contextvars
import logging
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from django.db import connections, models

if TYPE_CHECKING:  # pragma: no cover
    from accounts.models import Tenant

_current_tenant: contextvars.ContextVar["Tenant | None"] = contextvars.ContextVar("current_tenant", default=None)


class TenantQuerySet(models.QuerySet):
    def for_tenant(self, tenant: "Tenant | int | str") -> "TenantQuerySet":
        """Rows of one tenant; ``tenant`` may be a Tenant or its primary key."""
        if tenant is None:
            raise ValueError("for_tenant() needs a tenant; refusing to return every tenant's rows")
        return self.filter(tenant=tenant)


class TenantOwnedModel(models.Model):
    """Abstract base of every row that belongs to one tenant."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+", editable=False)

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True


# Admin pages show the rows of every tenant the staff user belongs to.
_visible_tenant_ids: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("visible_tenants", default=())
_system: contextvars.ContextVar[str | None] = contextvars.ContextVar("system_context", default=None)
log = logging.getLogger("csplatform.tenancy")


@contextmanager
def _scope(tenant, tenant_ids: tuple[str, ...], system: str | None) -> Iterator[None]:
    tokens = (_current_tenant.set(tenant), _visible_tenant_ids.set(tenant_ids), _system.set(system))
    forget_applied_state()
    try:
        yield
    finally:
        _current_tenant.reset(tokens[0])
        _visible_tenant_ids.reset(tokens[1])
        _system.reset(tokens[2])
        forget_applied_state()


@contextmanager
def tenant_context(tenant: "Tenant | None") -> Iterator["Tenant | None"]:
    """Make ``tenant`` the current tenant for the duration of the block (requests, tasks, commands).
    ``tenant_context(None)`` is the closed default: no tenant, no bypass, nothing visible under RLS."""
    with _scope(tenant, (), None):
        yield tenant


@contextmanager
def tenants_context(tenant_ids) -> Iterator[None]:
    """Several tenants visible at once (the admin of a staff user with several memberships)."""
    with _scope(None, tuple(sorted(str(t) for t in tenant_ids)), None):
        yield


@contextmanager
def system_context(reason: str) -> Iterator[None]:
    """Cross-tenant system work (sweepers, evaluate-all over every tenant, migrations' data, test set-up):
    the one explicit bypass of tenant isolation; ``reason`` is logged. API views never read tenant data
    in it; the one exception is the inbound webhook's token lookup, which then enters the rule's tenant."""
    log.info("cross-tenant system work: %s", reason)
    with _scope(None, (), reason):
        yield


def database_scope() -> tuple[tuple[str, ...], bool]:
    """What row-level security should let the current code see: (tenant ids, bypass)."""
    tenant = _current_tenant.get()
    if tenant is not None:
        return (str(tenant.pk),), False
    if _system.get() is not None:
        return (), True
    return _visible_tenant_ids.get(), False


# --- keeping the database session's RLS settings (csplatform.rls) in step with the context -------

def _apply_scope(execute, sql, params, many, context):
    connection = context["connection"]
    wanted = database_scope()
    if getattr(connection, "_cs_rls_applied", None) != wanted:
        tenant_ids, bypass = wanted
        with connection.connection.cursor() as cursor:  # the raw cursor: no wrappers, no recursion
            cursor.execute(
                "SELECT set_config('app.tenant_ids', %s, false), set_config('app.bypass_rls', %s, false)",
                [",".join(tenant_ids), "on" if bypass else "off"],
            )
        connection._cs_rls_applied = wanted
    return execute(sql, params, many, context)


def on_connection_created(sender, connection, **kwargs) -> None:
    if connection.vendor == "postgresql" and _apply_scope not in connection.execute_wrappers:
        connection.execute_wrappers.append(_apply_scope)
    connection._cs_rls_applied = None


def forget_applied_state() -> None:
    for connection in connections.all(initialized_only=True):
        connection._cs_rls_applied = None
