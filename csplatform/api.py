"""Shared DRF building blocks: tenant-scoped viewsets and relation fields, pagination, errors."""

from __future__ import annotations

import copy

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.views import exception_handler as drf_exception_handler

from .permissions import django_validation_error_detail, resolve_membership


def exception_handler(exc, context):
    """Django ValidationErrors raised by services become 400s that name the field."""
    if isinstance(exc, DjangoValidationError):
        exc = ValidationError(django_validation_error_detail(exc))
    return drf_exception_handler(exc, context)


def request_tenant(context_or_request):
    request = context_or_request.get("request") if isinstance(context_or_request, dict) else context_or_request
    return resolve_membership(request).tenant if request is not None else None


class TenantRelatedField(serializers.PrimaryKeyRelatedField):
    """A foreign key to another tenant-owned row: only the request tenant's rows are valid choices,
    so a payload naming another tenant's object gets "does not exist" like any unknown id."""

    def __init__(self, model=None, **kwargs):
        self.model = model
        if not kwargs.get("read_only"):
            kwargs.setdefault("queryset", model.objects.none())
        super().__init__(**kwargs)

    def get_queryset(self):
        tenant = request_tenant(self.context)
        if tenant is None:
            return self.model.objects.none()
        return self.model.objects.for_tenant(tenant)


class TenantUserField(serializers.PrimaryKeyRelatedField):
    """A user who is a member of the request tenant (an account owner, a task assignee)."""

    def __init__(self, **kwargs):
        if not kwargs.get("read_only"):
            kwargs.setdefault("queryset", get_user_model().objects.none())
        super().__init__(**kwargs)

    def get_queryset(self):
        tenant = request_tenant(self.context)
        return get_user_model().objects.filter(memberships__tenant=tenant) if tenant else get_user_model().objects.none()


class TenantModelSerializer(serializers.ModelSerializer):
    """Runs the model's ``clean()`` so model rules (score ranges, dates) give the same 400 as fields."""

    def validate(self, attrs):
        attrs = super().validate(attrs)
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


class TenantModelViewSet(viewsets.ModelViewSet):
    """The base of every tenant-owned endpoint: reads through ``for_tenant``, creates in the request tenant.

    Subclasses set ``queryset`` (used only for its model and select/prefetch) and, as needed,
    ``write_roles`` / ``create_roles`` / ``action_roles`` (see ``csplatform.permissions``).
    """

    def get_queryset(self):
        tenant = resolve_membership(self.request).tenant
        return self.queryset.for_tenant(tenant)

    def perform_create(self, serializer):
        serializer.save(tenant=resolve_membership(self.request).tenant)
