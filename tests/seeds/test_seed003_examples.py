"""Seed 003's examples, posted as written to ``/api/event-triggers``: only ids (templates, workflows, users),
model names (``App\\Models\\Deal`` is our opportunity) and unreachable URLs (a local receiver stands in for
Slack and the billing system) are mapped. Each test is named after the example and runs it end to end."""

from __future__ import annotations

import copy
import datetime

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import Contact, Membership, Opportunity, Role, Task
from automation import scheduling
from automation.models import Run
from delivery import services as delivery
from tests.factories import (
    AccountFactory, ContactFactory, EmailTemplateFactory, MembershipFactory, OpportunityFactory, WorkflowFactory,
)

pytestmark = pytest.mark.django_db

TRIGGERS = "/api/event-triggers"


def post(api, body: dict) -> dict:
    response = api.post(TRIGGERS, body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def actions(body: dict) -> list:
    return body["action_configuration"]["actions"]


@pytest.fixture
def team(tenant):
    """A CSM who owns Globex, a sales manager (tenant admin) and Globex's primary contact."""
    csm = MembershipFactory(tenant=tenant, role=Role.PRACTITIONER, user__email="csm@vendor.test").user
    manager = MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN, user__email="manager@vendor.test").user
    globex = AccountFactory(tenant=tenant, name="Globex", owner=csm, employee_count=120, industry="technology")
    ada = ContactFactory(account=globex, name="Ada Lovelace", email="ada@globex.test", is_primary=True)
    return {"csm": csm, "manager": manager, "globex": globex, "ada": ada}


@pytest.fixture
def welcome(tenant):
    return EmailTemplateFactory(tenant=tenant, name="welcome", subject="Welcome {{ contact.name }}")


# --- 1. Model-based triggers: "New Contact Welcome Sequence" -----------------------------------------------

NEW_CONTACT = {
    "name": "New Contact Welcome Sequence",
    "description": "Send welcome email and create follow-up task",
    "trigger_type": "model_created",
    "model_type": "App\\Models\\Contact",
    "trigger_conditions": [{"field": "source", "operator": "equals", "value": "website_form"}],
    "action_configuration": {"actions": [
        {"type": "send_email", "template_id": 1, "recipient": "entity_email"},
        {"type": "create_task", "title": "Follow up with new contact", "due_days": 1, "assigned_to": "auto"},
    ]},
    "is_active": True,
}


def test_new_contact_welcome_sequence(api, tenant, team, welcome, on_commit):
    body = copy.deepcopy(NEW_CONTACT)
    actions(body)[0]["template_id"] = welcome.pk
    post(api, body)
    with on_commit():
        created = api.post("/api/contacts/", {"account": str(team["globex"].pk), "name": "Grace Hopper",
                                              "email": "grace@globex.test", "source": "website_form"}, format="json")
        assert created.status_code == 201
        api.post("/api/contacts/", {"account": str(team["globex"].pk), "name": "Imported",
                                    "email": "imp@globex.test", "source": "import"}, format="json")
    [sent] = mail.outbox
    assert sent.to == ["grace@globex.test"] and sent.subject == "Welcome Grace Hopper"
    task = Task.objects.get()
    assert (task.title, task.assignee, task.due_date) == (
        "Follow up with new contact", team["csm"], timezone.localdate() + datetime.timedelta(days=1))


# --- 2. Field change triggers: "Deal Negotiation Alert" --------------------------------------------------

def negotiation_alert(url: str) -> dict:
    return {
        "name": "Deal Negotiation Alert",
        "trigger_type": "field_changed",
        "model_type": "App\\Models\\Deal",
        "trigger_conditions": [
            {"field": "stage", "operator": "changed_to", "value": "negotiation"},
            {"field": "value", "operator": "greater_than", "value": 50000},
        ],
        "action_configuration": {"actions": [
            {"type": "webhook", "url": url, "method": "POST",
             "headers": {"Authorization": "Bearer {slack_token}"},
             "body": {"channel": "#sales-alerts", "text": "High-value deal {{entity.name}} entered negotiation phase!"}},
            {"type": "assign_to_user", "user_id": "sales_manager"},
        ]},
        "is_active": True,
    }


def test_deal_negotiation_alert(api, tenant, team, receiver, on_commit):
    body = post(api, negotiation_alert(receiver.url + "/api/chat.postMessage"))
    assert body["model_type"] == "opportunity"
    assert body["trigger_config"]["fields"][:1] == ["stage"]  # watched because a condition names it
    big = OpportunityFactory(account=team["globex"], name="Globex FY27", stage="proposal", value=60000)
    small = OpportunityFactory(account=team["globex"], name="Globex add-on", stage="proposal", value=9000)
    with on_commit():
        for deal in (big, small):
            assert api.patch(f"/api/opportunities/{deal.pk}/", {"stage": "negotiation"}, format="json").status_code == 200
        api.patch(f"/api/opportunities/{big.pk}/", {"probability": 80}, format="json")  # not a stage change
    [request] = receiver.requests
    assert receiver.json() == {"channel": "#sales-alerts", "text": "High-value deal Globex FY27 entered negotiation phase!"}
    assert request["headers"]["authorization"] == "Bearer {slack_token}"
    big.refresh_from_db()
    assert Membership.objects.get(tenant=tenant, user=big.owner).role == Role.TENANT_ADMIN  # a sales manager
    assert list(Run.objects.filter(status="success").values_list("subject_id", flat=True)) == [str(big.pk)]


# --- 3. Time-based triggers: "Stalled Deal Daily Reminder" -----------------------------------------------

STALLED = {
    "name": "Stalled Deal Daily Reminder",
    "trigger_type": "time_based",
    "model_type": "App\\Models\\Deal",  # mapped: the example's rule reads deals
    "trigger_conditions": [
        {"field": "updated_at", "operator": "less_than", "value": "7 days ago"},
        {"field": "stage", "operator": "not_in", "value": ["won", "lost", "closed"]},
    ],
    "action_configuration": {"schedule": "daily", "actions": [
        {"type": "send_email", "template_id": 5, "recipient": "assigned_user"},
    ]},
    "is_active": True,
}


def test_stalled_deal_daily_reminder(api, tenant, team, welcome):
    body = copy.deepcopy(STALLED)
    actions(body)[0]["template_id"] = welcome.pk
    rule = post(api, body)
    assert rule["trigger_config"]["check_every"] == "1d"
    stalled = OpportunityFactory(account=team["globex"], name="Stalled", stage="proposal", owner=team["csm"])
    OpportunityFactory(account=team["globex"], name="Won", stage="won", owner=team["csm"])
    OpportunityFactory(account=team["globex"], name="Fresh", stage="proposal", owner=team["csm"])
    Opportunity.objects.exclude(name="Fresh").update(updated_at=timezone.now() - datetime.timedelta(days=9))
    assert scheduling.run_scheduled_rules(timezone.now()).runs == 1
    delivery.deliver()
    [sent] = mail.outbox
    assert sent.to == ["csm@vendor.test"]
    assert Run.objects.get().subject_id == str(stalled.pk)


# --- 4. External API triggers: "Marketing Qualified Lead" ------------------------------------------------

def test_marketing_qualified_lead(api, client, tenant, team):
    follow_up = WorkflowFactory(tenant=tenant, name="MQL follow-up", trigger_type="manual", model_type="",
                                actions=[{"type": "create_note", "config": {"body": "MQL: {{ contact.name }}"}}])
    body = {
        "name": "Marketing Qualified Lead",
        "trigger_type": "webhook",
        "model_type": "App\\Models\\Contact",  # mapped: the lead the body's email points at
        "trigger_conditions": [
            {"field": "score", "operator": "greater_than", "value": 80},
            {"field": "source", "operator": "equals", "value": "marketing_automation"},
        ],
        "action_configuration": {"actions": [
            {"type": "update_field", "field": "status", "value": "marketing_qualified"},
            {"type": "trigger_workflow", "workflow_id": follow_up.pk},
        ]},
        "is_active": True,
    }
    rule = post(api, body)
    hook = rule["webhook_url"]
    for score in (85, 40):
        response = client.post(hook, {"email": "ada@globex.test", "score": score, "source": "marketing_automation"},
                               content_type="application/json")
        assert response.status_code in (200, 201, 202), response.content
    team["ada"].refresh_from_db()
    assert team["ada"].status == Contact.Status.MARKETING_QUALIFIED
    assert Run.objects.filter(workflow_id=follow_up.pk, status="success").count() == 1


# --- Usage example 1: "Automatic Lead Qualification" ------------------------------------------------------

def test_automatic_lead_qualification(api, tenant, team, welcome, on_commit, settings):
    senior = MembershipFactory(tenant=tenant, role=Role.PRACTITIONER, user__email="senior@vendor.test").user
    body = {
        "name": "Automatic Lead Qualification",
        "description": "Qualify leads based on engagement and company data",
        "trigger_type": "field_changed",
        "model_type": "App\\Models\\Contact",
        "trigger_conditions": [
            {"field": "engagement_score", "operator": "greater_than", "value": 7},
            {"field": "company.employee_count", "operator": "greater_than", "value": 50},
        ],
        "action_configuration": {"actions": [
            {"type": "update_field", "field": "status", "value": "qualified"},
            {"type": "add_tag", "tag": "hot-lead"},
            {"type": "assign_to_user", "user_id": "senior_sales_rep"},
            {"type": "send_email", "template_id": welcome.pk, "recipient": "assigned_user"},
            {"type": "create_task", "title": "Contact qualified lead {{entity.full_name}}", "due_days": 1,
             "priority": "high"},
        ]},
        "delay_minutes": 5,
        "is_active": True,
    }
    post(api, body)
    lead = ContactFactory(account=team["globex"], name="Grace Hopper", status="lead", engagement_score=3)
    with on_commit():
        api.patch(f"/api/contacts/{lead.pk}/", {"engagement_score": 9}, format="json")
    assert Task.objects.count() == 0  # waits its delay_minutes
    scheduling.run_due_runs(timezone.now() + datetime.timedelta(minutes=6))
    lead.refresh_from_db()
    assert lead.status == "qualified" and list(lead.tags.values_list("name", flat=True)) == ["hot-lead"]
    task = Task.objects.get()
    assert task.title == "Contact qualified lead Grace Hopper" and task.priority == "high"
    assert Run.objects.get(status="success").result.get("failed_steps") == []
    assert senior is not None


# --- Usage example 2: "Deal Risk Alert System" ------------------------------------------------------------

def test_deal_risk_alert_system(api, tenant, team, receiver):
    body = {
        "name": "Deal Risk Alert System",
        "trigger_type": "time_based",
        "model_type": "App\\Models\\Deal",  # mapped: the example reads deals
        "trigger_conditions": [
            {"field": "stage", "operator": "in", "value": ["proposal", "negotiation"]},
            {"field": "last_activity_date", "operator": "less_than", "value": "5 days ago"},
        ],
        "action_configuration": {"schedule": "daily", "actions": [
            {"type": "update_field", "field": "risk_level", "value": "high"},
            {"type": "webhook", "url": receiver.url + "/services/YOUR/SLACK/WEBHOOK", "method": "POST",
             "body": {"text": "Deal {{entity.name}} at {{entity.company.name}} shows high risk - no activity for 5+ days"}},
            {"type": "create_task", "title": "URGENT: Re-engage stalled deal",
             "description": "Deal {{entity.name}} has been inactive for over 5 days",
             "assigned_to": "{{entity.assigned_to}}", "priority": "urgent", "due_days": 0},
        ]},
        "is_active": True,
    }
    post(api, body)
    stale = OpportunityFactory(account=team["globex"], name="Globex FY27", stage="negotiation", owner=team["csm"],
                               last_activity_date=timezone.localdate() - datetime.timedelta(days=8))
    OpportunityFactory(account=team["globex"], name="Active", stage="negotiation", owner=team["csm"],
                       last_activity_date=timezone.localdate())
    assert scheduling.run_scheduled_rules(timezone.now()).runs == 1
    delivery.deliver()
    stale.refresh_from_db()
    assert stale.risk_level == "high"
    assert receiver.json()["text"] == "Deal Globex FY27 at Globex shows high risk - no activity for 5+ days"
    task = Task.objects.get()
    assert (task.assignee, task.priority, task.due_date) == (team["csm"], "urgent", timezone.localdate())
    assert task.description == "Deal Globex FY27 has been inactive for over 5 days"


# --- Usage example 3: "Customer Onboarding Sequence" ------------------------------------------------------

def test_customer_onboarding_sequence(api, tenant, team, welcome, receiver, on_commit):
    onboarding = WorkflowFactory(tenant=tenant, name="Onboarding workflow", trigger_type="manual", model_type="",
                                 actions=[{"type": "create_note", "config": {"body": "Onboarding started"}}])
    body = {
        "name": "Customer Onboarding Sequence",
        "trigger_type": "field_changed",
        "model_type": "App\\Models\\Deal",
        "trigger_conditions": [{"field": "stage", "operator": "changed_to", "value": "won"}],
        "action_configuration": {"actions": [
            {"type": "send_email", "template_id": welcome.pk, "recipient": "entity_email"},
            {"type": "create_task", "title": "Schedule onboarding call",
             "description": "Contact {{entity.contact.name}} to schedule onboarding",
             "assigned_to": "customer_success_team", "due_days": 1},
            {"type": "trigger_workflow", "workflow_id": onboarding.pk},
            {"type": "webhook", "url": receiver.url + "/create-customer", "method": "POST",
             "headers": {"Authorization": "Bearer {{billing_api_key}}"},
             "body": {"contact_id": "{{entity.contact.id}}", "plan": "{{entity.plan_type}}",
                      "value": "{{entity.value}}"}},
        ]},
    }
    post(api, {**body, "is_active": True})
    deal = OpportunityFactory(account=team["globex"], name="Globex FY27", stage="negotiation", value=60000)
    with on_commit():
        api.patch(f"/api/opportunities/{deal.pk}/", {"stage": "won"}, format="json")
    [sent] = mail.outbox
    assert sent.to == ["ada@globex.test"]  # a deal has no email: its account's primary contact
    task = Task.objects.get(title="Schedule onboarding call")
    assert (task.description, task.assignee) == ("Contact Ada Lovelace to schedule onboarding", team["csm"])
    assert Run.objects.get(workflow=onboarding).status == "success"
    assert receiver.json() == {"contact_id": str(team["ada"].pk), "plan": "", "value": "60000.00"}
    # No {{billing_api_key}} variable exists (there is no store of tenant secrets for templates): it renders
    # empty, and the header is still a legal one, so the call is made.
    assert receiver.requests[0]["headers"]["authorization"] == "Bearer"


# --- Usage example 4: "Event Chain Automation" ------------------------------------------------------------

def test_event_chain_automation(api, tenant, team, on_commit):
    engagement_workflow = WorkflowFactory(tenant=tenant, name="Engagement workflow", trigger_type="manual",
                                          model_type="", actions=[{"type": "create_note", "config": {"body": "hi"}}])
    post(api, {
        "name": "High Engagement Detection",
        "trigger_type": "field_changed",
        "model_type": "App\\Models\\Contact",
        "trigger_conditions": [{"field": "engagement_score", "operator": "greater_than", "value": 8}],
        "action_configuration": {"actions": [
            {"type": "add_tag", "tag": "highly-engaged"},
            {"type": "trigger_workflow", "workflow_id": engagement_workflow.pk},
        ]},
        "is_active": True,
    })
    post(api, {
        "name": "Highly Engaged Contact Actions",
        "trigger_type": "model_updated",
        "model_type": "App\\Models\\Contact",
        "trigger_conditions": [{"field": "tags", "operator": "contains", "value": "highly-engaged"}],
        "action_configuration": {"actions": [
            {"type": "assign_to_user", "user_id": "senior_account_manager"},
            {"type": "create_task", "title": "Personal outreach to highly engaged contact", "priority": "high",
             "due_days": 0},
        ]},
        "is_active": True,
    })
    with on_commit():
        api.patch(f"/api/contacts/{team['ada'].pk}/", {"engagement_score": 9}, format="json")
    assert list(team["ada"].tags.values_list("name", flat=True)) == ["highly-engaged"]
    task = Task.objects.get(title="Personal outreach to highly engaged contact")
    assert (task.priority, task.due_date, task.assignee) == ("high", timezone.localdate(), team["csm"])
    assert Run.objects.get(workflow=engagement_workflow).status == "success"
    assert not Run.objects.filter(status="failed").exists()
