"""Email template previews: rendered for a real account/contact, or with sample data (admin and API)."""

from __future__ import annotations

from datetime import timedelta

from django.template import TemplateSyntaxError
from django.utils import timezone

from . import email as emails
from .models import EmailTemplate


class PreviewError(ValueError):
    """The template cannot be rendered; the message says why."""


SAMPLE = {
    "account": {"id": "00000000-0000-0000-0000-000000000000", "name": "Sample Account", "health_score": 72.5,
                "status": "Active", "risk_level": "Moderate", "arr": 50000.0, "industry": "Software",
                "size": "SMB", "renewal_date": "", "owner_name": "Casey Manager", "owner_email": "csm@example.com"},
    "contact": {"id": 0, "name": "Sam Sample", "first_name": "Sam", "email": "sam@example.com", "role": "Champion",
                "phone": "+15550100"},
    "engagement": {"last_meeting_date": "", "last_engagement_type": "Meeting", "last_engagement_date": "",
                   "next_meeting_date": ""},
    "goals": {"active_goals": 2, "completed_goals": 1, "at_risk_goals": 1, "missed_goals": 0},
    "csm": {"name": "Casey Manager", "email": "csm@example.com"},
}


def sample_context(tenant, custom: dict) -> dict:
    today = timezone.localdate()
    context = emails.email_context(tenant=tenant, custom=custom)
    context.update({key: dict(value) for key, value in SAMPLE.items()})
    context["account"]["renewal_date"] = (today + timedelta(days=90)).isoformat()
    context["engagement"].update(last_meeting_date=(today - timedelta(days=14)).isoformat(),
                                 last_engagement_date=(today - timedelta(days=3)).isoformat(),
                                 next_meeting_date=(today + timedelta(days=7)).isoformat())
    context["unsubscribe_url"] = "https://example.com/unsubscribe/sample"
    return context


def render_preview(template: EmailTemplate, *, account=None, contact=None, custom: dict | None = None) -> dict:
    """The template rendered for an account/contact, or with sample data when neither is given. Declared
    custom variables without a value show as ``[name]``."""
    values = {name: f"[{name}]" for name in emails.declared_names(template.variables)}
    values.update(custom or {})
    if account is None and contact is not None:
        account = contact.account
    try:
        if account is None:
            subject, text, html = emails.render_email(template, sample_context(template.tenant, values))
            return {"subject": subject, "text": text, "html": html, "sample": True}
        return {**emails.preview(template, account=account, contact=contact, custom=values), "sample": False}
    except (TemplateSyntaxError, ValueError) as exc:
        raise PreviewError(f"cannot be rendered: {exc}") from None
