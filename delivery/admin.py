"""The delivery admin: what the platform sends (docs/delivery.md).

The outbox is history (practitioners may re-queue a dead message); templates are saved through
``email_template_save``; webhook secrets are never shown after the page that created them; integration
tokens are write-only. Template, secret and credential changes go to the audit trail with the staff user
as actor. Email events (opens, clicks, bounces, complaints) are history; tenant admins may delete a
suppression to let an address be emailed again.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from accounts.models import Account, Contact, Tenant
from csplatform.admin_base import (
    AuditedAdminMixin, ReadOnlyAdmin, TenantScopedAdmin, TenantScopedForm, tenant_ids_with_role,
)
from csplatform.admin_display import PrettyJSONField, json_display, pretty_json
from csplatform.permissions import ADMINS, MANAGERS
from csplatform.tenancy import tenant_context

from . import message_accounts, policy
from .ab_results import variant_results
from .email import email_template_save
from .masking import masked_headers, masked_payload
from .models import EmailEvent, EmailTemplate, IntegrationCredential, Outbox, Suppression, WebhookSecret
from .previews import PreviewError, render_preview
from .secrets import webhook_secret_rotate
from .services import outbox_requeue

_UNKNOWN = object()


class OutboxAccountFilter(admin.SimpleListFilter):
    """Messages about one account (``message_accounts``: through the run or journey step that wrote them)."""

    title = "account"
    parameter_name = "account"

    def lookups(self, request, model_admin):
        accounts = model_admin.scope_queryset(request, Account.objects.all()).select_related("tenant")
        several = model_admin.shows_tenant(request)
        return [(str(a.pk), f"{a.name} ({a.tenant.name})" if several else a.name) for a in accounts.order_by("name")]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        try:
            account = Account.objects.filter(pk=self.value())
            account.exists()  # a malformed id fails here, not while the page renders
        except (ValueError, ValidationError):
            return queryset.none()
        return queryset.filter(message_accounts.about(account))


def message_words(message: Outbox) -> str:
    """A message as a CSM names it: its subject, else its channel and target (never its id)."""
    subject = message.payload.get("subject") if isinstance(message.payload, dict) else None
    if subject:
        return f"“{Truncator(str(subject)).chars(80)}” to {Truncator(message.target).chars(60)}"
    return f"{message.get_channel_display()} to {Truncator(message.target).chars(60)}"


class TimeFilter(admin.DateFieldListFilter):
    """The date filter of a field named ``at``: "By time", not "By at"."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = "time"


class OutboxChangeList(ChangeList):
    """Finds the account of each message of the page at once (one query per writer, not per row)."""

    def get_results(self, request):
        super().get_results(request)
        found = message_accounts.accounts_of(list(self.result_list))
        for message in self.result_list:
            message._account = found.get(message.pk)


@admin.register(Outbox)
class OutboxAdmin(ReadOnlyAdmin):
    """Outgoing messages: read-only; tenant admins and practitioners may re-queue dead or failed ones."""

    write_roles = frozenset()
    requeue_roles = MANAGERS
    tenant_parent_field = None
    deleted_with_parent = True
    # Fits a 1280 px window (tests/browser/test_changelist_widths.py): the message ID (searchable, and on the
    # message's page) gives its room to the columns a CSM reads; the time opens the message.
    list_display = ("created_at", "account_link", "channel", "short_target", "status", "attempts", "last_code",
                    "next_attempt_at", "run_link")
    list_display_links = ("created_at",)
    list_filter = ("status", "channel", OutboxAccountFilter, "created_at")
    search_fields = ("target", "message_id", "idempotency_key")
    search_help_text = "Account name, target (URL, address, channel), message ID or idempotency key."
    date_hierarchy = "created_at"
    actions = ("requeue",)
    fieldsets = (
        (None, {"fields": ("message_ref", "account_link", "channel", "method", "target", "status", "run_link", "step",
                           "idempotency_key")}),
        ("Attempts", {"fields": ("attempts", "max_attempts", "next_attempt_at", "last_attempt_at", "delivered_at",
                                 "last_status_code", "last_response_text", "error", "retry_policy_pretty")}),
        ("Message", {"fields": ("headers_masked", "payload_masked")}),
        ("Timing", {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = ("message_ref", "account_link", "channel", "method", "target", "status", "run_link", "step",
                       "idempotency_key",
                       "attempts", "max_attempts", "next_attempt_at", "last_attempt_at", "delivered_at",
                       "last_status_code", "last_response_text", "error", "retry_policy_pretty", "headers_masked",
                       "payload_masked", "created_at", "updated_at")

    def has_requeue_permission(self, request, obj=None):
        return self.has_role(request, frozenset(self.requeue_roles), obj)

    def get_changelist(self, request, **kwargs):
        return OutboxChangeList

    def change_view(self, request, object_id, form_url="", extra_context=None):
        message = self.get_object(request, unquote(object_id))
        if message is not None:  # the page names the message in words, not by its id
            account = message_accounts.accounts_of([message]).get(message.pk)
            about = f", about {account.name}" if account is not None else ""
            extra_context = {"subtitle": f"{message_words(message)}{about} ({message.get_status_display()})",
                             **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="Message ID", ordering="message_id")
    def message_ref(self, obj):
        return obj.message_id

    def get_search_results(self, request, queryset, search_term):
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if not term:
            return found, may_have_duplicates
        accounts = self.scope_queryset(request, Account.objects.filter(name__icontains=term))
        return found | queryset.filter(message_accounts.about(accounts)), may_have_duplicates

    @admin.display(description="Account")
    def account_link(self, obj):
        account = getattr(obj, "_account", _UNKNOWN)
        if account is _UNKNOWN:  # the detail page: one message
            account = message_accounts.accounts_of([obj]).get(obj.pk)
        if account is None:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:accounts_account_change", args=[account.pk]),
                           account.name)

    @admin.display(description="Target", ordering="target")
    def short_target(self, obj):
        return Truncator(obj.target).chars(40)

    @admin.display(description="Last code", ordering="last_status_code")
    def last_code(self, obj):
        return obj.last_status_code or "-"

    @admin.display(description="Run", ordering="run_id")
    def run_link(self, obj):
        if obj.run_id is None:
            return "-"
        return format_html('<a href="{}">#{}</a>', reverse("admin:automation_run_change", args=[obj.run_id]),
                           obj.run_id)

    @admin.display(description="Step")
    def step(self, obj):
        return f"#{obj.run_step_id} (see the run)" if obj.run_step_id else "-"

    @admin.display(description="Last response")
    def last_response_text(self, obj):
        if not obj.last_response:
            return "-"
        return format_html('<pre style="margin:0;white-space:pre-wrap;max-width:60em">{}</pre>', obj.last_response)

    retry_policy_pretty = json_display("retry_policy", "Retry policy")

    @admin.display(description="Headers (secrets masked)")
    def headers_masked(self, obj):
        return pretty_json(masked_headers(obj.headers))

    @admin.display(description="Payload")
    def payload_masked(self, obj):
        return pretty_json(masked_payload(obj.payload))

    @admin.action(description="Re-queue (dead or failed: fresh attempts, same message id)", permissions=["requeue"])
    def requeue(self, request, queryset):
        done, refused, skipped = [], [], []
        for message in queryset:
            if not self.has_requeue_permission(request, message):
                refused.append(message.message_id)
            elif message.status not in (Outbox.Status.DEAD, Outbox.Status.FAILED):
                skipped.append(f"{message.message_id} ({message.status})")
            else:
                outbox_requeue(message)
                done.append(message.message_id)
        if done:
            self.message_user(request, f"Re-queued {len(done)} message(s): {', '.join(done)}.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Only dead or failed messages are re-queued; left as they were: "
                                       f"{', '.join(skipped)}.", messages.WARNING)
        if refused:
            self.message_user(request, f"Your role does not allow re-queueing: {', '.join(refused)}.",
                              messages.WARNING)


# --- email templates --------------------------------------------------------------------------------

PREVIEW_PAGE = "admin/delivery/email_template_preview.html"


class PreviewForm(forms.Form):
    account = forms.ModelChoiceField(queryset=Account.objects.none(), required=False,
                                     help_text="Blank: sample data.")
    contact = forms.ModelChoiceField(queryset=None, required=False, help_text="Optional; one of the account's.")
    custom = forms.JSONField(required=False, help_text='Values of custom variables, e.g. {"offer": "20% off"}.')

    def __init__(self, *args, template: EmailTemplate, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = Account.objects.for_tenant(template.tenant_id).order_by("name")
        self.fields["contact"].queryset = Contact.objects.for_tenant(template.tenant_id).order_by("name")

    def clean(self):
        cleaned = super().clean()
        account, contact = cleaned.get("account"), cleaned.get("contact")
        if account is not None and contact is not None and contact.account_id != account.pk:
            self.add_error("contact", "This contact does not belong to the account.")
        if cleaned.get("custom") is not None and not isinstance(cleaned["custom"], dict):
            self.add_error("custom", "must be a JSON object ({...})")
        return cleaned


def _verdict(significance: dict | None) -> str:
    if not significance:
        return "-"
    word = "significant" if significance["significant"] else "not significant"
    return f"{significance['metric']}: {word} (p = {significance['p_value']:.3f})"


@admin.register(EmailTemplate)
class EmailTemplateAdmin(AuditedAdminMixin, TenantScopedAdmin):
    """Tenant admins write (through ``email_template_save``); everyone reads and previews."""

    write_roles = ADMINS
    tenant_parent_field = None
    list_display = ("name", "category", "subject", "updated_at", "preview_link")
    list_filter = ("category",)
    search_fields = ("name", "subject")
    formfield_overrides = {models.JSONField: {"form_class": PrettyJSONField}}
    actions = ("preview_selected",)
    fields = ("name", "category", "subject", "html", "text", "variables", "variants", "ab_results", "preview_link",
              "created_at", "updated_at")
    readonly_fields = ("ab_results", "preview_link", "created_at", "updated_at")
    field_labels = {"html": "HTML", "text": "Plain text"}

    @admin.display(description="A/B results")
    def ab_results(self, obj):
        """Per variant: sent, delivered, opened, clicked, converted, and the test against the control."""
        rows = variant_results(obj) if obj is not None and obj.pk is not None else []
        if not rows:
            return "No emails sent from this template yet."
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (row["variant"] or "(none)", row["sent"], row["delivered"], row["opened"], row["clicked"], row["converted"],
             _verdict(row["significance"])) for row in rows))
        head = format_html("<tr>{}</tr>", format_html_join("", "<th>{}</th>", ((h,) for h in (
            "Variant", "Sent", "Delivered", "Opened", "Clicked", "Converted", "Against the control"))))
        return format_html("<table>{}{}</table>", head, body)

    @admin.display(description="Preview")
    def preview_link(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        address = reverse("admin:delivery_emailtemplate_preview", args=[obj.pk])
        return format_html('<a href="{}">Preview</a>', address)

    def save_audited(self, request, obj, form, change):

        email_template_save(template=obj, data={})  # the form has set the fields; the service checks and saves

    @admin.action(description="Preview", permissions=["change"])
    def preview_selected(self, request, queryset):
        first = queryset.order_by("name", "pk").first()
        if first is not None:
            return HttpResponseRedirect(reverse("admin:delivery_emailtemplate_preview", args=[first.pk]))
        return None

    def get_urls(self):
        preview = path("<path:object_id>/preview/", self.admin_site.admin_view(self.preview_view),
                       name="delivery_emailtemplate_preview")
        return [preview, *super().get_urls()]

    def preview_view(self, request, object_id):
        template = self.get_object(request, object_id)
        if template is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, template):  # rendering is for those who may edit it
            raise PermissionDenied
        form = PreviewForm(request.GET or None, template=template)
        result, error = None, ""
        if not request.GET or form.is_valid():
            data = form.cleaned_data if request.GET else {}
            with tenant_context(template.tenant):
                try:
                    result = render_preview(template, account=data.get("account"),
                                                            contact=data.get("contact"), custom=data.get("custom"))
                except PreviewError as exc:
                    error = str(exc)
        context = {**self.admin_site.each_context(request), "opts": self.opts, "template": template, "form": form,
                   "title": f"Preview '{template}'", "result": result, "error": error}
        return TemplateResponse(request, PREVIEW_PAGE, context)


# --- webhook secrets --------------------------------------------------------------------------------

NEW_SECRET_PAGE = "admin/delivery/webhook_secret_rotate.html"

SECRET_CHANGELIST = "admin/delivery/webhook_secret_change_list.html"


class RotateForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=None)
    overlap_hours = forms.FloatField(initial=24, min_value=0, max_value=24 * 7,
                                     help_text="How long the current secrets keep signing.")

    def __init__(self, *args, tenants, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].queryset = tenants
        if tenants.count() == 1:
            self.fields["tenant"].initial = tenants.first().pk


@admin.register(WebhookSecret)
class WebhookSecretAdmin(ReadOnlyAdmin):
    """Tenant admins only. A secret is shown once, on the page that rotated it; afterwards only its fingerprint."""

    read_roles = ADMINS
    write_roles = ADMINS
    tenant_parent_field = None
    list_display = ("fingerprint", "active", "created_at", "expires_at")
    list_display_links = None
    list_filter = ("expires_at",)
    actions = ("rotate_for_tenant",)
    change_list_template = SECRET_CHANGELIST

    def has_rotate_permission(self, request, obj=None):
        return self.has_role(request, frozenset(self.write_roles), obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Nothing more to see than the list (and the detail page would name the secret in its title).
        return HttpResponseRedirect(reverse("admin:delivery_webhooksecret_changelist"))

    def history_view(self, request, object_id, extra_context=None):
        return HttpResponseRedirect(reverse("admin:delivery_webhooksecret_changelist"))

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_rotate": self.has_rotate_permission(request)}
        return super().changelist_view(request, extra_context)

    @admin.display(description="Secret (fingerprint)")
    def fingerprint(self, obj):
        return obj.fingerprint

    @admin.display(description="Active", boolean=True)
    def active(self, obj):
        return obj.is_active

    def _rotate(self, request, tenants, overlap_hours: float):
        created = []
        for tenant in tenants:
            with tenant_context(tenant):
                new = webhook_secret_rotate(tenant, overlap=timedelta(hours=overlap_hours),
                                                            actor=request.user)
            created.append({"tenant": tenant, "secret": new.secret,
                            "fingerprint": new.fingerprint,
                            "expires": timezone.now() + timedelta(hours=overlap_hours)})
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "New webhook secret",
                   "created": created}
        response = TemplateResponse(request, NEW_SECRET_PAGE, context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Rotate (new secret for their tenants; the current ones expire in 24 h)",
                  permissions=["rotate"])
    def rotate_for_tenant(self, request, queryset):
        ids = {s.tenant_id for s in queryset if self.has_rotate_permission(request, s)}
        if not ids:
            self.message_user(request, "Your role does not allow rotating these secrets.", messages.WARNING)
            return None
        return self._rotate(request, Tenant.objects.filter(pk__in=ids).order_by("name"), 24)

    def get_urls(self):
        rotate = path("rotate/", self.admin_site.admin_view(self.rotate_view), name="delivery_webhooksecret_rotate")
        return [rotate, *super().get_urls()]

    def rotate_view(self, request):
        if not self.has_rotate_permission(request):
            raise PermissionDenied
        tenants = Tenant.objects.order_by("name")
        if not request.user.is_superuser:
            tenants = tenants.filter(pk__in=tenant_ids_with_role(request, self.write_roles))
        form = RotateForm(request.POST or None, tenants=tenants)
        if request.method == "POST" and form.is_valid():
            return self._rotate(request, [form.cleaned_data["tenant"]], form.cleaned_data["overlap_hours"])
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Rotate webhook secret",
                   "form": form}
        return TemplateResponse(request, NEW_SECRET_PAGE, context)


# --- integration credentials ------------------------------------------------------------------------

class IntegrationCredentialForm(TenantScopedForm):
    token = forms.CharField(required=False, max_length=500, strip=True,
                            widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
                            help_text="Write-only: never shown. Leave blank to keep the current token.")

    def clean_token(self):
        token = self.cleaned_data.get("token")
        if token:
            return token
        if self.instance.pk is None:
            raise ValidationError("This field is required.")
        return self.instance.token

    def clean_base_url(self):
        value = self.cleaned_data.get("base_url")
        if value:
            try:
                policy.check_static(value)
            except ValueError as exc:
                raise ValidationError(str(exc)) from None
        return value


@admin.register(IntegrationCredential)
class IntegrationCredentialAdmin(AuditedAdminMixin, TenantScopedAdmin):
    """Tenant admins only; the token is write-only."""

    form = IntegrationCredentialForm
    read_roles = ADMINS
    write_roles = ADMINS
    tenant_parent_field = None
    list_display = ("integration", "base_url_column", "has_token", "updated_at")
    list_filter = ("integration",)
    field_labels = {"base_url": "Base URL"}
    formfield_overrides = {models.JSONField: {"form_class": PrettyJSONField},
                           models.URLField: {"assume_scheme": "https"}}
    fields = ("integration", "base_url", "token", "config", "created_at", "updated_at")
    readonly_fields = ("created_at", "updated_at")

    @admin.display(description="Token", boolean=True)
    def has_token(self, obj):
        return bool(obj.token)

    @admin.display(description="Base URL", ordering="base_url")
    def base_url_column(self, obj):
        return obj.base_url or "-"



@admin.register(EmailEvent)
class EmailEventAdmin(ReadOnlyAdmin):
    """Opens, clicks, bounces and complaints of the tenant's emails."""

    tenant_parent_field = None
    list_display = ("kind", "email", "contact", "message_link", "link", "when")
    list_filter = ("kind", ("at", TimeFilter))
    search_fields = ("email", "url", "message__message_id", "contact__name")
    date_hierarchy = "at"
    list_select_related = ("message", "contact")
    readonly_fields = ("kind", "email", "contact", "message_link", "link", "when", "details")
    fields = readonly_fields

    @admin.display(description="Message", ordering="message")
    def message_link(self, obj):
        if obj.message is None:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:delivery_outbox_change", args=[obj.message_id]),
                           message_words(obj.message))

    @admin.display(description="Link followed", ordering="url")
    def link(self, obj):
        return Truncator(obj.url).chars(80) or "-"

    @admin.display(description="Time", ordering="at")
    def when(self, obj):
        return obj.at

    details = json_display("meta", "Details")


@admin.register(Suppression)
class SuppressionAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    """Addresses the tenant no longer emails; deleting one (tenant admins, audited) allows it again."""

    delete_roles = ADMINS
    tenant_parent_field = None
    list_display = ("email", "reason", "created_at")
    list_filter = ("reason", "created_at")
    search_fields = ("email",)
    readonly_fields = ("email", "reason", "detail", "created_at")
    fields = readonly_fields

    def has_delete_permission(self, request, obj=None):
        return self.has_role(request, self.get_delete_roles(), obj)
