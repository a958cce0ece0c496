"""Journeys as data: the defaults per tenant, step validation, conditions, branches and A/B variants,
the admin with steps inline, and the Prometheus counters on /metrics."""

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from accounts.models import Role
from crm.journeys import DEFAULT_JOURNEYS
from crm.models import CRMPlaybook, CRMStep
from crm.scheduler import choose_variant, execute_pending_steps
from crm.services import crm_journeys_ensure, start_journey
from tests.factories import MembershipFactory, TenantFactory

from .conftest import T0, hours, outbox, reload, steps_of

pytestmark = pytest.mark.django_db


def test_it_gives_every_new_tenant_the_six_journeys_and_13_steps(tenant):
    journeys = CRMPlaybook.objects.for_tenant(tenant)
    assert sorted(journeys.values_list("name", flat=True)) == sorted(j["name"] for j in DEFAULT_JOURNEYS)
    assert CRMStep.objects.for_tenant(tenant).count() == 13
    rescue = journeys.get(name="payment_failed_rescue")
    assert [(s.order, s.channel, float(s.delay_hours), s.discount_percent) for s in rescue.steps.order_by("order")] == [
        (0, "email", 0.0, None), (1, "chat", 24.0, 20), (2, "owner_dm", 48.0, None)]
    assert journeys.get(name="winback").steps.get(order=0).delay_hours == 24
    for step in CRMStep.objects.for_tenant(tenant):
        step.full_clean()  # every default template exists and every default step is valid


def test_it_never_overwrites_a_tenants_edits_and_restores_a_deleted_default(tenant):
    CRMPlaybook.objects.filter(tenant=tenant, name="winback").update(title="Our winback", active=False)
    CRMPlaybook.objects.filter(tenant=tenant, name="churn_risk").delete()
    assert [p.name for p in crm_journeys_ensure(tenant)] == ["churn_risk"]
    assert crm_journeys_ensure(tenant) == []
    winback = CRMPlaybook.objects.get(tenant=tenant, name="winback")
    assert (winback.title, winback.active) == ("Our winback", False)


@pytest.mark.parametrize("changes, field", [
    ({"template": "crm/nope.html"}, "template"),
    ({"channel": "pigeon"}, "channel"),
    ({"conditions": {"field": "account.nonexistent", "operator": "equals", "value": 1}}, "conditions"),
    ({"on_condition_fail": "branch"}, "branch_to"),
    ({"on_condition_fail": "branch", "branch_to": 0}, "branch_to"),
    ({"variants": [{"name": "A"}, {"name": "A"}]}, "variants"),
    ({"variants": [{"name": "A", "weight": -1}]}, "variants"),
    ({"variants": [{"name": "B", "template": "crm/missing.html"}]}, "variants"),
    ({"discount_percent": 150}, "discount_percent"),
])
def test_it_refuses_a_bad_step_when_it_is_saved_naming_the_field(tenant, changes, field):
    step = CRMStep.objects.get(tenant=tenant, playbook__name="payment_failed_rescue", order=1)
    for name, value in changes.items():
        setattr(step, name, value)
    with pytest.raises(ValidationError) as info:
        step.full_clean()
    assert field in info.value.message_dict


def test_it_skips_or_branches_or_ends_on_conditions(tenant, account, contact):
    rescue = CRMPlaybook.objects.get(tenant=tenant, name="payment_failed_rescue")
    not_churned = {"field": "account.status", "operator": "equals", "value": "churned"}
    rescue.steps.filter(order=0).update(conditions=not_churned, on_condition_fail="branch", branch_to=2)
    execution = start_journey(contact, rescue, now=T0)
    assert execute_pending_steps(now=T0)["skipped"] == 1
    first = steps_of(execution)[0]
    assert first.status == "skipped" and "branched to step 2" in first.error
    assert (reload(execution).current_step, reload(execution).next_step_at) == (2, T0 + hours(48))

    rescue.steps.filter(order=0).update(on_condition_fail="stop", branch_to=None)
    contact2 = type(contact).objects.create(tenant=tenant, account=account, name="B", email="b@globex.test")
    stopped = start_journey(contact2, rescue, now=T0)
    execute_pending_steps(now=T0)
    assert reload(stopped).status == "completed" and len(steps_of(stopped)) == 1

    rescue.steps.filter(order=0).update(conditions={"field": "account.status", "operator": "equals",
                                                    "value": "active"})
    contact3 = type(contact).objects.create(tenant=tenant, account=account, name="C", email="c@globex.test")
    sent = start_journey(contact3, rescue, now=T0)
    execute_pending_steps(now=T0)
    assert steps_of(sent)[0].status == "sent"


def test_it_skips_email_to_a_contact_who_opted_out(tenant, account, contact):
    contact.email_opt_out = True
    contact.save()
    execution = start_journey(contact, "churn_risk", now=T0)
    execute_pending_steps(now=T0)
    assert steps_of(execution)[0].status == "skipped" and not outbox(tenant)
    assert reload(execution).current_step == 1


def test_it_splits_ab_variants_stably_and_records_which_was_sent(tenant, account, contact):
    churn = CRMPlaybook.objects.get(tenant=tenant, name="churn_risk")
    step = churn.steps.get(order=0)
    step.variants = [{"name": "A", "weight": 1}, {"name": "B", "weight": 1, "template": "crm/inactivity.html",
                                                  "subject": "Variant B for {{ account.name }}"}]
    step.full_clean()
    step.save()
    execution = start_journey(contact, churn, now=T0)
    chosen = choose_variant(execution, step)
    assert chosen == choose_variant(execution, step)  # the same on every retry
    execute_pending_steps(now=T0)
    row = steps_of(execution)[0]
    assert row.variant == chosen["name"]
    if chosen["name"] == "B":
        assert outbox(tenant)[0].payload["subject"] == "Variant B for Globex"
    split = {choose_variant(type(execution)(pk=pk), step)["name"] for pk in range(1, 60)}
    assert split == {"A", "B"}


def test_it_shows_ab_outcomes_in_the_stats(api, tenant, account, contact):
    from crm.services import execution_convert

    churn = CRMPlaybook.objects.get(tenant=tenant, name="churn_risk")
    churn.steps.filter(order=0).update(variants=[{"name": "A", "weight": 1}, {"name": "B", "weight": 1}])
    execution = start_journey(contact, churn, now=T0)
    execute_pending_steps(now=T0)
    execution_convert(execution=execution, value=10)
    variant = steps_of(execution)[0].variant
    stats = {j["name"]: j for j in api.get("/api/v1/crm/stats").json()["journeys"]}
    assert stats["churn_risk"]["ab_tests"] == {"0": {variant: {"sent": 1, "converted": 1, "conversion_rate": 1.0}}}


def test_it_goes_on_with_the_next_existing_step_when_steps_were_deleted_meanwhile(tenant, account, contact):
    rescue = CRMPlaybook.objects.get(tenant=tenant, name="payment_failed_rescue")
    execution = start_journey(contact, rescue, now=T0)
    execute_pending_steps(now=T0)
    rescue.steps.filter(order=1).delete()
    execute_pending_steps(now=T0 + hours(24))
    assert [(s.step_order, s.status) for s in steps_of(execution)] == [(0, "sent"), (1, "cancelled"), (2, "sent")]
    assert reload(execution).status == "completed"


# --- admin -------------------------------------------------------------------------------------

def _staff_client(tenant, role):
    membership = MembershipFactory(tenant=tenant, role=role, user__is_staff=True)
    client = Client()
    client.force_login(membership.user)
    return client


def test_it_edits_journeys_with_steps_inline_in_the_admin(tenant):
    client = _staff_client(tenant, Role.TENANT_ADMIN)
    assert client.get("/admin/crm/crmplaybook/").status_code == 200
    rescue = CRMPlaybook.objects.get(tenant=tenant, name="payment_failed_rescue")
    page = client.get(f"/admin/crm/crmplaybook/{rescue.pk}/change/")
    assert page.status_code == 200 and b"crm/rescue_chat.txt" in page.content
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k in form.fields}
    data.update({"name": rescue.name, "title": "Rescue", "trigger_event": "payment_failed", "active": "on",
                 "reentry_cooldown_hours": "168"})
    steps = list(rescue.steps.order_by("order"))
    prefix = "steps"
    data.update({f"{prefix}-TOTAL_FORMS": str(len(steps)), f"{prefix}-INITIAL_FORMS": str(len(steps)),
                 f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000"})
    for i, s in enumerate(steps):
        data.update({f"{prefix}-{i}-id": str(s.pk), f"{prefix}-{i}-playbook": str(rescue.pk),
                     f"{prefix}-{i}-order": str(s.order), f"{prefix}-{i}-name": s.name,
                     f"{prefix}-{i}-delay_hours": str(s.delay_hours), f"{prefix}-{i}-channel": s.channel,
                     f"{prefix}-{i}-template": s.template, f"{prefix}-{i}-subject": s.subject,
                     f"{prefix}-{i}-discount_percent": str(s.discount_percent or ""),
                     f"{prefix}-{i}-quiet_hours": s.quiet_hours, f"{prefix}-{i}-conditions": "{}",
                     f"{prefix}-{i}-on_condition_fail": "skip", f"{prefix}-{i}-branch_to": "",
                     f"{prefix}-{i}-variants": "[]"})
    data[f"{prefix}-1-discount_percent"] = "25"
    response = client.post(f"/admin/crm/crmplaybook/{rescue.pk}/change/", data)
    assert response.status_code == 302, response.context["errors"] if response.context else response
    assert rescue.steps.get(order=1).discount_percent == 25
    data[f"{prefix}-1-template"] = "crm/missing.txt"
    response = client.post(f"/admin/crm/crmplaybook/{rescue.pk}/change/", data)
    assert response.status_code == 200 and b"does not exist" in response.content


def test_it_keeps_other_roles_out_of_the_crm_admin(tenant):
    client = _staff_client(tenant, Role.VIEWER)
    assert client.get("/admin/crm/crmplaybook/").status_code == 403


def test_it_shows_executions_read_only_in_the_admin(tenant, account, contact):
    execution = start_journey(contact, "winback")
    client = _staff_client(tenant, Role.PRACTITIONER)
    assert client.get("/admin/crm/crmplaybookexecution/").status_code == 200
    assert client.get(f"/admin/crm/crmplaybookexecution/{execution.pk}/change/").status_code == 200
    response = client.post("/admin/crm/crmplaybookexecution/", {
        "action": "cancel_executions", "_selected_action": [execution.pk]})
    assert response.status_code == 302 and reload(execution).status == "cancelled"


def test_it_shows_another_tenants_journeys_to_nobody(tenant):
    other = TenantFactory()
    foreign = CRMPlaybook.objects.get(tenant=other, name="winback")
    client = _staff_client(tenant, Role.TENANT_ADMIN)
    assert client.get(f"/admin/crm/crmplaybook/{foreign.pk}/change/").status_code == 302  # "does not exist"


# --- metrics -----------------------------------------------------------------------------------

def _sample(text, name, labels=""):
    for line in text.splitlines():
        if line.startswith(f"{name}{labels} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.split()[-1])
    return 0.0


def test_it_counts_fired_journeys_steps_and_recoveries_on_metrics(tenant, account, contact, sms,
                                                                 django_capture_on_commit_callbacks):
    from crm import triggers

    from django.utils import timezone

    client = Client()
    before = client.get("/metrics").content.decode()
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):  # the engine starts it, its first step runs at once
        triggers.payment_failed(account)
    contact.phone = ""
    contact.save()
    with django_capture_on_commit_callbacks(execute=True):
        execute_pending_steps(now=now + hours(25))
    with django_capture_on_commit_callbacks(execute=True):
        triggers.payment_succeeded(account, amount=10)
    response = client.get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    after = response.content.decode()
    for name, labels, delta in [
        ("crm_playbook_fired_total", '{name="payment_failed_rescue"}', 1),
        ("crm_step_sent_total", '{channel="email"}', 1),
        ("crm_step_failed_total", '{channel="chat"}', 1),
        ("crm_rescue_recovered_total", "", 1),
    ]:
        assert _sample(after, name, labels) - _sample(before, name, labels) == delta, name


def test_it_does_not_count_a_start_that_was_rolled_back(tenant, account, contact):
    from django.db import transaction

    fired = '{name="winback"}'
    before = _sample(Client().get("/metrics").content.decode(), "crm_playbook_fired_total", fired)
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            start_journey(contact, "winback")
            raise RuntimeError("rolled back")
    assert _sample(Client().get("/metrics").content.decode(), "crm_playbook_fired_total", fired) == before


def test_metrics_count_what_another_process_did(tenant, account, contact):
    """Read from the database: a journey started by a command, the tick or a worker shows on the web's /metrics
    (here: a row written without going through this process's code paths at all)."""
    from crm.models import CRMPlaybook, CRMPlaybookExecution

    fired = '{name="winback"}'
    before = _sample(Client().get("/metrics").content.decode(), "crm_playbook_fired_total", fired)
    journey = CRMPlaybook.objects.for_tenant(tenant).get(name="winback")
    CRMPlaybookExecution.objects.create(tenant=tenant, playbook=journey, contact=contact, account=account)
    assert _sample(Client().get("/metrics").content.decode(), "crm_playbook_fired_total", fired) == before + 1


def test_it_can_protect_metrics_with_a_token(settings):
    settings.METRICS_TOKEN = "s3cret"
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


def test_it_sends_the_owner_notification_to_a_tenant_admin_when_the_account_has_no_owner(tenant, account, contact):
    admin = MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN).user
    account.owner = None
    account.save()
    execution = start_journey(contact, "churn_risk", now=T0)
    execution.current_step, execution.next_step_at = 1, T0
    execution.save()
    execute_pending_steps(now=T0)
    [message] = outbox(tenant)
    assert message.target == admin.email
    assert "Globex" in message.payload["subject"] and "Ada Lovelace" in message.payload["text"]
    assert "churn_risk" in message.payload["text"] and "Owner escalation" in message.payload["text"]
    skipped, row = steps_of(execution)  # it went straight to step 1
    assert (skipped.status, row.status) == ("cancelled", "sent") and "no owner" in row.error


def test_it_escapes_html_bodies_but_not_subjects_or_text(tenant, account, contact):
    account.name = "Smith & <Sons>"
    account.save()
    start_journey(contact, "churn_risk", now=T0)
    execute_pending_steps(now=T0)
    payload = outbox(tenant)[0].payload
    assert payload["subject"] == "How can we help Smith & <Sons>?"
    assert "Smith &amp; &lt;Sons&gt;" in payload["html"] and "<Sons>" not in payload["html"]
    assert "How can we help Smith & <Sons>?" in payload["text"]
