"""A journey's managed rules (``crm.rules``): one automation rule per journey with a trigger (owner ``crm``),
created with the default journeys, kept in line with the journey, read-only through the generic rule API and
admin, and given to the journeys that existed before (migration ``crm.0003``)."""

import importlib

import pytest
from django.apps import apps
from django.urls import reverse

from accounts.models import Role
from automation import rule_index
from automation.definitions import definition_of
from automation.models import Run, Workflow, WorkflowVersion
from crm import rules
from crm.models import CRMPlaybook
from crm.services import crm_journeys_ensure
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

WORKFLOWS = "/api/admin/automation"
TRIGGERS = "/api/event-triggers"


def journey(tenant, name):
    return CRMPlaybook.objects.for_tenant(tenant).select_related("workflow", "conversion_workflow").get(name=name)


def test_every_default_journey_starts_through_its_own_managed_rule(tenant):
    expected = {
        "winback": ("status_change", {"to_status": ["churned", "cancelled"], "entering": True,
                                      "include_new_accounts": False}),
        "churn_risk": ("health_score_change", {"risk_levels": ["at_risk", "critical"], "entering": True,
                                               "threshold": None, "direction": "any", "minimum_change": 0.0}),
        "milestone_congrats": ("goal_event", {"event": "achieved", "goal_types": [], "include_created": True}),
        "payment_failed_rescue": ("event", {"event_type": "payment_failed"}),
        "trial_ending": ("event", {"event_type": "trial_ending"}),
        "inactivity_nudge": ("event", {"event_type": "inactivity"}),
    }
    for name, (trigger_type, config) in expected.items():
        j = journey(tenant, name)
        rule = j.workflow
        assert (rule.source, rule.status, rule.enabled, rule.trigger_type, rule.trigger_config) == (
            "crm", "active", True, trigger_type, config), name
        assert rule.actions == [{"type": "add_to_cadence", "config": {"journey": j.pk, "trigger": j.trigger_event}}]
        assert (rule.failure_threshold, rule.version) == (0, 1)
        assert WorkflowVersion.objects.filter(workflow=rule, number=1).exists()
    churn = journey(tenant, "churn_risk").workflow
    assert churn.conditions == {"op": "all", "conditions": [
        {"field": "risk_level", "operator": "in", "value": ["at_risk", "critical"]}]} and churn.debug_mode
    rescue = journey(tenant, "payment_failed_rescue")
    assert (rescue.conversion_workflow.trigger_config, rescue.conversion_workflow.actions) == (
        {"event_type": "payment_succeeded"},
        [{"type": "convert_cadence", "config": {"journey": rescue.pk, "trigger": "payment_succeeded"}}])
    assert Workflow.objects.for_tenant(tenant).filter(source="crm").count() == 7
    for event_type in ("status_change", "health_score_change", "goal_event", "payment_failed", "payment_succeeded",
                       "trial_ending", "inactivity"):
        assert rule_index.interested(tenant.pk, event_type, "account"), event_type


def test_the_rule_follows_the_journey_and_saving_an_unchanged_journey_writes_nothing(tenant):
    winback = journey(tenant, "winback")
    rule_id = winback.workflow_id
    winback.save()
    assert Workflow.objects.get(pk=rule_id).version == 1  # nothing changed: no new version, no audit entry

    winback.active = False
    winback.save()
    rule = Workflow.objects.get(pk=rule_id)
    assert rule.status == "paused" and not rule_index.interested(tenant.pk, "status_change", "account")

    winback.active, winback.trigger_event, winback.title = True, "churn_risk", "Save them"
    winback.save()
    rule = Workflow.objects.get(pk=rule_id)
    assert (rule.status, rule.trigger_type, rule.name) == ("active", "health_score_change", "CRM journey: Save them")
    assert rule.actions[0]["config"] == {"journey": winback.pk, "trigger": "churn_risk"}
    assert rule.version == 2 and journey(tenant, "winback").workflow_id == rule_id  # the same rule, its runs kept

    winback.trigger_event = "manual"
    winback.save()
    assert Workflow.objects.get(pk=rule_id).status == "paused"

    winback.trigger_event = "payment_failed"
    winback.save()
    winback = journey(tenant, "winback")
    assert (winback.workflow_id, winback.workflow.status) == (rule_id, "active")
    assert winback.conversion_workflow.trigger_config == {"event_type": "payment_succeeded"}


def test_an_inactive_rescue_still_converts_its_running_executions(tenant):
    rescue = journey(tenant, "payment_failed_rescue")
    rescue.active = False
    rescue.save()
    rescue = journey(tenant, "payment_failed_rescue")
    assert (rescue.workflow.status, rescue.conversion_workflow.status) == ("paused", "active")


def test_a_deleted_journey_takes_its_rules_along_and_ensure_restores_both(tenant):
    rescue = journey(tenant, "payment_failed_rescue")
    ids = [rescue.workflow_id, rescue.conversion_workflow_id]
    rescue.delete()
    assert not Workflow.objects.filter(pk__in=ids).exists()
    assert [j.name for j in crm_journeys_ensure(tenant)] == ["payment_failed_rescue"]
    rescue = journey(tenant, "payment_failed_rescue")
    assert rescue.workflow.trigger_config == {"event_type": "payment_failed"} and rescue.conversion_workflow_id


def test_ensure_gives_a_journey_without_its_rule_a_new_one_once(tenant):
    milestone = journey(tenant, "milestone_congrats")
    Workflow.objects.filter(pk=milestone.workflow_id).delete()  # e.g. removed by hand in the database
    assert journey(tenant, "milestone_congrats").workflow_id is None
    assert crm_journeys_ensure(tenant) == []
    rule = journey(tenant, "milestone_congrats").workflow
    assert rule.trigger_type == "goal_event" and rule.status == "active"
    crm_journeys_ensure(tenant)
    assert Workflow.objects.for_tenant(tenant).filter(source="crm").count() == 7


def test_the_generic_rule_apis_refuse_to_edit_a_journey_rule_naming_the_journey(api, tenant):
    winback = journey(tenant, "winback")
    for url in (WORKFLOWS, TRIGGERS):
        response = api.patch(f"{url}/{winback.workflow_id}", {"name": "Hijacked"}, format="json")
        assert response.status_code == 409, response.content
        assert response.json()["managed_by"] == {"type": "CRM journey", "id": winback.pk, "name": "Winback",
                                                 "endpoint": f"/api/v1/crm/playbooks/{winback.pk}"}
        assert api.delete(f"{url}/{winback.workflow_id}").status_code == 409
    assert Workflow.objects.get(pk=winback.workflow_id).name == "CRM journey: Winback"
    assert api.get(f"{WORKFLOWS}/{winback.workflow_id}").json()["source"] == "crm"
    listed = api.get("/api/v1/crm/playbooks?name=winback").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    winback_row = next(row for row in rows if row["name"] == "winback")
    assert (winback_row["workflow"], winback_row["conversion_workflow"]) == (winback.workflow_id, None)


def test_the_admin_shows_a_journey_rule_read_only_and_the_journey_links_its_rules(client, tenant):
    client.force_login(MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN, user__is_staff=True).user)
    rescue = journey(tenant, "payment_failed_rescue")
    page = client.get(reverse("admin:automation_workflow_change", args=[rescue.workflow_id]))
    assert page.status_code == 200 and not page.context["has_change_permission"]
    assert reverse("admin:crm_crmplaybook_change", args=[rescue.pk]) in page.content.decode()
    journey_page = client.get(reverse("admin:crm_crmplaybook_change", args=[rescue.pk])).content.decode()
    for rule_id in (rescue.workflow_id, rescue.conversion_workflow_id):
        assert reverse("admin:automation_workflow_change", args=[rule_id]) in journey_page


def test_the_migration_gives_existing_journeys_the_rules_crm_would_build_today(tenant):
    """The data migration's frozen copy of the rules is what ``crm.rules`` builds: after it runs, a sync of
    each journey finds nothing to change (no new version)."""
    migration = importlib.import_module("crm.migrations.0003_journey_rules_data")
    Workflow.objects.for_tenant(tenant).filter(source="crm").delete()  # the journeys of a tenant from before
    assert not CRMPlaybook.objects.for_tenant(tenant).exclude(workflow=None).exists()
    migration.add_rules(apps, None)
    journeys = list(CRMPlaybook.objects.for_tenant(tenant).select_related("workflow"))
    assert all(j.workflow is not None for j in journeys)
    rescue = journey(tenant, "payment_failed_rescue")
    assert not rules._differs(rescue.conversion_workflow, rules.conversion_rule(rescue))
    for j in journeys:
        assert not rules._differs(j.workflow, rules.start_rule(j)), j.name
        version = WorkflowVersion.objects.get(workflow=j.workflow)
        assert version.definition == definition_of(j.workflow), j.name
        rules.journey_rules_sync(j)
        assert Workflow.objects.get(pk=j.workflow_id).version == 1
    assert WorkflowVersion.objects.filter(workflow__source="crm", workflow__tenant=tenant).count() == 7
    assert not Run.objects.exists()


@pytest.mark.parametrize("trigger_type, config, field", [
    ("health_score_change", {"risk_levels": ["doomed"]}, "trigger_config.risk_levels"),
    ("health_score_change", {"risk_levels": []}, "trigger_config.risk_levels"),
    ("health_score_change", {"entering": True}, "trigger_config.entering"),
    ("health_score_change", {"risk_levels": ["critical"], "entering": "yes"}, "trigger_config.entering"),
    ("status_change", {"to_status": ["churned", "gone"]}, "trigger_config.to_status"),
    ("status_change", {"from_status": []}, "trigger_config.from_status"),
    ("status_change", {"entering": True}, "trigger_config.entering"),
])
def test_the_trigger_extensions_the_journeys_use_are_validated_when_a_rule_is_saved(tenant, trigger_type, config,
                                                                                    field):
    from django.core.exceptions import ValidationError

    from automation.services import workflow_validate

    with pytest.raises(ValidationError) as info:
        workflow_validate(rule=Workflow(tenant=tenant), data={"name": "r", "trigger_type": trigger_type,
                                                              "trigger_config": config})
    assert field in info.value.message_dict


def test_a_rule_on_one_status_keeps_its_stored_config_unchanged(tenant):
    """Rules saved before the extensions normalise exactly as before (no new keys, so no new version)."""
    from automation.services import workflow_validate

    rule = workflow_validate(rule=Workflow(tenant=tenant), data={
        "name": "r", "trigger_type": "status_change", "trigger_config": {"to_status": "at_risk"}})
    assert rule.trigger_config == {"to_status": "at_risk", "include_new_accounts": False}
    rule = workflow_validate(rule=Workflow(tenant=tenant), data={
        "name": "r", "trigger_type": "health_score_change", "trigger_config": {"threshold": 40}})
    assert rule.trigger_config == {"threshold": 40.0, "direction": "decrease", "minimum_change": 0.0}
