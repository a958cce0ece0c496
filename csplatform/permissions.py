"""Roles (DESIGN.md) and how the API resolves which tenant a request acts in.

A request names its tenant with ``X-Tenant-ID`` (or ``X-Customer-ID``, seed 000's name), by id or
slug, and only among the user's memberships; without a header the user's first membership is used.
Superusers may name any tenant and act in it as tenant admins.
"""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.models import Membership, Role, Tenant

from .tenancy import _current_tenant, set_current_user

TENANT_HEADERS = ("HTTP_X_TENANT_ID", "HTTP_X_CUSTOMER_ID")

ADMINS = frozenset({Role.TENANT_ADMIN})
MANAGERS = frozenset({Role.TENANT_ADMIN, Role.PRACTITIONER})
CONTRIBUTORS = frozenset({Role.TENANT_ADMIN, Role.PRACTITIONER, Role.CONTRIBUTOR})
EVERYONE = frozenset(Role.values)


def _requested_tenant_key(request) -> str | None:
    for header in TENANT_HEADERS:
        value = request.META.get(header, "").strip()
        if value:
            return value
    return None


def _find_tenant(key: str) -> Tenant | None:
    """The tenant with this id, else this slug (a slug may look like an id), else this number (seed 000's
    ``X-Customer-ID: 1``)."""
    try:
        by_id = Tenant.objects.filter(pk=uuid.UUID(key)).first()
    except ValueError:
        by_id = None
    found = by_id or Tenant.objects.filter(slug=key).first()
    if found is None and key.isascii() and key.isdigit() and len(key) <= 9:
        found = Tenant.objects.filter(number=int(key)).first()
    return found


def _tenant_lookup(key: str) -> dict:
    """The filter on a membership's tenant that ``_find_tenant`` tries first for this key."""
    try:
        return {"tenant_id": uuid.UUID(key)}
    except ValueError:
        return {"tenant__slug": key}


def resolve_membership(request) -> Membership:
    """The membership the request acts under (cached on the request); 403 if the user has none there."""
    cached = getattr(request, "_cs_membership", None)
    if cached is not None:
        return cached
    user = request.user
    if not user or not user.is_authenticated:
        raise NotAuthenticated()
    set_current_user(user.pk)  # row-level security shows a user their own memberships
    key = _requested_tenant_key(request)
    memberships = Membership.objects.select_related("tenant").filter(user=user)
    if key:
        # The usual case in one query: a membership of the tenant with this id (else this slug). Only without
        # one is the tenant looked up on its own (by id, slug or number), as a superuser may act in any.
        membership = memberships.filter(**_tenant_lookup(key)).first()
        if membership is not None:
            tenant = membership.tenant
        else:
            tenant = _find_tenant(key)
            membership = memberships.filter(tenant=tenant).first() if tenant else None
        if membership is None and tenant is not None and user.is_superuser:
            membership = Membership(user=user, tenant=tenant, role=Role.TENANT_ADMIN)
        if membership is None:
            raise PermissionDenied(f"You are not a member of tenant '{key}'.")
    else:
        membership = memberships.first()
        if membership is None:
            raise PermissionDenied("You are not a member of any tenant.")
    request._cs_membership = membership
    request.tenant = membership.tenant
    # Django's HttpRequest under DRF's Request: views and services see the same tenant.
    getattr(request, "_request", request).tenant = membership.tenant
    _current_tenant.set(membership.tenant)
    return membership


def roles_allowed(view, request) -> frozenset[str]:
    """Which roles may make this (unsafe) request to ``view``.

    Views declare ``write_roles`` (default: admins and practitioners), optionally ``create_roles``
    for POST-to-create and ``action_roles`` for custom actions.
    """
    action = getattr(view, "action", None)
    action_roles = getattr(view, "action_roles", {})
    if action in action_roles:
        return frozenset(action_roles[action])
    if action == "create" and getattr(view, "create_roles", None) is not None:
        return frozenset(view.create_roles)
    return frozenset(getattr(view, "write_roles", MANAGERS))


class RolePermission(BasePermission):
    """Any member may read; writes need one of the roles the view allows."""

    message = "Your role in this tenant does not allow this."

    def has_permission(self, request, view) -> bool:
        membership = resolve_membership(request)
        if request.method in SAFE_METHODS:
            read_roles = getattr(view, "read_roles", EVERYONE)
            return membership.role in read_roles
        return membership.role in roles_allowed(view, request)


def django_validation_error_detail(exc: DjangoValidationError):
    """A Django ValidationError as DRF error detail: ``{field: [messages]}`` when it names fields."""
    if hasattr(exc, "error_dict"):
        return {field: [str(m) for e in errors for m in e.messages] for field, errors in exc.error_dict.items()}
    return {"non_field_errors": exc.messages}
