"""Clear errors (DESIGN.md invariant 5): bad input is a 400 naming the field, and nothing is written."""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.utils import timezone

from accounts.models import Account
from tests.accounts.test_api_isolation import snapshot
from tests.factories import (
    AccountFactory, ContactFactory, EngagementFactory, SupportTicketFactory, SurveyResponseFactory, TagFactory,
    UsageMetricFactory, health_score,
)


def acc(tenant) -> str:
    return str(AccountFactory(tenant=tenant).pk)


def parent_cycle(tenant):
    """A is the parent of B; making B the parent of A would close a loop."""
    a = AccountFactory(tenant=tenant)
    b = AccountFactory(tenant=tenant, parent=a)
    return "patch", f"/api/accounts/{a.pk}/", {"parent": str(b.pk)}


def grandparent_cycle(tenant):
    a = AccountFactory(tenant=tenant)
    b = AccountFactory(tenant=tenant, parent=a)
    c = AccountFactory(tenant=tenant, parent=b)
    return "put", f"/api/accounts/{a.pk}/", {"name": a.name, "parent": str(c.pk)}


def own_parent(tenant):
    a = AccountFactory(tenant=tenant)
    return "patch", f"/api/accounts/{a.pk}/", {"parent": str(a.pk)}


def duplicate_usage_day(tenant):
    metric = UsageMetricFactory(account=AccountFactory(tenant=tenant))
    return "post", "/api/usage-metrics/", {"account": str(metric.account_id), "date": metric.date.isoformat()}


def usage_moved_onto_a_taken_day(tenant):
    account = AccountFactory(tenant=tenant)
    taken, other = UsageMetricFactory(account=account), UsageMetricFactory(account=account)
    return "patch", f"/api/usage-metrics/{other.pk}/", {"date": taken.date.isoformat()}


def survey_kind_changed_out_of_scale(tenant):
    survey = SurveyResponseFactory(account=AccountFactory(tenant=tenant), kind="nps", score=8)
    return "patch", f"/api/surveys/{survey.pk}/", {"kind": "csat"}


def ticket_resolved_before_opened(tenant):
    return "post", "/api/tickets/", {"account": acc(tenant), "subject": "X", "opened_at": "2024-05-02T10:00:00Z",
                                     "resolved_at": "2024-05-01T10:00:00Z"}


def ticket_reopened_after_resolution(tenant):
    ticket = SupportTicketFactory(account=AccountFactory(tenant=tenant))
    return "patch", f"/api/tickets/{ticket.pk}/", {"resolved_at": "2001-01-01T00:00:00Z"}


def duplicate_tag(tenant):
    TagFactory(tenant=tenant, name="vip")
    return "post", "/api/tags/", {"name": "vip"}


def renamed_onto_existing_tag(tenant):
    TagFactory(tenant=tenant, name="vip")
    other = TagFactory(tenant=tenant, name="churn-risk")
    return "patch", f"/api/tags/{other.pk}/", {"name": "vip"}


def duplicate_stage(tenant):
    return "post", "/api/journey-stages/", {"name": "Onboarding", "order": 9}


def contact_of_another_account(kind):
    def build(tenant):
        account, elsewhere = AccountFactory(tenant=tenant), ContactFactory(account=AccountFactory(tenant=tenant))
        payload = {"surveys": {"kind": "nps", "score": 7}, "tickets": {"subject": "X"}, "engagements": {"kind": "call"}}
        return "post", f"/api/{kind}/", {"account": str(account.pk), "contact": elsewhere.pk, **payload[kind]}
    return build


def engagement_moved_away_from_its_contact(tenant):
    contact = ContactFactory(account=AccountFactory(tenant=tenant))
    engagement = EngagementFactory(account=contact.account, contact=contact)
    return "patch", f"/api/engagements/{engagement.pk}/", {"account": str(AccountFactory(tenant=tenant).pk)}


def future_score(tenant):
    future = (timezone.now() + datetime.timedelta(days=2)).isoformat()
    return "post", "/api/health-scores/", {"account": acc(tenant), "usage_score": 50, "calculated_at": future}


def bad_page_size(value):
    return lambda tenant: ("get", "/api/accounts/", {"page_size": value})


def post(url, payload):
    return lambda tenant: ("post", url, payload(tenant))


def patch_tenant(payload):
    return lambda tenant: ("patch", "/api/tenant/", payload)


def patch_contact(payload):
    def build(tenant):
        contact = ContactFactory(account=AccountFactory(tenant=tenant))
        return "patch", f"/api/contacts/{contact.pk}/", payload
    return build


CASES = [
    ("nps-11", post("/api/surveys/", lambda t: {"account": acc(t), "kind": "nps", "score": 11}), "score"),
    ("nps-negative", post("/api/surveys/", lambda t: {"account": acc(t), "kind": "nps", "score": -1}), "score"),
    ("csat-0", post("/api/surveys/", lambda t: {"account": acc(t), "kind": "csat", "score": 0}), "score"),
    ("csat-6", post("/api/surveys/", lambda t: {"account": acc(t), "kind": "csat", "score": 6}), "score"),
    ("survey-kind-change", survey_kind_changed_out_of_scale, "score"),
    ("survey-bad-kind", post("/api/surveys/", lambda t: {"account": acc(t), "kind": "ces", "score": 3}), "kind"),
    ("ticket-csat-6", post("/api/tickets/", lambda t: {"account": acc(t), "subject": "X", "csat": 6}), "csat"),
    ("ticket-csat-0", post("/api/tickets/", lambda t: {"account": acc(t), "subject": "X", "csat": 0}), "csat"),
    ("ticket-resolved-before-opened", ticket_resolved_before_opened, "resolved_at"),
    ("ticket-patched-resolved-before-opened", ticket_reopened_after_resolution, "resolved_at"),
    ("ticket-first-response-before-opened", post("/api/tickets/", lambda t: {
        "account": acc(t), "subject": "X", "opened_at": "2024-05-02T10:00:00Z",
        "first_response_at": "2024-05-01T10:00:00Z"}), "first_response_at"),
    ("ticket-bad-priority", post("/api/tickets/", lambda t: {"account": acc(t), "subject": "X", "priority": "p0"}),
     "priority"),
    ("unknown-account", post("/api/contacts/", lambda t: {"account": str(uuid.uuid4()), "name": "X"}), "account"),
    ("malformed-account", post("/api/contacts/", lambda t: {"account": "not-a-uuid", "name": "X"}), "account"),
    ("missing-account", post("/api/notes/", lambda t: {"body": "X"}), "account"),
    ("unknown-tag", post("/api/accounts/", lambda t: {"name": "X", "tag_ids": [987654321]}), "tag_ids"),
    ("bad-status", post("/api/accounts/", lambda t: {"name": "X", "status": "dormant"}), "status"),
    ("bad-goal-status", post("/api/goals/", lambda t: {"account": acc(t), "title": "X", "status": "done"}), "status"),
    ("bad-task-status", post("/api/tasks/", lambda t: {"title": "X", "status": "finished"}), "status"),
    ("negative-arr", post("/api/accounts/", lambda t: {"name": "X", "arr": "-1.00"}), "arr"),
    ("missing-name", post("/api/accounts/", lambda t: {"arr": "10"}), "name"),
    ("parent-cycle", parent_cycle, "parent"),
    ("parent-cycle-two-levels", grandparent_cycle, "parent"),
    ("own-parent", own_parent, "parent"),
    ("usage-duplicate-date", duplicate_usage_day, "date"),
    ("usage-moved-to-taken-date", usage_moved_onto_a_taken_day, "date"),
    ("features-not-a-list", post("/api/usage-metrics/", lambda t: {
        "account": acc(t), "date": "2024-01-01", "features_used": "dashboards"}), "features_used"),
    ("features-an-object", post("/api/usage-metrics/", lambda t: {
        "account": acc(t), "date": "2024-01-01", "features_used": {"dashboards": True}}), "features_used"),
    ("usage-negative", post("/api/usage-metrics/", lambda t: {"account": acc(t), "date": "2024-01-01", "logins": -3}),
     "logins"),
    ("contact-bad-timezone", post("/api/contacts/", lambda t: {
        "account": acc(t), "name": "X", "timezone": "Mars/Olympus"}), "timezone"),
    ("contact-patched-bad-timezone", patch_contact({"timezone": "Europe/Atlantis"}), "timezone"),
    ("contact-bad-email", patch_contact({"email": "not-an-email"}), "email"),
    ("tenant-bad-timezone", patch_tenant({"timezone": "Nowhere/Special"}), "timezone"),
    ("health-no-components", post("/api/health-scores/", lambda t: {"account": acc(t)}), "usage_score"),
    ("health-all-components-null", post("/api/health-scores/", lambda t: {
        "account": acc(t), "usage_score": None, "adoption_score": None}), "usage_score"),
    ("health-score-in-the-future", future_score, "calculated_at"),
    ("survey-contact-of-another-account", contact_of_another_account("surveys"), "contact"),
    ("ticket-contact-of-another-account", contact_of_another_account("tickets"), "contact"),
    ("engagement-contact-of-another-account", contact_of_another_account("engagements"), "contact"),
    ("engagement-moved-away-from-contact", engagement_moved_away_from_its_contact, "contact"),
    ("health-component-101", post("/api/health-scores/", lambda t: {"account": acc(t), "usage_score": 101}),
     "usage_score"),
    ("health-component-negative", post("/api/health-scores/", lambda t: {"account": acc(t), "adoption_score": -5}),
     "adoption_score"),
    ("health-component-not-a-number", post("/api/health-scores/", lambda t: {
        "account": acc(t), "engagement_score": "x"}), "engagement_score"),
    ("bands-not-descending", patch_tenant({"band_healthy": "50", "band_moderate": "60"}), "band_healthy"),
    ("bands-equal", patch_tenant({"band_moderate": "40"}), "band_healthy"),
    ("band-above-100", patch_tenant({"band_healthy": "101"}), "band_healthy"),
    ("weights-all-zero", patch_tenant({"weight_usage": "0", "weight_engagement": "0", "weight_support": "0",
                                       "weight_adoption": "0"}), "weight_usage"),
    ("weight-negative", patch_tenant({"weight_support": "-1"}), "weight_support"),
    ("duplicate-tag", duplicate_tag, "name"),
    ("tag-renamed-to-existing", renamed_onto_existing_tag, "name"),
    ("duplicate-stage", duplicate_stage, "name"),
    ("page-size-word", bad_page_size("lots"), "page_size"),
    ("page-size-zero", bad_page_size("0"), "page_size"),
    ("page-size-negative", bad_page_size("-5"), "page_size"),
    ("limit-word", lambda t: ("get", "/api/contacts/", {"limit": "ten"}), "limit"),
    ("bad-filter-choice", lambda t: ("get", "/api/accounts/", {"risk_level": "doomed"}), "risk_level"),
    ("bad-filter-number", lambda t: ("get", "/api/accounts/", {"health_score_min": "high"}), "health_score_min"),
    ("move-to-unknown-stage", lambda t: ("post", f"/api/accounts/{acc(t)}/move-stage/", {"stage": "Nirvana"}), "stage"),
    ("move-to-unknown-stage-id", lambda t: ("post", f"/api/accounts/{acc(t)}/move-stage/", {"stage": "987654321"}),
     "stage"),
    ("move-to-huge-stage-id", lambda t: ("post", f"/api/accounts/{acc(t)}/move-stage/", {"stage": "9" * 30}), "stage"),
    ("move-to-non-ascii-digit-stage", lambda t: ("post", f"/api/accounts/{acc(t)}/move-stage/", {"stage": "²"}),
     "stage"),
    ("move-without-stage", lambda t: ("post", f"/api/accounts/{acc(t)}/move-stage/", {}), "stage"),
]


@pytest.mark.parametrize("build, field", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_it_rejects_bad_input_naming_the_field(build, field, api, tenant):
    method, url, payload = build(tenant)
    before = snapshot()
    response = getattr(api, method)(url, payload)
    assert response.status_code == 400, (response.status_code, response.content)
    body = response.json()
    assert field in body, body
    messages = body[field] if isinstance(body[field], list) else [body[field]]
    assert all(isinstance(m, str) and m for m in messages), body
    assert snapshot() == before


def test_it_rejects_a_parent_cycle_built_through_the_api(api, tenant):
    a = api.post("/api/accounts/", {"name": "A"}).json()["id"]
    b = api.post("/api/accounts/", {"name": "B", "parent": a}).json()["id"]
    response = api.patch(f"/api/accounts/{a}/", {"parent": b})
    assert response.status_code == 400
    assert "parent" in response.json()
    assert Account.objects.get(pk=a).parent_id is None
    assert str(Account.objects.get(pk=b).parent_id) == a


def test_it_keeps_the_score_history_unchanged_after_a_rejected_score(api, tenant):
    account = AccountFactory(tenant=tenant)
    health_score(account, usage_score=70)
    before = snapshot()
    assert api.post("/api/health-scores/", {"account": str(account.pk), "usage_score": 150}).status_code == 400
    assert snapshot() == before
    account.refresh_from_db()
    assert account.health_score == 70
