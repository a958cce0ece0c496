"""Tenancy: the one scoping helper every tenant-owned read goes through.

Every tenant-owned model inherits ``TenantOwnedModel``; code reads its rows with
``Model.objects.for_tenant(tenant)``. The API base viewset (``csplatform.api``) and the admin base
class do that for views, so no view filters on ``tenant`` by hand. The current tenant is also kept in
a context variable (``tenant_context``) so that background work and, on PostgreSQL, row-level
security can know it without passing it through every call.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from django.db import models

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


def get_current_tenant() -> "Tenant | None":
    return _current_tenant.get()


@contextmanager
def tenant_context(tenant: "Tenant | None") -> Iterator["Tenant | None"]:
    """Make ``tenant`` the current tenant for the duration of the block (requests, tasks, commands)."""
    token = _current_tenant.set(tenant)
    try:
        yield tenant
    finally:
        _current_tenant.reset(token)


_system: contextvars.ContextVar[str | None] = contextvars.ContextVar("system_context", default=None)


@contextmanager
def system_context(reason: str) -> Iterator[None]:
    """Cross-tenant system work (sweepers, evaluate-all over every tenant): the one explicit bypass of
    tenant isolation. ``reason`` is logged. No view may use it."""
    import logging

    logging.getLogger("csplatform.tenancy").info("cross-tenant system work: %s", reason)
    token = _system.set(reason)
    try:
        yield
    finally:
        _system.reset(token)
