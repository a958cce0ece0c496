"""SuccessPlays (seed 004): a Playbook is a front door onto one automation rule. Firing, cooldown, runs and
delivery are the engine's; each firing leaves a PlaybookExecution."""

import datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts import services as account_services
from accounts.models import JourneyStage, Role
from delivery import secrets as delivery_secrets
from delivery import services as delivery
from automation.models import Run, Workflow
from delivery.models import Outbox
from playbooks import services
from playbooks.defaults import HEALTH_ALERT, STAGE_ALERT
from playbooks.models import Playbook, PlaybookExecution, PlaybookSchedule, PlaybookTrigger
from tests.factories import AccountFactory, MembershipFactory

pytestmark = pytest.mark.django_db

URL = "/api/playbooks"
COMPONENTS = ("usage_score", "engagement_score", "support_sentiment_score", "adoption_score")


@pytest.fixture
def techstart(tenant):
    owner = MembershipFactory(tenant=tenant, user__username="admin@acme.com", user__first_name="Alice",
                              user__last_name="Administrator").user
    account = AccountFactory(tenant=tenant, owner=owner, name="TechStart Solutions", arr=Decimal("85000"),
                             renewal_date=datetime.date(2025, 3, 1))
    account_services.health_score_record(account=account, components=dict.fromkeys(COMPONENTS, 65))
    return account


def play(tenant, name, **changes):
    """A default play, saved (its rule compiled) with ``changes``."""
    playbook = Playbook.objects.for_tenant(tenant).get(name=name)
    return services.playbook_save(playbook=playbook, data=changes)


def post_score(client, account, **components):
    return client.post("/api/health-scores/", {"account": str(account.pk), **components}, format="json")


# --- defaults -----------------------------------------------------------------------------------

def test_a_new_tenant_gets_the_trigger_settings_and_seed_004s_plays_as_inactive_drafts(tenant):
    triggers = PlaybookTrigger.objects.for_tenant(tenant)
    assert sorted(triggers.values_list("playbook_type", flat=True)) == ["activation", "expansion", "renewal", "sla", "voc"]
    assert not triggers.filter(auto_trigger_enabled=True).exists()
    plays = {p.name: p for p in Playbook.objects.for_tenant(tenant).select_related("workflow")}
    assert set(plays) == {HEALTH_ALERT, STAGE_ALERT}
    health, stage = plays[HEALTH_ALERT], plays[STAGE_ALERT]
    assert not health.is_active and not stage.is_active
    assert (health.trigger_type, health.trigger_config["threshold"], health.trigger_config["direction"]) == (
        "health_score_change", 40.0, "decrease")
    assert health.webhook_url == "http://localhost:5678/webhook/health-alert" and health.cooldown_minutes == 60
    assert (stage.trigger_type, stage.trigger_config, stage.webhook_url) == (
        "stage_change", {"to_stage": "At Risk"}, "http://localhost:5678/webhook/stage-alert")
    # Untouched drafts are validated but add nothing to the engine; the first save compiles the rule.
    assert health.workflow is None and stage.workflow is None and not Workflow.objects.for_tenant(tenant).exists()
    rule = services.playbook_save(playbook=health, data={}).workflow
    assert (rule.source, rule.status, rule.cooldown_minutes, rule.trigger_type) == (
        "playbook", Workflow.Status.DRAFT, 60, "health_score_change")
    assert [a["type"] for a in rule.actions] == ["webhook", "create_task", "record_playbook_execution"]
    assert rule.actions[0]["config"]["url"] == health.webhook_url
    assert PlaybookSchedule.objects.for_tenant(tenant).get().evaluate_at == datetime.time(6, 0)


def test_inactive_drafts_do_not_fire(tenant, techstart, api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert post_score(api, techstart, **dict.fromkeys(COMPONENTS, 20)).status_code == 201
    assert not PlaybookExecution.objects.for_tenant(tenant).exists() and not Run.objects.for_tenant(tenant).exists()


# --- the Done-when flow -------------------------------------------------------------------------

def test_a_health_score_drop_below_40_through_the_api_fires_the_play_once_and_posts_seed_004s_payload(
        tenant, techstart, api, receiver, django_capture_on_commit_callbacks):
    health = play(tenant, HEALTH_ALERT, is_active=True, webhook_url=receiver.url + "/webhook/health-alert")
    receiver.secrets = delivery_secrets.active_webhook_secrets(tenant.pk)

    with django_capture_on_commit_callbacks(execute=True):
        response = post_score(api, techstart, usage_score=25, engagement_score=30, support_sentiment_score=40,
                              adoption_score=35)
    assert response.status_code == 201, response.json()
    delivery.deliver_outbox_pass()

    [request] = receiver.requests
    assert request["path"] == "/webhook/health-alert" and request["verified"] is True
    body = receiver.json()
    assert body["event_type"] == "health_score_drop"
    assert {k: body["account"][k] for k in ("id", "name", "arr", "renewal_date")} == {
        "id": str(techstart.pk), "name": "TechStart Solutions", "arr": 85000.0, "renewal_date": "2025-03-01"}
    assert body["health_score"] == {"current_score": 31.25, "previous_score": 65.0, "risk_level": "Critical",
                                    "usage_score": 25.0, "engagement_score": 30.0, "support_sentiment_score": 40.0,
                                    "adoption_score": 35.0}
    assert body["csm"] == {"email": "admin@acme.com", "name": "Alice Administrator"}
    [execution] = PlaybookExecution.objects.for_tenant(tenant)
    run = Run.objects.for_tenant(tenant).get(workflow=health.workflow, status=Run.Status.SUCCESS)
    assert (execution.playbook_id, execution.account_id, execution.run_id) == (health.pk, techstart.pk, run.pk)
    assert execution.status == PlaybookExecution.Status.COMPLETED and execution.finished_at is not None
    assert execution.source == PlaybookExecution.Source.EVENT and execution.started_by_label == "automation"
    assert execution.reason == "Health score dropped from 65 to 31.25 (below 40), risk level Critical"
    assert "webhook queued for " + receiver.url in execution.outcome and "task #" in execution.outcome
    assert Outbox.objects.for_tenant(tenant).get().status == Outbox.Status.DELIVERED
    assert techstart.tasks.get().title == "Critical health score: review TechStart Solutions"

    # A second drop inside the 60 minutes of cooldown: the engine skips it, nothing is posted or recorded.
    with django_capture_on_commit_callbacks(execute=True):
        assert post_score(api, techstart, **dict.fromkeys(COMPONENTS, 20)).status_code == 201
    delivery.deliver_outbox_pass()
    assert len(receiver.requests) == 1
    assert PlaybookExecution.objects.for_tenant(tenant).count() == 1
    skipped = Run.objects.for_tenant(tenant).get(workflow=health.workflow, status=Run.Status.SKIPPED)
    assert skipped.skip_reason == Run.SkipReason.COOLDOWN


def test_a_rise_or_a_drop_that_stays_above_40_does_not_fire(tenant, techstart, api, django_capture_on_commit_callbacks):
    play(tenant, HEALTH_ALERT, is_active=True)
    with django_capture_on_commit_callbacks(execute=True):
        post_score(api, techstart, **dict.fromkeys(COMPONENTS, 50))
        post_score(api, techstart, **dict.fromkeys(COMPONENTS, 70))
    assert not PlaybookExecution.objects.for_tenant(tenant).exists()


def test_a_move_to_at_risk_fires_the_stage_alert(tenant, techstart, receiver, django_capture_on_commit_callbacks):
    stage_play = play(tenant, STAGE_ALERT, is_active=True, webhook_url=receiver.url + "/webhook/stage-alert")
    stages = {s.name: s for s in JourneyStage.objects.for_tenant(tenant)}
    with django_capture_on_commit_callbacks(execute=True):
        account_services.journey_move_to_stage(account=techstart, stage=stages["Adoption"])
    assert not PlaybookExecution.objects.for_tenant(tenant).exists()

    with django_capture_on_commit_callbacks(execute=True):
        account_services.journey_move_to_stage(account=techstart, stage=stages["At Risk"])
    delivery.deliver_outbox_pass()

    [request] = receiver.requests
    body = receiver.json()
    assert request["path"] == "/webhook/stage-alert"
    assert body["event_type"] == "stage_transition" and body["stage"] == {"from": "Adoption", "to": "At Risk"}
    assert body["account"]["name"] == "TechStart Solutions" and body["csm"]["email"] == "admin@acme.com"
    [execution] = PlaybookExecution.objects.for_tenant(tenant)
    assert execution.playbook_id == stage_play.pk
    assert execution.reason == "Journey stage moved from Adoption to At Risk"


def test_a_play_can_react_to_a_playbook_trigger_setting_firing(tenant, api, django_capture_on_commit_callbacks):
    from tests.factories import SurveyResponseFactory

    account = AccountFactory(tenant=tenant, name="Detractor")
    SurveyResponseFactory(account=account, score=1)
    response = api.post(URL, {"name": "VoC follow-up", "is_active": True, "trigger_type": "playbook_trigger",
                              "trigger_config": {"playbook_types": ["voc"]}, "cooldown_minutes": 0,
                              "actions": [{"type": "create_task", "config": {"title": "Call {{ account.name }}"}}]},
                        format="json")
    assert response.status_code == 201, response.json()
    services.playbook_trigger_save(tenant=tenant, playbook_type="voc", changes={"auto_trigger_enabled": True})

    with django_capture_on_commit_callbacks(execute=True):
        services.playbook_triggers_evaluate_all(tenant=tenant)

    execution = PlaybookExecution.objects.for_tenant(tenant).get(playbook__name="VoC follow-up")
    assert execution.account_id == account.pk and execution.playbook_type == "voc"
    assert execution.reason.startswith("VoC Sprint fired: NPS -100 is below 10")
    assert account.tasks.get().title == "Call Detractor"


# --- manual trigger -----------------------------------------------------------------------------

def test_manual_trigger_respects_the_cooldown_unless_forced_with_a_reason(tenant, techstart, member_client):
    health = Playbook.objects.for_tenant(tenant).get(name=HEALTH_ALERT)  # an untouched draft can be run by hand
    client = member_client(tenant, Role.PRACTITIONER)
    url = f"{URL}/{health.pk}/trigger"

    first = client.post(url, {"account_id": str(techstart.pk), "reason": "QBR went badly"}, format="json")
    assert first.status_code == 201, first.json()
    data = first.json()
    assert data["playbook"] == health.pk and data["playbook_name"] == HEALTH_ALERT
    assert data["account"] == str(techstart.pk) and data["status"] == "completed" and data["source"] == "manual"
    assert data["reason"] == "QBR went badly" and data["started_by"] == client.user.pk
    assert data["started_by_label"] == client.user.email and data["run"] and data["forced"] is False
    run = Run.objects.for_tenant(tenant).get(pk=data["run"])
    health.refresh_from_db()
    assert run.manual and run.workflow_id == health.workflow_id and run.workflow.source == "playbook"
    assert Outbox.objects.for_tenant(tenant).get().payload["event_type"] == "manual_trigger"

    again = client.post(url, {"account_id": str(techstart.pk), "reason": "once more"}, format="json")
    assert again.status_code == 409
    assert "cooling down" in again.json()["message"] and again.json()["cooldown_until"]

    no_reason = client.post(url, {"account_id": str(techstart.pk), "force": True}, format="json")
    assert no_reason.status_code == 400 and "reason" in no_reason.json()

    forced = client.post(url, {"account_id": str(techstart.pk), "force": True, "reason": "Exec escalation"},
                         format="json")
    assert forced.status_code == 201, forced.json()
    assert forced.json()["forced"] is True and "cooldown overridden by" in forced.json()["reason"]
    assert PlaybookExecution.objects.for_tenant(tenant).filter(playbook=health).count() == 2


def test_the_service_is_seed_004s_trigger_playbook_manually(tenant, techstart):
    health = play(tenant, HEALTH_ALERT)
    execution = services.trigger_playbook_manually(health, techstart, "Manual test trigger")
    assert execution.started_by_label == "automation" and execution.reason == "Manual test trigger"
    with pytest.raises(services.PlaybookCooldown):
        services.trigger_playbook_manually(health, techstart, "Manual test trigger")
    assert services.trigger_playbook_manually(health, techstart, "again", force=True).forced


def test_the_trigger_command(tenant, techstart, capsys):
    health = play(tenant, HEALTH_ALERT)
    call_command("trigger_playbook", str(health.pk), str(techstart.pk), "--reason", "from cron")
    assert f"{HEALTH_ALERT} ran for TechStart Solutions" in capsys.readouterr().out
    with pytest.raises(CommandError, match="cooling down"):
        call_command("trigger_playbook", str(health.pk), str(techstart.pk))
    with pytest.raises(CommandError, match="needs a --reason"):
        call_command("trigger_playbook", str(health.pk), str(techstart.pk), "--force")
    call_command("trigger_playbook", str(health.pk), str(techstart.pk), "--force", "--reason", "urgent")
    with pytest.raises(CommandError, match="No SuccessPlay"):
        call_command("trigger_playbook", "999999", str(techstart.pk))
    with pytest.raises(CommandError, match="No account"):
        call_command("trigger_playbook", str(health.pk), "00000000-0000-0000-0000-000000000000")
    assert PlaybookExecution.objects.for_tenant(tenant).filter(playbook=health).count() == 2


def test_manual_trigger_validation(tenant, other_tenant, techstart, member_client):
    health = play(tenant, HEALTH_ALERT)
    theirs = Playbook.objects.for_tenant(other_tenant).get(name=HEALTH_ALERT)
    their_account = AccountFactory(tenant=other_tenant)
    client = member_client(tenant, Role.PRACTITIONER)
    ok = {"account_id": str(techstart.pk), "reason": "x"}

    assert client.post(f"{URL}/999999/trigger", ok, format="json").status_code == 404
    assert client.post(f"{URL}/{theirs.pk}/trigger", ok, format="json").status_code == 404
    other = client.post(f"{URL}/{health.pk}/trigger", {"account_id": str(their_account.pk)}, format="json")
    assert other.status_code == 400 and "account_id" in other.json()
    for body, field in (({}, "account_id"), ({"account_id": "nope"}, "account_id"),
                        ({**ok, "surprise": 1}, "surprise"), ({**ok, "force": "maybe"}, "force")):
        response = client.post(f"{URL}/{health.pk}/trigger", body, format="json")
        assert response.status_code == 400 and field in response.json(), (body, response.json())
    viewer = member_client(tenant, Role.VIEWER).post(f"{URL}/{health.pk}/trigger", ok, format="json")
    assert viewer.status_code == 403
    assert not PlaybookExecution.objects.exists()


# --- CRUD ---------------------------------------------------------------------------------------

def test_tenant_admins_manage_plays_practitioners_read_them(tenant, api, member_client):
    body = {"name": "Churn call", "trigger_type": "status_change", "trigger_config": {"to_status": "churned"},
            "webhook_url": "https://hooks.example.com/churn", "cooldown_minutes": 120,
            "actions": [{"type": "create_task", "config": {"title": "Exit interview"}}]}
    created = api.post(URL, body, format="json")
    assert created.status_code == 201, created.json()
    data = created.json()
    assert data["is_active"] is False and data["cooldown_minutes"] == 120 and data["workflow"]
    rule = Workflow.objects.get(pk=data["workflow"])
    assert (rule.source, rule.cooldown_minutes, rule.trigger_config["to_status"]) == ("playbook", 120, "churned")

    assert api.patch(f"{URL}/{data['id']}", {"is_active": True}, format="json").status_code == 200
    rule.refresh_from_db()
    assert rule.status == Workflow.Status.ACTIVE and rule.actions[1]["config"]["title"] == "Exit interview"

    practitioner = member_client(tenant, Role.PRACTITIONER)
    assert {p["name"] for p in practitioner.get(URL).json()["results"]} == {"Churn call", HEALTH_ALERT, STAGE_ALERT}
    assert practitioner.patch(f"{URL}/{data['id']}", {"is_active": False}, format="json").status_code == 403
    assert practitioner.post(URL, {**body, "name": "x"}, format="json").status_code == 403
    assert practitioner.get(f"{URL}/executions").status_code == 200  # the executions route is not an id

    assert api.delete(f"{URL}/{data['id']}").status_code == 204
    assert not Workflow.objects.filter(pk=rule.pk).exists()


@pytest.mark.parametrize("change, field", [
    ({"trigger_type": "no_such_trigger"}, "trigger_type"),
    ({"trigger_config": {"threshold": "low"}}, "trigger_config.threshold"),
    ({"webhook_url": "ftp://example.com/x"}, "webhook_url"),
    ({"webhook_url": "http://169.254.169.254/latest"}, "webhook_url"),
    ({"actions": [{"type": "teleport"}]}, "actions[0].type"),
    ({"actions": [{"type": "create_task", "config": {}}]}, "actions[0].config.title"),
    ({"actions": [{"type": "record_playbook_execution"}]}, "actions[0].type"),
    ({"conditions": {"field": "nope", "operator": "equals", "value": 1}}, "conditions"),
    ({"cooldown_minutes": -1}, "cooldown_minutes"),
    ({"name": HEALTH_ALERT}, "name"),
    ({"surprise": True}, "surprise"),
    ({"webhook_url": "", "actions": []}, "actions"),
])
def test_it_rejects_a_bad_play_naming_the_field(api, tenant, change, field):
    body = {"name": "New play", "trigger_type": "health_score_change", "trigger_config": {"threshold": 30},
            "webhook_url": "https://hooks.example.com/x", **change}
    response = api.post(URL, body, format="json")
    assert response.status_code == 400, response.json()
    assert any(key.startswith(field) for key in response.json()), response.json()
    assert Playbook.objects.for_tenant(tenant).count() == 2


def test_other_tenants_plays_are_invisible(tenant, other_tenant, api):
    theirs = Playbook.objects.for_tenant(other_tenant).get(name=HEALTH_ALERT)
    assert theirs.pk not in [p["id"] for p in api.get(URL).json()["results"]]
    assert api.get(f"{URL}/{theirs.pk}").status_code == 404
    assert api.patch(f"{URL}/{theirs.pk}", {"is_active": True}, format="json").status_code == 404
    assert api.delete(f"{URL}/{theirs.pk}").status_code == 404
    assert api.get(f"{URL}/not-a-number").status_code == 404
    theirs.refresh_from_db()
    assert not theirs.is_active


def test_executions_list_shows_successplay_runs(tenant, techstart, api):
    health = play(tenant, HEALTH_ALERT)
    services.trigger_playbook_manually(health, techstart, "check", user=api.user)
    rows = api.get(f"{URL}/executions", {"playbook": health.pk}).json()["results"]
    assert [(r["playbook_name"], r["started_by_label"], r["source"]) for r in rows] == [
        (HEALTH_ALERT, api.user.email, "manual")]


# --- demo, schedule, throttle, admin ------------------------------------------------------------

def test_seed_demo_enables_the_plays_and_they_fire_on_techstart(demo):
    plays = {p.name: p for p in Playbook.objects.for_tenant(demo).select_related("workflow")}
    assert plays[HEALTH_ALERT].is_active and plays[STAGE_ALERT].is_active
    assert plays[HEALTH_ALERT].workflow.status == Workflow.Status.ACTIVE
    fired = {(e.playbook.name, e.account.name) for e in
             PlaybookExecution.objects.for_tenant(demo).select_related("playbook", "account").filter(playbook__isnull=False)}
    assert fired == {(HEALTH_ALERT, "TechStart Solutions"), (STAGE_ALERT, "TechStart Solutions")}
    messages = Outbox.objects.for_tenant(demo).filter(channel="webhook")
    assert sorted(m.target for m in messages) == ["http://localhost:5678/webhook/health-alert",
                                                  "http://localhost:5678/webhook/stage-alert"]
    # Seeding again fires nothing more.
    from accounts.demo import demo_seed
    demo_seed()
    assert PlaybookExecution.objects.for_tenant(demo).filter(playbook__isnull=False).count() == 2


def test_the_daily_evaluation_runs_once_a_day_at_the_tenants_time(tenant, other_tenant):
    from playbooks.scheduling import evaluate_due_tenants

    tenant.timezone = "Europe/Berlin"
    tenant.save()
    services.playbook_trigger_save(tenant=tenant, playbook_type="voc", changes={"auto_trigger_enabled": True})
    utc = datetime.timezone.utc
    before = datetime.datetime(2030, 1, 15, 4, 59, tzinfo=utc)  # 05:59 in Berlin
    at = datetime.datetime(2030, 1, 15, 5, 0, tzinfo=utc)  # 06:00 in Berlin

    assert evaluate_due_tenants(now=before)["evaluated"] == []
    assert [r["tenant"] for r in evaluate_due_tenants(now=at)["evaluated"]] == [tenant.slug]
    assert evaluate_due_tenants(now=at + datetime.timedelta(hours=3))["evaluated"] == []  # once a day
    assert PlaybookTrigger.objects.for_tenant(tenant).get(playbook_type="voc").last_evaluated == at
    assert PlaybookSchedule.objects.for_tenant(tenant).get().last_run_on == datetime.date(2030, 1, 15)
    next_day = evaluate_due_tenants(now=at + datetime.timedelta(days=1))["evaluated"]
    assert [r["tenant"] for r in next_day] == [tenant.slug]  # other_tenant has nothing enabled

    from automation.periodic import periodic_specs
    from automation.scheduling import due_work
    assert "playbooks.tasks.evaluate_due_tenants_task" in {s.task for s in periodic_specs()}
    assert "playbooks.daily_evaluation" in dict(due_work())


def test_evaluation_endpoints_are_throttled(tenant, client_for, monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    from playbooks.api import views

    # The test settings lift every rate; put the production default of the scope back for this test.
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES,
                                                               "evaluation": "10/minute"})
    assert views.PlaybookTriggerTestView.throttle_scope == "evaluation"
    assert views.PlaybookTriggerEvaluateAllView.throttle_scope == "evaluation"
    client = client_for(tenant, Role.PRACTITIONER)
    codes = [client.post("/api/playbook-triggers/evaluate-all", format="json").status_code for _ in range(11)]
    assert codes[:10] == [200] * 10 and codes[10] == 429


def test_the_admin_action_triggers_a_play_for_an_account(client, tenant, techstart):
    from django.urls import reverse

    admin_user = MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN, user__is_staff=True).user
    client.force_login(admin_user)
    health = play(tenant, HEALTH_ALERT)
    url = reverse("admin:playbooks_playbook_changelist")
    data = {"action": "trigger_for_account", "_selected_action": [health.pk], "account": "TechStart Solutions",
            "reason": "from the admin"}
    assert client.post(url, data, follow=True).status_code == 200
    execution = PlaybookExecution.objects.for_tenant(tenant).get()
    assert execution.started_by == admin_user and execution.reason == "from the admin"
    response = client.post(url, data, follow=True)
    assert "cooling down" in response.content.decode()
    assert client.get(reverse("admin:playbooks_playbook_change", args=[health.pk])).status_code == 200
    assert client.get(reverse("admin:accounts_account_change", args=[techstart.pk])).status_code == 200


def test_a_renewal_play_opens_the_renewal_opportunity(tenant, api, django_capture_on_commit_callbacks):
    """Issue 13: a Renewal play creates the account's renewal opportunity (create_opportunity; that firing again
    updates it instead of adding another is tests/automation/test_create_opportunity.py)."""
    from accounts.models import Opportunity

    renewal = datetime.date.today() + datetime.timedelta(days=30)
    account = AccountFactory(tenant=tenant, name="Renews Soon", arr=Decimal("24000"), renewal_date=renewal)
    response = api.post(URL, {"name": "Open the renewal", "is_active": True, "trigger_type": "playbook_trigger",
                              "trigger_config": {"playbook_types": ["renewal"]}, "cooldown_minutes": 0,
                              "actions": [{"type": "create_opportunity", "config": {
                                  "kind": "renewal", "value": "arr", "close_date": "renewal_date",
                                  "stage": "qualification"}}]}, format="json")
    assert response.status_code == 201, response.json()
    services.playbook_trigger_save(tenant=tenant, playbook_type="renewal",
                                   changes={"auto_trigger_enabled": True, "require_risk_signal": False})

    with django_capture_on_commit_callbacks(execute=True):
        services.playbook_triggers_evaluate_all(tenant=tenant)

    deal = Opportunity.objects.for_tenant(tenant).get()
    assert (deal.account, deal.kind, deal.stage, deal.value, deal.close_date) == (
        account, "renewal", "qualification", Decimal("24000.00"), renewal)
