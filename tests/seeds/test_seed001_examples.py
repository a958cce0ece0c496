"""Seed 001's API example, posted as written to ``/api/admin/automation`` (only the template is created under
the name it uses), run end to end: a new small customer gets the welcome email an hour later, at its
primary contact added meanwhile."""

from __future__ import annotations

import datetime

import pytest
from django.core import mail
from django.utils import timezone

from automation import scheduling
from automation.models import Run
from delivery import services as delivery
from tests.factories import EmailTemplateFactory

pytestmark = pytest.mark.django_db

ONBOARDING_SEQUENCE = {
    "name": "Onboarding Sequence",
    "description": "Welcome new customers",
    "trigger_type": "account_created",
    "trigger_config": {"status": "onboarding"},
    "condition_config": {"account_filter": {"size": ["small", "medium"]}},
    "action_type": "send_email",
    "action_config": {"template_id": "welcome_template", "delay": "1h"},
}


def test_onboarding_sequence(api, tenant, on_commit):
    EmailTemplateFactory(tenant=tenant, name="welcome_template", subject="Welcome to {{ account.name }}!")
    created = api.post("/api/admin/automation", ONBOARDING_SEQUENCE, format="json")
    assert created.status_code == 201, created.json()
    assert api.patch(f"/api/admin/automation/{created.json()['id']}", {"status": "active"}).status_code == 200

    with on_commit():
        small = api.post("/api/accounts/", {"name": "Initech", "size": "smb"}, format="json").json()
        api.post("/api/accounts/", {"name": "Globex", "size": "enterprise"}, format="json")
    waiting = Run.objects.get(status="queued")
    assert waiting.subject_id == small["id"] and waiting.result["waiting_at"] == 0
    assert Run.objects.get(status="skipped").skip_reason == "conditions_not_met"  # enterprise is not small/medium

    # The contact is added after the account was created; the email waits an hour, then finds it.
    api.post("/api/contacts/", {"account": small["id"], "name": "Peter Gibbons", "email": "peter@initech.test",
                                "is_primary": True}, format="json")
    assert scheduling.run_due_runs(timezone.now() + datetime.timedelta(minutes=30)) == 0
    assert scheduling.run_due_runs(timezone.now() + datetime.timedelta(minutes=61)) == 1
    delivery.deliver()
    [sent] = mail.outbox
    assert (sent.to, sent.subject) == (["peter@initech.test"], "Welcome to Initech!")
    waiting.refresh_from_db()
    assert waiting.status == "success" and list(waiting.steps.values_list("status", flat=True)) == ["success"]


def test_onboarding_sequence_refuses_a_stage_the_tenant_does_not_have(api, tenant):
    EmailTemplateFactory(tenant=tenant, name="welcome_template")
    body = {**ONBOARDING_SEQUENCE, "trigger_config": {"status": "hibernating"}}
    response = api.post("/api/admin/automation", body, format="json")
    assert response.status_code == 400 and "hibernating" in str(response.json())
