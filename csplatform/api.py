"""Shared DRF building blocks: tenant-scoped viewsets and relation fields, pagination, errors."""

from __future__ import annotations

import copy
import datetime

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.db.models import ProtectedError, RestrictedError
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import filters, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from .permissions import django_validation_error_detail, resolve_membership
from .tenancy import TenantOwnedModel


def exception_handler(exc, context):
    """Django ValidationErrors raised by services become 400s that name the field; deleting a row that
    others still point at (``on_delete=PROTECT``) is a 409 that says which rows, not a 500."""
    if isinstance(exc, DjangoValidationError):
        exc = ValidationError(django_validation_error_detail(exc))
    if isinstance(exc, (ProtectedError, RestrictedError)):
        blockers = exc.protected_objects if isinstance(exc, ProtectedError) else exc.restricted_objects
        kinds = sorted({str(obj._meta.verbose_name_plural) for obj in blockers})
        set_rollback()
        return Response(
            {"detail": f"Cannot delete: still referenced by {', '.join(kinds)}.", "protected_by": kinds},
            status=status.HTTP_409_CONFLICT,
        )
    return drf_exception_handler(exc, context)


def request_tenant(context_or_request):
    request = context_or_request.get("request") if isinstance(context_or_request, dict) else context_or_request
    return resolve_membership(request).tenant if request is not None else None


def tenant_scoped(queryset: models.QuerySet, tenant) -> models.QuerySet:
    """``queryset`` narrowed to what the request tenant may name: its own rows, or its members (users)."""
    model = queryset.model
    if issubclass(model, TenantOwnedModel):
        return queryset.for_tenant(tenant) if tenant is not None else queryset.none()
    if model is get_user_model():
        return queryset.filter(memberships__tenant=tenant) if tenant is not None else queryset.none()
    return queryset


class TenantRelatedField(serializers.PrimaryKeyRelatedField):
    """A foreign key to another tenant-owned row: only the request tenant's rows are valid choices,
    so a payload naming another tenant's object gets "does not exist" like any unknown id."""

    def __init__(self, model=None, **kwargs):
        self.model = model
        if not kwargs.get("read_only"):
            kwargs.setdefault("queryset", model.objects.none())
        super().__init__(**kwargs)

    def get_queryset(self):
        return tenant_scoped(self.model.objects.all(), request_tenant(self.context))


class TenantUserField(serializers.PrimaryKeyRelatedField):
    """A user who is a member of the request tenant (an account owner, a task assignee)."""

    def __init__(self, **kwargs):
        if not kwargs.get("read_only"):
            kwargs.setdefault("queryset", get_user_model().objects.none())
        super().__init__(**kwargs)

    def get_queryset(self):
        return tenant_scoped(get_user_model().objects.all(), request_tenant(self.context))


class TenantModelSerializer(serializers.ModelSerializer):
    """Runs the model's ``clean()`` so model rules (score ranges, dates) give the same 400 as fields, and
    checks the model's unique constraints (``tenant`` + name, ...) so a duplicate is a 400, not a 500.
    DRF cannot do the latter itself: ``tenant`` is never a serializer field."""

    def validate(self, attrs):
        attrs = super().validate(attrs)
        self.validate_unique_constraints(attrs)
        candidate = copy.copy(self.instance) if self.instance is not None else self.Meta.model()
        many_to_many = {f.name for f in self.Meta.model._meta.many_to_many}
        for name, value in attrs.items():
            if name not in many_to_many:
                setattr(candidate, name, value)
        try:
            candidate.clean()
        except DjangoValidationError as exc:
            raise ValidationError(django_validation_error_detail(exc))
        return attrs

    def validate_unique_constraints(self, attrs):
        model = self.Meta.model
        for constraint in model._meta.constraints:
            if not isinstance(constraint, models.UniqueConstraint) or constraint.condition or not constraint.fields:
                continue
            lookup, missing = {}, False
            for name in constraint.fields:
                if name == "tenant":
                    tenant = request_tenant(self.context)
                    if tenant is None:
                        missing = True
                    lookup["tenant"] = tenant
                elif name in attrs:
                    lookup[name] = attrs[name]
                elif self.instance is not None:
                    lookup[name] = getattr(self.instance, name)
                else:
                    missing = True
            if missing:
                continue
            clash = model._default_manager.all()
            if "tenant" in lookup:
                clash = clash.for_tenant(lookup.pop("tenant"))
            clash = clash.filter(**lookup)
            if self.instance is not None:
                clash = clash.exclude(pk=self.instance.pk)
            if clash.exists():
                field = [name for name in constraint.fields if name != "tenant"][-1]
                raise ValidationError({field: f"A {model._meta.verbose_name} with this {field} already exists."})


class UTCDateTimesForm(forms.Form):
    """Date-time filter values in UTC: PostgreSQL refuses offsets beyond +-15:59 that Python accepts
    (``?responded_at__lte=0863-11-25T11:42:24+16:36`` was a 500, found by schemathesis); out of range is a 400."""

    def clean(self):
        cleaned = super().clean()
        for name, value in list(cleaned.items()):
            if isinstance(value, datetime.datetime) and value.tzinfo is not None:
                try:
                    cleaned[name] = value.astimezone(datetime.timezone.utc)
                except OverflowError:
                    self.add_error(name, "Date and time out of range.")
        return cleaned


class TenantFilterSet(django_filters.rest_framework.FilterSet):
    """Filter choices that name other rows (``?account=``, ``?owner=``) are limited to the request tenant,
    so filtering by another tenant's id is the same 400 as an unknown id: no oracle for other tenants."""

    def get_form_class(self):
        form_class = super().get_form_class()
        return type(form_class.__name__, (UTCDateTimesForm, form_class), {})

    def __init__(self, data=None, queryset=None, *, request=None, prefix=None):
        super().__init__(data, queryset, request=request, prefix=prefix)
        tenant = request_tenant(request) if request is not None else None
        for f in self.filters.values():
            if isinstance(f, (django_filters.ModelChoiceFilter, django_filters.ModelMultipleChoiceFilter)):
                choices = f.get_queryset(request)
                if choices is not None:
                    f.queryset = tenant_scoped(choices, tenant)


class TenantFilterBackend(DjangoFilterBackend):
    filterset_base = TenantFilterSet

    def get_filterset_class(self, view, queryset=None):
        filterset_class = super().get_filterset_class(view, queryset)
        if filterset_class is not None and not issubclass(filterset_class, TenantFilterSet):
            raise TypeError(f"{view.__class__.__name__}.filterset_class must subclass csplatform.api.TenantFilterSet")
        return filterset_class


class TenantModelViewSet(viewsets.ModelViewSet):
    """The base of every tenant-owned endpoint: reads through ``for_tenant``, creates in the request tenant.

    Subclasses set ``queryset`` (used only for its model and select/prefetch) and, as needed,
    ``write_roles`` / ``create_roles`` / ``action_roles`` (see ``csplatform.permissions``).
    """

    filter_backends = [TenantFilterBackend, filters.SearchFilter, filters.OrderingFilter]

    def get_queryset(self):
        tenant = resolve_membership(self.request).tenant
        return self.queryset.for_tenant(tenant)

    def perform_create(self, serializer):
        serializer.save(tenant=resolve_membership(self.request).tenant)


def slash_optional(router):
    """Let ``router`` answer with or without the trailing slash (the seeds' clients call /api/x without
    it). Set after construction: DRF's constructor turns any truthy ``trailing_slash`` into "/"."""
    router.trailing_slash = "/?"
    return router
