"""Admin base classes scoped by tenant.

What a staff user sees, may pick in a form and may do comes from their memberships (one role per
tenant, see DESIGN.md "Roles"), not from Django's model permissions, so nobody has to hand out
``auth`` permissions per tenant. Superusers may do everything.

* ``get_queryset`` shows the rows of the tenants where the user's role may read the model;
* foreign-key / many-to-many choices are limited to rows (and, for users, members) of the tenants the
  user may write in, and narrowed to the object's own tenant once it has one;
* a new object's tenant comes from its parent (``tenant_parent_field``, e.g. a contact's account),
  else from the user's only tenant, else from a required "Tenant" choice on the add form;
* every relation on a saved form must belong to that same tenant (a user of two tenants could
  otherwise link tenant A's survey to tenant B's contact);
* an object's "History" page shows its audit trail to the tenant's admins (``admin_history``).

Admin classes declare roles like the API viewsets do: ``read_roles`` (default: everyone),
``write_roles`` (change; default: managers), ``add_roles`` and ``delete_roles`` (default: ``write_roles``).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import router
from django.db.models import UniqueConstraint
from django.forms.models import BaseInlineFormSet, InlineForeignKeyField

from accounts.audit import audit_record, audit_snapshot
from accounts.models import Membership, Tenant

from .admin_history import AuditHistoryMixin
from .permissions import EVERYONE, MANAGERS

TENANT_CHOICE = "tenant_choice"


# --- who may do what -----------------------------------------------------------------------------

def member_roles(request) -> dict:
    """``{tenant_id: role}`` of the request's user, read once per request."""
    roles = getattr(request, "_cs_admin_roles", None)
    if roles is None:
        user = getattr(request, "user", None)
        roles = {}
        if user is not None and user.is_authenticated:
            roles = dict(Membership.objects.filter(user=user).values_list("tenant_id", "role"))
        request._cs_admin_roles = roles
    return roles


def tenant_ids_with_role(request, roles) -> list:
    return [tenant_id for tenant_id, role in member_roles(request).items() if role in roles]


def has_tenant_field(model) -> bool:
    try:
        field = model._meta.get_field("tenant")
    except FieldDoesNotExist:
        return False
    return field.is_relation and field.related_model is Tenant


def scope_to_tenants(queryset, tenant_ids):
    """``queryset`` limited to rows of ``tenant_ids`` (users: members of them); ``None`` = no limit.
    Models that belong to no tenant are returned unchanged."""
    if tenant_ids is None:
        return queryset
    model = queryset.model
    if model is get_user_model():
        return queryset.filter(memberships__tenant__in=tenant_ids).distinct()
    if model is Tenant:
        return queryset.filter(pk__in=tenant_ids)
    if has_tenant_field(model):
        return queryset.filter(tenant__in=tenant_ids)
    return queryset


def belongs_to_tenant(obj, tenant: Tenant) -> bool:
    if isinstance(obj, get_user_model()):
        return Membership.objects.filter(user=obj, tenant=tenant).exists()
    if isinstance(obj, Tenant):
        return obj.pk == tenant.pk
    if has_tenant_field(type(obj)):
        return obj.tenant_id == tenant.pk
    return True


def adopt(target, source) -> None:
    """Make ``target`` (the admin form's instance) the row a service created, so the admin's
    redirects and change log point at the saved object."""
    for field in source._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))
    target._state.adding = False
    target._state.db = source._state.db


class TenantRoles:
    """Role checks shared by model admins and inlines."""

    read_roles = EVERYONE
    write_roles = MANAGERS
    add_roles = None  # default: write_roles
    delete_roles = None  # default: write_roles
    # The field whose object gives a new row its tenant; None for rows without a parent.
    tenant_parent_field: str | None = "account"
    # Set to the request user on new rows (note author, task creator); keep it out of the form.
    creator_field: str | None = None
    # History rows nobody deletes by hand may still go when their account is deleted.
    deleted_with_parent = False

    def get_add_roles(self) -> frozenset:
        return frozenset(self.write_roles if self.add_roles is None else self.add_roles)

    def get_delete_roles(self) -> frozenset:
        return frozenset(self.write_roles if self.delete_roles is None else self.delete_roles)

    def tenant_id_of(self, obj):
        return obj.tenant_id

    def has_role(self, request, roles, obj=None) -> bool:
        """With ``obj``: the user's role in its tenant is one of ``roles``; without: in some tenant."""
        user = request.user
        if not (user.is_active and user.is_staff):
            return False
        if user.is_superuser:
            return True
        if obj is None:
            return any(role in roles for role in member_roles(request).values())
        return member_roles(request).get(self.tenant_id_of(obj)) in roles

    def has_role_in(self, request, roles, tenant_id) -> bool:
        return request.user.is_superuser or member_roles(request).get(tenant_id) in roles

    def writable_tenant_ids(self, request):
        """Tenants whose rows this admin's forms may point at (None: all, for superusers)."""
        if request.user.is_superuser:
            return None
        return tenant_ids_with_role(request, self.get_add_roles() | frozenset(self.write_roles))

    def scope_queryset(self, request, queryset):
        if request.user.is_superuser:
            return queryset
        return scope_to_tenants(queryset, tenant_ids_with_role(request, self.read_roles))

    def get_queryset(self, request):
        return self.scope_queryset(request, super().get_queryset(request))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if "queryset" not in kwargs:
            kwargs["queryset"] = self._scoped_choices(db_field, request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if "queryset" not in kwargs:
            kwargs["queryset"] = self._scoped_choices(db_field, request)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def _scoped_choices(self, db_field, request):
        model = db_field.related_model
        queryset = model._default_manager.all()
        if model is get_user_model():
            queryset = queryset.order_by("email")
        return scope_to_tenants(queryset, self.writable_tenant_ids(request))

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if self.creator_field and self.creator_field not in readonly:
            readonly.append(self.creator_field)
        return readonly

    def _form_attrs(self, request, scope_tenant_id=None) -> dict:
        return {"model_admin": self, "request": request, "scope_tenant_id": scope_tenant_id}


# --- forms ---------------------------------------------------------------------------------------

class TenantScopedForm(forms.ModelForm):
    """Works out the tenant of the row, checks the user may write there and that every relation
    belongs to it, and sets ``instance.tenant`` before model validation runs."""

    model_admin: TenantRoles | None = None  # set per request by the admin's get_form/get_formset
    request = None
    scope_tenant_id = None  # an inline row's tenant: its parent's

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        tenant_id = getattr(self.instance, "tenant_id", None) or self.scope_tenant_id
        if tenant_id is not None:
            # A row whose tenant is known can only point at rows of that tenant: offer only those.
            for field in self.fields.values():
                if isinstance(field, forms.ModelChoiceField) and not isinstance(field, InlineForeignKeyField):
                    field.queryset = scope_to_tenants(field.queryset, [tenant_id])

    def clean(self):
        cleaned = super().clean()
        if self.model_admin is None or not has_tenant_field(self._meta.model):
            return cleaned
        self._parent_failed = False
        tenant = self._resolve_tenant(cleaned)
        if tenant is None:
            if not self._errors and not self._parent_failed:
                field = TENANT_CHOICE if TENANT_CHOICE in self.fields else None
                self.add_error(field, "Choose the tenant this belongs to.")
            return cleaned
        if self.instance._state.adding and not self.model_admin.has_role_in(
            self.request, self.model_admin.get_add_roles(), tenant.pk
        ):
            self.add_error(None, f"Your role in {tenant} does not allow adding a {self._meta.model._meta.verbose_name}.")
            return cleaned
        self._check_relations(cleaned, tenant)
        self.instance.tenant = tenant
        creator = self.model_admin.creator_field
        if creator and self.instance._state.adding and getattr(self.instance, f"{creator}_id", None) is None:
            setattr(self.instance, creator, self.request.user)
        return cleaned

    def _resolve_tenant(self, cleaned) -> Tenant | None:
        if self.instance.tenant_id is not None:
            return self.instance.tenant
        if "tenant" in self.fields:  # a model whose tenant is an ordinary field (Membership)
            return cleaned.get("tenant")
        parent = None
        for field in self.fields.values():
            if isinstance(field, InlineForeignKeyField):  # an inline row: its parent is the object edited
                parent = field.parent_instance
        parent_field = self.model_admin.tenant_parent_field
        if parent is None and parent_field:
            parent = cleaned.get(parent_field)
        choice = cleaned.get(TENANT_CHOICE)
        if parent is not None:
            if parent.tenant_id is None:
                self._parent_failed = True  # a new parent whose own form failed; its errors say why
                return None
            if choice is not None and choice.pk != parent.tenant_id:
                self.add_error(TENANT_CHOICE, f"The {parent_field} belongs to another tenant.")
                return None
            return parent.tenant
        if choice is not None:
            return choice
        if not self.request.user.is_superuser:
            ids = tenant_ids_with_role(self.request, self.model_admin.get_add_roles())
            if len(ids) == 1:
                return Tenant.objects.get(pk=ids[0])
        return None

    def _check_relations(self, cleaned, tenant: Tenant) -> None:
        for name, field in self.fields.items():
            value = cleaned.get(name)
            if value is None or name == TENANT_CHOICE or isinstance(field, InlineForeignKeyField):
                continue
            if isinstance(field, forms.ModelMultipleChoiceField):
                values = list(value)
            elif isinstance(field, forms.ModelChoiceField):
                values = [value]
            else:
                continue
            strangers = [str(v) for v in values if not belongs_to_tenant(v, tenant)]
            if strangers:
                self.add_error(name, f"Not in {tenant}: {', '.join(strangers)}.")

    def validate_unique(self):
        super().validate_unique()
        # ``tenant`` is never a form field, so Django skips the per-tenant unique constraints (tag
        # and stage names); check them here so a duplicate is a form error, not an IntegrityError.
        if getattr(self.instance, "tenant_id", None) is None:
            return
        for model, constraints in self.instance.get_constraints():
            for constraint in constraints:
                if not isinstance(constraint, UniqueConstraint) or "tenant" not in constraint.fields:
                    continue
                others = [f for f in constraint.fields if f != "tenant"]
                if any(f not in self.fields or f in self._errors for f in others):
                    continue  # a value the form did not set (or could not clean) cannot clash here
                try:
                    constraint.validate(model, self.instance, using=router.db_for_write(model))
                except ValidationError as exc:
                    field = others[0] if len(others) == 1 and others[0] in self.fields else None
                    self.add_error(field, exc)


class LatestRowsFormSet(BaseInlineFormSet):
    """An inline formset showing only the first ``limit`` rows of its (ordered) queryset."""

    limit = 10

    def get_queryset(self):
        if not getattr(self, "_cs_limited", False):
            self._queryset = super().get_queryset()[: self.limit]
            self._cs_limited = True
        return self._queryset


# --- admin base classes --------------------------------------------------------------------------

class TenantScopedAdmin(AuditHistoryMixin, TenantRoles, admin.ModelAdmin):
    form = TenantScopedForm
    # Form labels in words where a field's name reads badly ("HTML", not "Html").
    field_labels: dict[str, str] = {}

    # permissions: roles in the user's memberships instead of Django model permissions
    def has_module_permission(self, request):
        return self.has_role(request, frozenset(self.read_roles))

    def has_view_permission(self, request, obj=None):
        return self.has_role(request, frozenset(self.read_roles), obj)

    def has_add_permission(self, request):
        return self.has_role(request, self.get_add_roles())

    def has_change_permission(self, request, obj=None):
        return self.has_role(request, frozenset(self.write_roles), obj)

    def has_delete_permission(self, request, obj=None):
        return self.has_role(request, self.get_delete_roles(), obj)

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Journey history and health scores cannot be deleted by hand, but they go with their account.
        with_parent = {
            str(model._meta.verbose_name)
            for model, model_admin in self.admin_site._registry.items()
            if getattr(model_admin, "deleted_with_parent", False)
        }
        return deleted, counts, {p for p in perms_needed if str(p) not in with_parent}, protected

    # the tenant of a new row
    def needs_tenant_choice(self, request, obj=None) -> bool:
        """An add form asks for the tenant when neither a required parent nor a single tenant gives it."""
        field = self._tenant_parent_field()
        if obj is not None or not has_tenant_field(self.model) or self.model._meta.get_field("tenant").editable:
            return False
        if field is not None and not field.null:
            return False
        return request.user.is_superuser or len(tenant_ids_with_role(request, self.get_add_roles())) > 1

    def _tenant_parent_field(self):
        if not self.tenant_parent_field:
            return None
        return self.model._meta.get_field(self.tenant_parent_field)

    def get_base_form(self, request, obj=None):
        return self.form

    def get_form(self, request, obj=None, change=False, **kwargs):
        base = self.get_base_form(request, obj)
        attrs = self._form_attrs(request)
        if self.needs_tenant_choice(request, obj):
            ids = tenant_ids_with_role(request, self.get_add_roles())
            tenants = Tenant.objects.all() if request.user.is_superuser else Tenant.objects.filter(pk__in=ids)
            parent = self._tenant_parent_field()
            attrs[TENANT_CHOICE] = forms.ModelChoiceField(
                queryset=tenants, label="Tenant", required=parent is None,
                help_text=f"Not needed when a {parent.verbose_name} is chosen." if parent is not None else "",
            )
        # As Django's get_form does for self.form: declared fields that are read-only are dropped.
        readonly = self.get_readonly_fields(request, obj)
        attrs.update(dict.fromkeys(f for f in readonly if f in base.declared_fields))
        kwargs["form"] = type(base.__name__, (base,), attrs)
        if self.field_labels:
            kwargs["labels"] = {**self.field_labels, **(kwargs.get("labels") or {})}
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if TENANT_CHOICE in fields:
            fields.remove(TENANT_CHOICE)
            fields.insert(0, TENANT_CHOICE)
        return fields

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if self.fieldsets and self.needs_tenant_choice(request, obj):
            fieldsets.insert(0, (None, {"fields": [TENANT_CHOICE]}))
        return fieldsets

    def save_model(self, request, obj, form, change):
        if getattr(obj, "tenant_id", "unset") is None:  # the form's clean sets it; never guess here
            raise ValueError(f"{obj!r} has no tenant")
        super().save_model(request, obj, form, change)

    # lists: a tenant column and filter only for those who see several tenants
    def shows_tenant(self, request) -> bool:
        return has_tenant_field(self.model) and (request.user.is_superuser or len(member_roles(request)) > 1)

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        if self.shows_tenant(request) and "tenant" not in columns:
            columns.append("tenant")
        return columns

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        named = {f[0] if isinstance(f, (list, tuple)) else f for f in filters}
        if self.shows_tenant(request) and "tenant" not in named:
            # Only tenants that occur in the user's rows: never list other tenants' names.
            filters.append(("tenant", admin.RelatedOnlyFieldListFilter))
        return filters

    def get_list_select_related(self, request):
        related = super().get_list_select_related(request)
        if isinstance(related, (list, tuple)) and self.shows_tenant(request):
            return (*related, "tenant")
        return related


class TenantScopedInline(TenantRoles, admin.TabularInline):
    """A tabular inline whose rows take their tenant from the parent object; the parent's tenant
    decides the role. For a stacked one set ``template = "admin/edit_inline/stacked.html"``."""

    form = TenantScopedForm
    extra = 0

    def has_view_permission(self, request, obj=None):
        return self.has_role(request, frozenset(self.read_roles), obj)

    def has_add_permission(self, request, obj=None):
        return self.has_role(request, self.get_add_roles(), obj)

    def has_change_permission(self, request, obj=None):
        return self.has_role(request, frozenset(self.write_roles), obj)

    def has_delete_permission(self, request, obj=None):
        return self.has_role(request, self.get_delete_roles(), obj)

    def get_formset(self, request, obj=None, **kwargs):
        parent_tenant_id = self.tenant_id_of(obj) if obj is not None else None
        kwargs["form"] = type(self.form.__name__, (self.form,), self._form_attrs(request, parent_tenant_id))
        return super().get_formset(request, obj, **kwargs)


class ReadOnlyAdmin(TenantScopedAdmin):
    """History and machine-written rows: listed and read, never added, changed or deleted by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(TenantScopedInline):
    """History shown on its parent's page: nobody adds, changes or deletes it there."""

    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AuditedAdminMixin:
    """Admin creates, changes and deletes of a configuration model go to the tenant's audit trail, with the
    staff user as the actor. "After" is taken once the inlines are saved too (``save_related``), so a
    subclass may add its inline rows to ``audit_values``; ``save_audited`` is where a service saves."""

    def audit_values(self, obj) -> dict:
        return audit_snapshot(obj)

    def save_audited(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)

    def save_model(self, request, obj, form, change):
        request._audit_before = self.audit_values(type(obj).objects.get(pk=obj.pk)) if change else None
        self.save_audited(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj = form.instance
        audit_record(tenant=obj.tenant_id, actor=request.user, action="update" if change else "create", obj=obj,
                     before=getattr(request, "_audit_before", None), after=self.audit_values(obj))

    def delete_model(self, request, obj):
        audit_record(tenant=obj.tenant_id, actor=request.user, action="delete", obj=obj, before=self.audit_values(obj))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:  # one audit entry per row (Django's bulk delete would skip delete_model)
            self.delete_model(request, obj)
