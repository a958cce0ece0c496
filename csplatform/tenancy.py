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

from .rls_key import sign

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
# The signed-in user: row-level security also shows them their own memberships (which tenants they
# may pick), before any tenant is chosen.
_current_user_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("current_user_id", default=None)
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
    in it; the one exception is the inbound webhook's token lookup, which then enters the rule's tenant.
    Logged at DEBUG: periodic work enters it several times a tick (LOG_LEVEL=DEBUG shows every entry)."""
    log.debug("cross-tenant system work: %s", reason)
    with _scope(None, (), reason):
        yield


def current_tenant_id() -> str | None:
    """The id of the current context's tenant, or None (system, admin or closed scope); for log lines."""
    tenant = _current_tenant.get()
    return None if tenant is None else str(tenant.pk)


@contextmanager
def user_context(user_id: int | None) -> Iterator[None]:
    """The signed-in user for the block (a request), whatever tenant scope is entered inside it."""
    token = _current_user_id.set(user_id)
    try:
        yield
    finally:
        _current_user_id.reset(token)


def set_current_user(user_id: int | None) -> None:
    """For the API, whose token users are known only inside the view: ``user_context`` around the
    request restores the previous value when the request ends."""
    _current_user_id.set(user_id)


def database_scope() -> tuple[tuple[str, ...], bool, int | None]:
    """What row-level security should let the current code see: (tenant ids, bypass, user id)."""
    user_id = _current_user_id.get()
    tenant = _current_tenant.get()
    if tenant is not None:
        return (str(tenant.pk),), False, user_id
    if _system.get() is not None:
        return (), True, user_id
    return _visible_tenant_ids.get(), False, user_id


# --- keeping the database session's RLS settings (csplatform.rls) in step with the context -------

def _apply_scope(execute, sql, params, many, context):
    connection = context["connection"]
    wanted = database_scope()
    if getattr(connection, "_cs_rls_applied", None) != wanted:
        tenant_ids, bypass, user_id = wanted
        values = [",".join(tenant_ids), "on" if bypass else "off", "" if user_id is None else str(user_id)]
        with connection.connection.cursor() as cursor:  # the raw cursor: no wrappers, no recursion
            if getattr(connection, "_cs_backend_pid", None) is None:
                cursor.execute("SELECT pg_backend_pid()")
                connection._cs_backend_pid = cursor.fetchone()[0]
            cursor.execute(
                "SELECT set_config('app.tenant_ids', %s, false), set_config('app.bypass_rls', %s, false),"
                " set_config('app.user_id', %s, false), set_config('app.rls_sig', %s, false)",
                [*values, sign(connection._cs_backend_pid, *values)],
            )
        connection._cs_rls_applied = wanted
    return execute(sql, params, many, context)


def on_connection_created(sender, connection, **kwargs) -> None:
    if connection.vendor == "postgresql" and _apply_scope not in connection.execute_wrappers:
        connection.execute_wrappers.append(_apply_scope)
    connection._cs_rls_applied = None
    connection._cs_backend_pid = None  # a new session: its signature names a new backend


def forget_applied_state() -> None:
    for connection in connections.all(initialized_only=True):
        connection._cs_rls_applied = None
