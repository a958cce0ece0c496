"""The sample tenant of seed 004 (Acme Corporation) with enough history for every playbook to fire.

``demo_seed()`` is idempotent: rows are found by natural keys and only missing ones are created.
The story: GlobalTech is healthy and growing, its European subsidiary is fine, TechStart Solutions
dropped from 65 to 35, stopped logging in, gave NPS 3 and mentioned cancelling.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from csplatform.tenancy import tenant_context

from . import services, signals
from .models import (
    Account, Contact, Engagement, Goal, HealthScore, JourneyStage, Note, Opportunity, Role, SupportTicket, SurveyResponse,
    Tag, Task, Tenant, UsageMetric,
)

DEMO_SLUG = "acme-corp"
DEMO_ADMIN = ("admin@acme.com", "password123", "Alice", "Administrator")

ACCOUNTS = [
    # name, parent, industry, size, arr, seats, renewal in days, stage path, score history (oldest first)
    {
        "name": "GlobalTech Corporation", "parent": None, "industry": "Technology", "size": "enterprise",
        "arr": Decimal("450000"), "seats": 500, "renewal_days": 200,
        "stages": ["Onboarding", "Adoption", "Value Realization", "Expansion"],
        "scores": [(60, (80, 82, 85, 80)), (30, (84, 85, 86, 84)), (1, (83, 87, 86, 85))],
        "usage": {"active": 420, "dau": 300, "mau": 450, "features": ["dashboards", "reports", "api", "sso",
                                                                         "automation", "integrations"]},
        "nps": [9, 10], "csat": [5, 5], "tags": ["enterprise", "strategic"],
    },
    {
        "name": "GlobalTech Europe", "parent": "GlobalTech Corporation", "industry": "Technology",
        "size": "mid_market", "arr": Decimal("120000"), "seats": 150, "renewal_days": 75,
        "stages": ["Onboarding", "Adoption"],
        "scores": [(45, (70, 70, 75, 65)), (2, (72, 72, 73, 71))],
        "usage": {"active": 95, "dau": 40, "mau": 110, "features": ["dashboards", "reports"]},
        "nps": [7], "csat": [4], "tags": ["enterprise"],
    },
    {
        "name": "TechStart Solutions", "parent": None, "industry": "SaaS", "size": "startup",
        "arr": Decimal("85000"), "seats": 100, "renewal_days": 45,
        "stages": ["Onboarding", "Adoption", "At Risk"],
        "scores": [(40, (70, 65, 60, 62)), (20, (57, 65, 73, 71)), (0, (28, 36, 43, 38))],
        "usage": {"active": 12, "dau": 3, "mau": 18, "features": ["dashboards"]},
        "nps": [3, 4], "csat": [2], "tags": ["smb", "renewal-risk"],
    },
]

COMPONENT_NAMES = ("usage_score", "engagement_score", "support_sentiment_score", "adoption_score")


@transaction.atomic
def demo_seed() -> Tenant:
    tenant = services.tenant_create(slug=DEMO_SLUG, name="Acme Corporation")
    # Everything below is the demo tenant's own rows: write them in its scope (row-level security).
    with tenant_context(tenant):
        _seed_tenant(tenant)
    signals.demo_seeded.send(sender=Tenant, tenant=tenant)
    return tenant


def _seed_tenant(tenant: Tenant) -> None:
    email, password, first, last = DEMO_ADMIN
    membership = services.membership_grant(
        tenant=tenant, email=email, role=Role.TENANT_ADMIN, password=password, first_name=first, last_name=last,
        update_existing=True,
    )
    admin = membership.user  # no API token: a key is shown only once; log in (/api/auth/token/) for one
    stages = {s.name: s for s in JourneyStage.objects.for_tenant(tenant)}
    now = timezone.now()
    today = timezone.localdate()
    by_name: dict[str, Account] = {}
    for spec in ACCOUNTS:
        account = Account.objects.for_tenant(tenant).filter(name=spec["name"]).first()
        if account is None:
            account = services.account_save(account=Account(tenant=tenant), changes={
                "name": spec["name"], "parent": by_name.get(spec["parent"]), "industry": spec["industry"],
                "size": spec["size"], "arr": spec["arr"], "licensed_seats": spec["seats"],
                "renewal_date": today + datetime.timedelta(days=spec["renewal_days"]), "owner": admin,
                "status": Account.Status.AT_RISK if spec["name"] == "TechStart Solutions" else Account.Status.ACTIVE,
            })
        by_name[spec["name"]] = account
        tags = [Tag.objects.get_or_create(tenant=tenant, name=name)[0] for name in spec["tags"]]
        account.tags.add(*tags)
        _seed_journey(account, [stages[n] for n in spec["stages"]], now, admin)
        _seed_scores(account, spec["scores"], now)
        _seed_usage(account, spec["usage"], today)
        _seed_feedback(account, spec, now)
        _seed_chat_ids(account)
    _seed_story(tenant, by_name, admin, now, today)


def _seed_journey(account: Account, path: list[JourneyStage], now, admin) -> None:
    if account.current_stage_id is not None:
        return
    days_per_stage = 30
    for index, stage in enumerate(path):
        at = now - datetime.timedelta(days=days_per_stage * (len(path) - index) - 5)
        services.journey_move_to_stage(account=account, stage=stage, moved_by=admin, reason="demo", at=at)


def _seed_scores(account: Account, history, now) -> None:
    if HealthScore.objects.filter(account=account).exists():
        return
    for days_ago, values in history:
        services.health_score_record(
            account=account, components=dict(zip(COMPONENT_NAMES, values)),
            calculated_at=now - datetime.timedelta(days=days_ago, minutes=5),
        )


def _seed_usage(account: Account, usage: dict, today) -> None:
    """30 days of telemetry; TechStart's logins fade to nothing over the last two weeks."""
    fading = account.name == "TechStart Solutions"
    for days_ago in range(30):
        factor = (days_ago / 30) if fading else 1
        active = int(usage["active"] * (0.5 + factor) if fading else usage["active"])
        UsageMetric.objects.update_or_create(
            account=account, date=today - datetime.timedelta(days=days_ago),
            defaults={
                "tenant_id": account.tenant_id,
                "active_users": active,
                "logins": 0 if fading and days_ago < 14 else active * 2,
                "dau": int(usage["dau"] * (factor if fading else 1)),
                "mau": usage["mau"],
                "session_minutes": active * (3 if fading else 25),
                "features_used": usage["features"],
            },
        )


def _seed_feedback(account: Account, spec: dict, now) -> None:
    if SurveyResponse.objects.filter(account=account).exists():
        return
    contact, _ = Contact.objects.get_or_create(
        tenant=account.tenant, account=account, email=f"champion@{account.name.split()[0].lower()}.example",
        defaults={"name": f"{account.name.split()[0]} Champion", "role": "Champion", "is_primary": True,
                  "timezone": "Europe/Berlin" if "Europe" in account.name else "America/New_York"},
    )
    comments = {3: "Too many bugs lately; we are evaluating a competitor and may cancel at renewal."}
    for i, score in enumerate(spec["nps"]):
        SurveyResponse.objects.create(tenant=account.tenant, account=account, contact=contact, kind="nps",
                                      score=score, comment=comments.get(score, ""),
                                      responded_at=now - datetime.timedelta(days=10 + i * 20))
    for i, score in enumerate(spec["csat"]):
        SurveyResponse.objects.create(tenant=account.tenant, account=account, contact=contact, kind="csat",
                                      score=score, responded_at=now - datetime.timedelta(days=5 + i * 15))


def _seed_chat_ids(account: Account) -> None:
    """Demo contacts have a Telegram chat, so the payment rescue's chat step (with its discount code) reaches
    them; embedded, Telegram messages are printed, not sent (``TELEGRAM_API_URL=console``, docs/crm.md)."""
    for contact in Contact.objects.for_tenant(account.tenant_id).filter(account=account, telegram_chat_id=""):
        contact.telegram_chat_id = str(100_000_000 + contact.pk)  # a private chat's id is the user's (a number)
        contact.save(update_fields=["telegram_chat_id", "updated_at"])


def _seed_story(tenant: Tenant, accounts: dict[str, Account], admin, now, today) -> None:
    techstart, globaltech = accounts["TechStart Solutions"], accounts["GlobalTech Corporation"]
    if SupportTicket.objects.for_tenant(tenant).exists():
        return
    SupportTicket.objects.create(
        tenant=tenant, account=techstart, subject="Data export failing since last release", priority="urgent",
        status="open", opened_at=now - datetime.timedelta(hours=30),
    )
    SupportTicket.objects.create(
        tenant=tenant, account=techstart, subject="Users cannot log in with SSO", priority="high",
        status="resolved", opened_at=now - datetime.timedelta(days=12),
        first_response_at=now - datetime.timedelta(days=11), resolved_at=now - datetime.timedelta(days=6), csat=2,
    )
    SupportTicket.objects.create(
        tenant=tenant, account=globaltech, subject="Question about API rate limits", priority="low",
        status="closed", opened_at=now - datetime.timedelta(days=20),
        first_response_at=now - datetime.timedelta(days=20) + datetime.timedelta(hours=1),
        resolved_at=now - datetime.timedelta(days=19), csat=5,
    )
    Engagement.objects.create(tenant=tenant, account=techstart, user=admin, kind="meeting", outcome="missed",
                              occurred_at=now - datetime.timedelta(days=3), summary="QBR - customer did not join")
    Engagement.objects.create(tenant=tenant, account=globaltech, user=admin, kind="meeting", outcome="completed",
                              occurred_at=now - datetime.timedelta(days=7), summary="Expansion planning for APAC")
    services.goal_save(goal=Goal(tenant=tenant), changes={
        "account": techstart, "title": "Roll out to the sales team", "goal_type": "adoption",
        "status": Goal.Status.AT_RISK, "target_date": today + datetime.timedelta(days=14)})
    services.goal_save(goal=Goal(tenant=tenant), changes={
        "account": globaltech, "title": "Connect the data warehouse", "goal_type": "integration",
        "status": Goal.Status.ACHIEVED, "target_date": today - datetime.timedelta(days=10)})
    Task.objects.create(tenant=tenant, account=techstart, title="Call TechStart's champion about the export bug",
                        assignee=admin, priority="high", due_date=today + datetime.timedelta(days=1))
    Note.objects.create(tenant=tenant, account=techstart, author=admin,
                        body="Champion said leadership talks about churn if the export is not fixed this month.")
    Note.objects.create(tenant=tenant, account=globaltech, author=admin,
                        body="Interested in 200 more seats for the APAC rollout.")
    _seed_opportunities(tenant, accounts, admin, today)


def _seed_opportunities(tenant: Tenant, accounts: dict[str, Account], admin, today) -> None:
    """A renewal for each account (due at its renewal date, worth its ARR) and GlobalTech's APAC expansion."""
    for account in accounts.values():
        Opportunity.objects.create(
            tenant=tenant, account=account, name=f"{account.name} renewal", kind=Opportunity.Kind.RENEWAL,
            stage=Opportunity.Stage.QUALIFICATION, value=account.arr, close_date=account.renewal_date,
            probability=40 if account.status == Account.Status.AT_RISK else 80, owner=admin)
    Opportunity.objects.create(
        tenant=tenant, account=accounts["GlobalTech Corporation"], name="GlobalTech APAC expansion (200 seats)",
        kind=Opportunity.Kind.EXPANSION, stage=Opportunity.Stage.PROPOSAL, value=60000,
        close_date=today + datetime.timedelta(days=45), probability=50, owner=admin,
        last_activity_date=today - datetime.timedelta(days=7))
