"""Shared DRF building blocks: tenant-scoped viewsets and relation fields, pagination, errors."""

from __future__ import annotations

import copy
import datetime
from collections.abc import Mapping

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.db.models import ProtectedError, RestrictedError
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import filters, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.relations import MANY_RELATION_KWARGS
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from .conflicts import StateConflict
from .permissions import django_validation_error_detail, resolve_membership
from .query_params import given_once
from .tenancy import TenantOwnedModel


def exception_handler(exc, context):
    """Django ValidationErrors raised by services become 400s that name the field (409 for a ``StateConflict``:
    the row's state refuses a well-formed request); deleting a row that others still point at
    (``on_delete=PROTECT``) is a 409 that says which rows, not a 500."""
    if isinstance(exc, StateConflict):
        set_rollback()
        return Response(django_validation_error_detail(exc), status=status.HTTP_409_CONFLICT)
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


class ListOfRelatedField(serializers.ManyRelatedField):
    """Several related rows: a list of ids. DRF iterates whatever it gets, so an object (``{}``) read as its keys,
    an empty list; it is a 400 here, as the schema's array says."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            self.fail("not_a_list", input_type=type(data).__name__)
        return super().to_internal_value(data)


class TenantRelatedField(serializers.PrimaryKeyRelatedField):
    """A foreign key to another tenant-owned row: only the request tenant's rows are valid choices,
    so a payload naming another tenant's object gets "does not exist" like any unknown id."""

    @classmethod
    def many_init(cls, *args, **kwargs):  # DRF's, with ListOfRelatedField
        list_kwargs = {key: value for key, value in kwargs.items() if key in MANY_RELATION_KWARGS}
        return ListOfRelatedField(child_relation=cls(*args, **kwargs), **list_kwargs)

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


BOOLEAN_WORDS = frozenset({"true", "false", "True", "False", "1", "0"})
MULTIPLE_CHOICE_FIELDS = (forms.MultipleChoiceField, forms.ModelMultipleChoiceField)


class UTCDateTimesForm(forms.Form):
    """Date-time filter values in UTC: PostgreSQL refuses offsets beyond +-15:59 that Python accepts
    (``?responded_at__lte=0863-11-25T11:42:24+16:36`` was a 500, found by schemathesis); out of range is a 400.

    And filters take what the schema says they take, or answer 400: django-filter reads a boolean it does not
    know (``?pinned=4116``) and an empty number, id or choice (``?account=``, ``?priority=``) as "no filter",
    and a filter given twice (``?run=1&run=2``) as its last value, which answered rows to a request that meant
    something else. An empty text filter still means none."""

    def clean(self):
        for name, field in self.fields.items():
            if name not in self.data:
                continue
            raw = self.data.get(name)
            given = self.data.getlist(name) if hasattr(self.data, "getlist") else [raw]
            if len(given) > 1 and not isinstance(field, MULTIPLE_CHOICE_FIELDS):
                self.add_error(name, "Give this filter once.")
            elif isinstance(field, forms.NullBooleanField):
                if raw not in BOOLEAN_WORDS:
                    self.add_error(name, "Must be true or false.")
            elif raw == "" and (not isinstance(field, forms.CharField) or isinstance(field, forms.UUIDField)):
                self.add_error(name, "This filter needs a value; leave it out for no filter.")
        cleaned = super().clean()
        for name, value in list(cleaned.items()):
            if isinstance(value, datetime.datetime) and value.tzinfo is not None:
                try:
                    cleaned[name] = value.astimezone(datetime.timezone.utc)
                except OverflowError:
                    self.add_error(name, "Date and time out of range.")
        return cleaned


@extend_schema_field(OpenApiTypes.INT)
class IntegerFilter(django_filters.NumberFilter):
    """A filter by a whole number, such as a row's id: ``?run=2.5`` is a 400, as the schema's integer says."""

    field_class = forms.IntegerField


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


class SearchFilter(filters.SearchFilter):
    def get_search_terms(self, request):
        given_once(request.query_params, self.search_param)
        return super().get_search_terms(request)


class OrderingFilter(filters.OrderingFilter):
    def get_ordering(self, request, queryset, view):
        given_once(request.query_params, self.ordering_param)
        return super().get_ordering(request, queryset, view)


class QueryParametersSerializer(serializers.Serializer):
    """Query parameters read through a serializer: a parameter given empty (``?started_after=``) or twice is a
    400, not "left out" or its last value (DRF reads a query string like a form)."""

    def to_internal_value(self, data):
        given_once(data, *self.fields)
        empty = {name: ["Give a value, or leave the parameter out."] for name in self.fields if data.get(name) == ""}
        if empty:
            raise ValidationError(empty)
        return super().to_internal_value(data)


class TenantModelViewSet(viewsets.ModelViewSet):
    """The base of every tenant-owned endpoint: reads through ``for_tenant``, creates in the request tenant.

    Subclasses set ``queryset`` (used only for its model and select/prefetch) and, as needed,
    ``write_roles`` / ``create_roles`` / ``action_roles`` (see ``csplatform.permissions``).
    """

    filter_backends = [TenantFilterBackend, SearchFilter, OrderingFilter]

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


@extend_schema_field({"type": "object", "additionalProperties": {}})
class JSONObjectField(serializers.JSONField):
    """JSON that must be an object (a setting's ``config``); anything else is a 400, as the schema says."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise ValidationError("must be a JSON object")
        return value


class TextOnlyField(serializers.CharField):
    """Text that must come as a JSON string: a secret or a token sent as a number is a 400 (DRF's ``CharField``
    would store the number's digits; a key typed as a number has lost its leading zeros already). Taken as sent,
    untrimmed, so its length is the one the schema's ``maxLength`` counts."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def closed(serializer_class):
    """Class decorator of a serializer whose body refuses fields it does not know: its request schema says so
    (``additionalProperties: false``, through ``csplatform.openapi.AutoSchema``)."""
    serializer_class.openapi_request_constraints = staticmethod(lambda partial: {"additionalProperties": False})
    return serializer_class
