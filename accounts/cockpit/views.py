"""The cockpit's pages: the admin home (``site.CockpitAdminSite.index``) and the customer 360
(``/admin/accounts/account/<id>/360/``, routed by ``AccountAdmin.get_urls``).

Which tenant and role: a member reads the tenant they pick (``?tenant=<slug>``, default their first), with
their role there; a superuser acts as a tenant admin of any tenant. The 360 finds the account through the
account admin's queryset (the tenants the user may read), so another tenant's account is a 404. Actions post
to the 360 URL (CSRF-protected by the admin) and go through the services; a role that may not act gets 403.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from csplatform.admin_base import member_roles

from ..models import Account, Role, Tenant
from . import customer, home, sources
from .timeline import parse_before, timeline_page


def _tenants(request) -> list[Tenant]:
    if request.user.is_superuser:
        return list(Tenant.objects.order_by("name"))
    return list(Tenant.objects.filter(pk__in=list(member_roles(request))).order_by("name"))


def role_in(request, tenant_id) -> str | None:
    """The user's role in a tenant; superusers act as tenant admins everywhere."""
    if request.user.is_superuser:
        return Role.TENANT_ADMIN
    return member_roles(request).get(tenant_id)


def home_context(request) -> dict:
    """The cockpit part of the admin home (empty for a user without any tenant)."""
    tenants = _tenants(request)
    if not tenants:
        return {}
    tenant = next((t for t in tenants if t.slug == request.GET.get("tenant")), tenants[0])
    role = role_in(request, tenant.pk)
    mine = {"mine": True, "all": False}.get(request.GET.get("book"), role != Role.TENANT_ADMIN)
    book = home.Book(tenant=tenant, user=request.user, role=role, mine=mine)
    return {"cockpit": home.home(book), "cockpit_tenants": tenants if len(tenants) > 1 else [],
            "cockpit_role": Role(role).label}


def _account(request, object_id, model_admin):
    """The account, if the user may read it: the account admin's queryset holds only their tenants' accounts."""
    accounts = model_admin.get_queryset(request).select_related("tenant", "owner", "current_stage", "parent")
    try:
        account = accounts.get(pk=object_id)
    except (Account.DoesNotExist, ValidationError, ValueError):
        raise Http404("No such account.") from None
    if not model_admin.has_view_permission(request, account):
        raise Http404("No such account.")
    return account


def account_360(request, object_id, model_admin):
    account = _account(request, object_id, model_admin)
    role = role_in(request, account.tenant_id)
    readable = sources.readable(role)
    offered = sorted((a for s in readable for a in s.actions), key=lambda a: a.order)
    allowed = [a for a in offered if role in a.roles]
    posted, posted_form = None, None
    if request.method == "POST":
        posted = next((a for a in offered if a.key == request.POST.get("action")), None)
        if posted is None or posted not in allowed:
            raise PermissionDenied("Your role in this tenant does not allow this.")
        posted_form = posted.form(account, request.user, request.POST)
        if posted_form.is_valid():
            try:
                done = posted.perform(posted_form, account, request.user)
            except ValidationError as exc:
                posted_form.add_error(None, exc.messages)
            else:
                messages.success(request, done)
                return HttpResponseRedirect(reverse("admin:accounts_account_360", args=[account.pk]) + "#timeline")
    now = timezone.now()
    today = timezone.localdate(now)
    kinds = set(request.GET.getlist("kind"))
    page = timeline_page(account, role=role, kinds=kinds, before=parse_before(request.GET.get("before")))
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts, "title": account.name, "subtitle": "Customer 360", "account": account,
        "role_label": Role(role).label,
        "can_edit": model_admin.has_change_permission(request, account),
        "header": customer.header(account, today), "why": customer.why(account, now),
        "usage": customer.usage(account, today), "feedback": customer.feedback(account),
        "upcoming": customer.upcoming(account, role=role, now=now), "hierarchy": customer.hierarchy(account),
        "timeline": page, "timeline_query": _kind_query(page.chosen),
        "actions": [{"action": a, "form": posted_form if a is posted else a.form(account, request.user)}
                    for a in allowed],
        "posted": posted.key if posted else "",
    }
    return TemplateResponse(request, "admin/cockpit/customer_360.html", context)


def _kind_query(chosen: set[str]) -> str:
    return "".join(f"&kind={key}" for key in sorted(chosen))
