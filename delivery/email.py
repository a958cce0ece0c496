"""Email templates (seed 001): variables, validation at save time, rendering, defaults, unsubscribe.

Templates use Django's template language on a context of plain data (never model instances, so a
template cannot call methods or follow relations into other rows)::

    account     id name health_score status risk_level arr industry size renewal_date owner_name owner_email
    contact     id name first_name email role phone
    engagement  last_meeting_date last_engagement_type last_engagement_date next_meeting_date
    goals       active_goals completed_goals at_risk_goals missed_goals
    csm         name email
    tenant      name
    unsubscribe_url
    custom.X    and X itself, for every custom variable the template declares in ``variables``

A variable outside this list is rejected when the template is saved (``email_template_validate``),
naming the field and the variable. ``{% include %}``/``{% extends %}`` are not available.

A/B variants: ``EmailTemplate.variants`` is a list of ``{"name", "weight", "subject"?, "html"?, "text"?}``
(a missing part falls back to the template's own, so ``{"name": "control", "weight": 1}`` is the
template as it is). ``pick_variant(template, key)`` chooses one deterministically from a hash of the
message's idempotency key and the weights (the same key always gets the same variant, so a retried or
re-enqueued send never switches); ``render_for_send`` renders the chosen one and returns what the
outbox records (``template``, ``variant``); ``email_variant_report`` is the split per variant.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.template import Context
from django.utils import timezone
from django.utils.html import strip_tags

from accounts.models import Contact, Engagement, Goal, Tenant
from csplatform.tenancy import tenant_context

from .models import EmailTemplate, Outbox
from .template_checks import (  # noqa: F401  (part of this module's interface: previews, actions, tests)
    HTML_ENGINE, KNOWN, TEXT_ENGINE, TEXT_FIELDS, declared_names, email_template_validate, unknown_variables,
)

MAX_RENDERED = 500_000
DEFAULTS_DIR = Path(settings.BASE_DIR) / "templates" / "emails"

# The default templates every tenant gets on first use (CRM journeys use rescue and winback).
DEFAULT_TEMPLATES = {
    "rescue": {"subject": "Action needed: your payment for {{ account.name }} did not go through",
               "category": "crm", "variables": ["update_url", "discount_code", "discount_percent", "discount_expires_at"]},
    "winback": {"subject": "{{ contact.first_name|default:'Hi' }}, we'd love to have {{ account.name }} back",
                "category": "crm", "variables": ["offer_url", "discount_code", "discount_percent", "discount_expires_at"]},
    "welcome_email": {"subject": "Welcome to {{ tenant.name }}, {{ account.name }}!", "category": "onboarding",
                      "variables": ["product_name"]},
    "health_concern": {"subject": "Checking in on {{ account.name }}", "category": "health", "variables": []},
    "renewal_reminder": {"subject": "Your renewal on {{ account.renewal_date }} is coming up", "category": "renewal",
                         "variables": []},
    # Seed 001's sequences (automation.workflow_templates send them).
    "getting_started": {"subject": "Getting started with {{ product_name|default:tenant.name }}",
                        "category": "onboarding", "variables": ["product_name"]},
    "first_week_checkin": {"subject": "How are things going?", "category": "onboarding", "variables": ["product_name"]},
    "urgent_intervention": {"subject": "Can we help, {{ account.name }}?", "category": "health", "variables": []},
    "renewal_planning": {"subject": "Let's plan your renewal", "category": "renewal", "variables": []},
    "urgent_renewal": {"subject": "Action required: Contract renewal", "category": "renewal", "variables": []},
}


EDITABLE = ("name", "subject", "html", "text", "category", "variables", "variants")


@transaction.atomic
def email_template_save(*, template: EmailTemplate, data: dict) -> EmailTemplate:
    for name, value in data.items():
        if name in EDITABLE:
            setattr(template, name, value)
    email_template_validate(template)
    clash = EmailTemplate.objects.for_tenant(template.tenant_id).filter(name=template.name).exclude(pk=template.pk)
    if clash.exists():
        raise ValidationError({"name": f"a template named '{template.name}' already exists"})
    template.save()
    return template


# --- defaults -----------------------------------------------------------------------------------

def _default_row(tenant_id, name: str) -> EmailTemplate:
    spec = DEFAULT_TEMPLATES[name]
    text_path = DEFAULTS_DIR / f"{name}.txt"
    return EmailTemplate(tenant_id=tenant_id, name=name, subject=spec["subject"], category=spec["category"],
                         variables=list(spec["variables"]), html=(DEFAULTS_DIR / f"{name}.html").read_text(),
                         text=text_path.read_text() if text_path.exists() else "")


def install_default_templates(tenant) -> list[EmailTemplate]:
    """Create the default templates a tenant does not have yet (its own edits are kept)."""
    tenant_id = getattr(tenant, "pk", tenant)
    have = set(EmailTemplate.objects.for_tenant(tenant_id).values_list("name", flat=True))
    created = []
    for name in DEFAULT_TEMPLATES:
        if name not in have:
            created.append(_get_or_install(tenant_id, name))
    return created


def _get_or_install(tenant_id, name: str) -> EmailTemplate:
    try:
        with transaction.atomic():
            row = _default_row(tenant_id, name)
            row.save()
            return row
    except IntegrityError:  # another transaction installed it meanwhile
        return EmailTemplate.objects.for_tenant(tenant_id).get(name=name)


def email_template_get(tenant, ref) -> EmailTemplate | None:
    """A tenant's template by id or name; a default template is installed on first use by name."""
    tenant_id = getattr(tenant, "pk", tenant)
    qs = EmailTemplate.objects.for_tenant(tenant_id)
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        found = qs.filter(pk=int(ref)).first()
        if found is not None:
            return found
    found = qs.filter(name=str(ref)).first()
    if found is None and str(ref) in DEFAULT_TEMPLATES:
        found = _get_or_install(tenant_id, str(ref))
    return found


# --- context and rendering ----------------------------------------------------------------------

def _date(value) -> str:
    return timezone.localtime(value).date().isoformat() if value else ""


def account_context(account) -> dict | None:
    if account is None:
        return None
    owner = account.owner if account.owner_id else None
    return {
        "id": str(account.pk), "name": account.name,
        "health_score": float(account.health_score) if account.health_score is not None else None,
        "status": account.get_status_display(), "risk_level": account.get_risk_level_display(),
        "arr": float(account.arr), "industry": account.industry, "size": account.get_size_display(),
        "renewal_date": account.renewal_date.isoformat() if account.renewal_date else "",
        "owner_name": (owner.get_full_name() or owner.email) if owner else "", "owner_email": owner.email if owner else "",
    }


def contact_context(contact) -> dict | None:
    if contact is None:
        return None
    return {"id": contact.pk, "name": contact.name, "first_name": (contact.name or "").split(" ")[0],
            "email": contact.email, "role": contact.role, "phone": contact.phone}


def engagement_context(account) -> dict:
    if account is None:
        return {}
    now = timezone.now()
    engagements = Engagement.objects.for_tenant(account.tenant_id).filter(account=account)
    last = engagements.filter(occurred_at__lte=now).order_by("-occurred_at").first()
    last_meeting = engagements.filter(kind=Engagement.Kind.MEETING, outcome=Engagement.Outcome.COMPLETED,
                                      occurred_at__lte=now).order_by("-occurred_at").first()
    next_meeting = engagements.filter(kind=Engagement.Kind.MEETING, outcome=Engagement.Outcome.SCHEDULED,
                                      occurred_at__gt=now).order_by("occurred_at").first()
    return {
        "last_engagement_type": last.get_kind_display() if last else "",
        "last_engagement_date": _date(last.occurred_at) if last else "",
        "last_meeting_date": _date(last_meeting.occurred_at) if last_meeting else "",
        "next_meeting_date": _date(next_meeting.occurred_at) if next_meeting else "",
    }


def goals_context(account) -> dict:
    if account is None:
        return {}
    S = Goal.Status
    counts = Goal.objects.for_tenant(account.tenant_id).filter(account=account).aggregate(
        active_goals=models.Count("pk", filter=models.Q(status__in=[S.CREATED, S.AT_RISK])),
        completed_goals=models.Count("pk", filter=models.Q(status=S.ACHIEVED)),
        at_risk_goals=models.Count("pk", filter=models.Q(status=S.AT_RISK)),
        missed_goals=models.Count("pk", filter=models.Q(status=S.MISSED)),
    )
    return counts


UNSUBSCRIBE_SALT = "automation.delivery.unsubscribe"  # the old module path: links in sent emails stay valid


def unsubscribe_token(contact) -> str:
    return signing.dumps({"t": str(contact.tenant_id), "c": contact.pk}, salt=UNSUBSCRIBE_SALT, compress=True)


def unsubscribe_url(contact) -> str:
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/api/unsubscribe/{unsubscribe_token(contact)}/"


def unsubscribe(token: str) -> Contact:
    """Opt the contact named by a signed token out of email (idempotent); raises signing.BadSignature."""
    data = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    tenant = Tenant.objects.get(pk=data["t"])
    with tenant_context(tenant):
        contact = Contact.objects.for_tenant(tenant).get(pk=data["c"])
        if not contact.email_opt_out:
            contact.email_opt_out = True
            contact.save(update_fields=["email_opt_out", "updated_at"])
    return contact


def email_context(*, tenant, account=None, contact=None, custom: dict | None = None) -> dict:
    owner = account.owner if account is not None and account.owner_id else None
    custom = dict(custom or {})
    context = {
        "account": account_context(account), "contact": contact_context(contact),
        "engagement": engagement_context(account), "goals": goals_context(account),
        "csm": {"name": (owner.get_full_name() or owner.email) if owner else "", "email": owner.email if owner else ""},
        "tenant": {"name": getattr(tenant, "name", "")},
        "unsubscribe_url": unsubscribe_url(contact) if contact is not None else "",
        "custom": custom,
    }
    for key, value in custom.items():  # declared custom variables are also usable by their bare name
        context.setdefault(key, value)
    return context


def render_email(template: EmailTemplate, context: dict, subject: str | None = None,
                 variant: dict | None = None) -> tuple[str, str, str]:
    """(subject, text, html) of the template, or of one of its ``variants`` (its parts replacing the
    template's). An explicit ``subject`` (a rule's override) wins over both. The text part falls back
    to the HTML without tags."""
    variant = variant or {}
    html_source = variant.get("html") or template.html
    text_source = variant["text"] if "text" in variant else template.text
    html = HTML_ENGINE.from_string(html_source).render(Context(context, autoescape=True))
    subject_source = subject if subject else (variant.get("subject") or template.subject)
    plain = Context(context, autoescape=False)
    rendered_subject = " ".join(TEXT_ENGINE.from_string(subject_source).render(plain).split())
    if (text_source or "").strip():
        text = TEXT_ENGINE.from_string(text_source).render(Context(context, autoescape=False))
    else:
        text = "\n".join(line.strip() for line in strip_tags(html).splitlines() if line.strip())
    if len(html) + len(text) + len(rendered_subject) > MAX_RENDERED:
        raise ValueError(f"the email renders to more than {MAX_RENDERED} characters")
    return str.__str__(rendered_subject), str.__str__(text), str.__str__(html)


def preview(template: EmailTemplate, *, account=None, contact=None, custom: dict | None = None,
            variant: str | None = None) -> dict:
    """What the template (or its variant named ``variant``) renders to for one account/contact (the
    preview endpoint's and admin's service)."""
    chosen = None
    if variant:
        chosen = next((v for v in template.variants or [] if v.get("name") == variant), None)
        if chosen is None:
            raise ValidationError({"variant": f"the template has no variant '{variant}'"})
    context = email_context(tenant=template.tenant, account=account, contact=contact, custom=custom)
    subject, text, html = render_email(template, context, variant=chosen)
    return {"subject": subject, "text": text, "html": html, "variant": variant or ""}


# --- A/B variants -------------------------------------------------------------------------------

def variant_point(template: EmailTemplate, key: str) -> float:
    """Where ``key`` falls in [0, 1): the first 8 bytes of sha256(template id, key). Uniform, stable
    across processes and releases (unlike ``hash()``), independent between templates."""
    digest = hashlib.sha256(f"{template.pk}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def pick_variant(template: EmailTemplate, key: str) -> dict | None:
    """The variant a send with idempotency key ``key`` gets (None when the template has no variants).
    Variant i is chosen when the key's point falls in its share of the cumulative weights, so a weight
    of 0 pauses a variant and changing one weight moves only the keys at the boundaries it shifts."""
    variants = [v for v in template.variants or [] if isinstance(v, dict) and (v.get("weight", 1) or 0) > 0]
    if not variants:
        return None
    total = float(sum(v.get("weight", 1) for v in variants))
    point, cumulative = variant_point(template, key) * total, 0.0
    for variant in variants:
        cumulative += float(variant.get("weight", 1))
        if point < cumulative:
            return variant
    return variants[-1]


def render_for_send(template: EmailTemplate, context: dict, *, key: str, subject: str | None = None) -> dict:
    """Render one email for sending: picks the variant for the message's idempotency key and returns the
    outbox payload parts plus ``template`` and ``variant`` (``outbox_enqueue`` records both)."""
    variant = pick_variant(template, key)
    rendered_subject, text, html = render_email(template, context, subject, variant=variant)
    return {"subject": rendered_subject, "text": text, "html": html, "template": template.name,
            "variant": (variant or {}).get("name", "")}


def email_variant_report(template: EmailTemplate, *, since=None, until=None) -> list[dict]:
    """The A/B split of a template: per variant its configured weight and share, how many emails were
    sent (written to the outbox), delivered, dead (failed for good) and still pending, and the delivery
    rate. Variants no longer configured but still in the outbox are listed too; emails sent before
    the template had variants, or by a sender that did not pick one, are the variant ``""``."""
    S = Outbox.Status
    qs = Outbox.objects.for_tenant(template.tenant_id).filter(email_template=template, channel=Outbox.Channel.EMAIL)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    counts = {row["variant"]: row for row in qs.values("variant").annotate(
        sent=models.Count("pk"),
        delivered=models.Count("pk", filter=models.Q(status=S.DELIVERED)),
        dead=models.Count("pk", filter=models.Q(status=S.DEAD)),
    ).order_by()}
    configured = [v for v in template.variants or [] if isinstance(v, dict)]
    total_weight = float(sum(v.get("weight", 1) for v in configured)) or 1.0
    report = []
    names = [v["name"] for v in configured] + sorted(set(counts) - {v["name"] for v in configured})
    weights = {v["name"]: v.get("weight", 1) for v in configured}
    for name in names:
        row = counts.get(name, {"sent": 0, "delivered": 0, "dead": 0})
        sent = row["sent"]
        report.append({
            "variant": name, "configured": name in weights, "weight": weights.get(name, 0),
            "share": round(weights.get(name, 0) / total_weight, 4) if name in weights else 0.0,
            "sent": sent, "delivered": row["delivered"], "dead": row["dead"],
            "pending": sent - row["delivered"] - row["dead"],
            "delivery_rate": round(row["delivered"] / sent, 4) if sent else None,
        })
    return report
