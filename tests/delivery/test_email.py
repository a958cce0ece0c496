"""Email: tenant templates with seed 001's variables, validated at save, rendered from real data, opt-out."""

import datetime
from decimal import Decimal

import pytest
from django.core import signing
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Engagement, Goal
from delivery import email as emails
from delivery import services
from automation.models import RunStep
from delivery.models import EmailTemplate, Outbox
from tests.factories import (
    AccountFactory, ContactFactory, EmailTemplateFactory, EngagementFactory, GoalFactory, MembershipFactory,
    WorkflowFactory, health_score,
)

pytestmark = pytest.mark.django_db


def at_risk(account):
    account_services.account_save(account=account, changes={"status": "at_risk"})


def at_risk_rule(tenant, **config):
    return WorkflowFactory(tenant=tenant, trigger_type="status_change", trigger_config={"to_status": "at_risk"},
                           actions=[{"type": "send_email", "config": config}])


def test_it_renders_an_email_with_variables_from_a_real_account(tenant, on_commit, mailoutbox):
    owner = MembershipFactory(tenant=tenant, user__username="casey@acme.test", user__first_name="Casey",
                              user__last_name="Manager").user
    account = AccountFactory(tenant=tenant, owner=owner, name="GlobalTech Corporation", arr=Decimal("250000"),
                             renewal_date=datetime.date(2026, 6, 30), industry="Manufacturing")
    health_score(account)
    ContactFactory(account=account, name="Dana Scully", email="dana@globaltech.test", role="Champion", is_primary=True)
    EngagementFactory(account=account, kind=Engagement.Kind.MEETING, outcome=Engagement.Outcome.COMPLETED,
                      occurred_at=timezone.make_aware(datetime.datetime(2025, 1, 14, 15, 0)))
    GoalFactory(account=account, status=Goal.Status.CREATED)
    GoalFactory(account=account, status=Goal.Status.AT_RISK)
    GoalFactory(account=account, status=Goal.Status.ACHIEVED)
    qbr = EmailTemplateFactory(
        tenant=tenant, name="qbr", category="renewal", variables=["product_name"],
        subject="{{ account.name }}: your review with {{ csm.name }}",
        html="<p>Hi {{ contact.first_name }}, {{ account.name }} ({{ account.industry }}) scores "
             "{{ account.health_score }} ({{ account.risk_level }}), ARR {{ account.arr|floatformat:0 }}, "
             "renews {{ account.renewal_date }}. Last meeting {{ engagement.last_meeting_date }}. "
             "Goals: {{ goals.active_goals }} active, {{ goals.at_risk_goals }} at risk, "
             "{{ goals.completed_goals }} done. {{ product_name }}</p>"
             "<a href=\"{{ unsubscribe_url }}\">Unsubscribe</a>",
        text="Hi {{ contact.first_name }}, about {{ custom.product_name }} & {{ account.name }}.")
    at_risk_rule(tenant, template_id=qbr.pk, recipients={"customer_contacts": True},
                 personalization={"product_name": "Acme & Co Analytics"})
    with on_commit():
        at_risk(account)
    [email] = mailoutbox
    assert email.to == ["dana@globaltech.test"]
    assert email.subject == "GlobalTech Corporation: your review with Casey Manager"
    assert email.body == "Hi Dana, about Acme & Co Analytics & GlobalTech Corporation."  # text: not escaped
    html, mimetype = email.alternatives[0]
    assert mimetype == "text/html"
    assert ("<p>Hi Dana, GlobalTech Corporation (Manufacturing) scores 70.0 (Moderate), ARR 250000, renews 2026-06-30. "
            "Last meeting 2025-01-14. Goals: 2 active, 1 at risk, 1 done. Acme &amp; Co Analytics</p>") in html
    message = Outbox.objects.get()
    assert message.status == Outbox.Status.DELIVERED and email.extra_headers["X-Message-Id"] == message.message_id
    unsubscribe = email.extra_headers["List-Unsubscribe"]
    assert unsubscribe.startswith("<http://localhost:8000/api/unsubscribe/") and unsubscribe[1:-1] in html
    assert RunStep.objects.get().output["template"] == "qbr"


def test_it_reports_unknown_variables_when_a_template_is_saved(tenant):
    with pytest.raises(ValidationError) as error:
        EmailTemplateFactory(tenant=tenant, subject="Hi {{ acount.name }}", variables=["code"],
                             html="<p>{{ contact.nickname }} {{ code }} {{ custom.code }} {{ custom.secret }}"
                                  "{% for goal in goal_list %}{{ goal.title }}{% endfor %}"
                                  "{% if account.mood == 'sad' %}x{% endif %}{{ account.name|default:fallback }}</p>")
    errors = error.value.message_dict
    assert errors["subject"] == ["unknown variable 'acount.name'; known: account, contact, csm, engagement, goals, "
                                 "tenant, unsubscribe_url, and custom variables declared in 'variables'"]
    flagged = sorted(message.split("'")[1] for message in errors["html"])
    assert flagged == ["account.mood", "contact.nickname", "custom.secret", "fallback", "goal_list"]
    assert EmailTemplate.objects.count() == 0


def test_it_accepts_declared_custom_variables_loops_and_filters(tenant):
    saved = EmailTemplateFactory(
        tenant=tenant, variables=["custom.discount_code", "items"],
        html="{{ discount_code }} {{ custom.discount_code|upper }} {% for i in items %}{{ i }} "
             "{{ forloop.counter }}{% endfor %}{% with n=account.name %}{{ n }}{% endwith %}")
    assert saved.pk is not None


@pytest.mark.parametrize("data, field, message", [
    ({"html": "{% if %}"}, "html", "invalid template"),
    ({"html": "{% include 'x.html' %}"}, "html", "invalid template"),
    ({"html": "{% load static %}"}, "html", "invalid template"),
    ({"html": "{% lorem 1000000 w %}"}, "html", "invalid template"),
    ({"html": "{{ account.name|center:'100000000' }}"}, "html", "invalid template"),
    ({"subject": "{% for a in account.name %}{% for b in account.name %}x{% endfor %}{% endfor %}"}, "subject",
     "loops inside loops"),
    ({"variables": "product_name"}, "variables", "must be a list"),
    ({"variables": ["account"]}, "variables", "built-in"),
])
def test_it_names_the_field_of_a_bad_template(tenant, data, field, message):
    with pytest.raises(ValidationError) as error:
        EmailTemplateFactory(tenant=tenant, **data)
    assert message in error.value.message_dict[field][0]


def test_it_validates_templates_saved_through_full_clean(tenant):
    row = EmailTemplate(tenant=tenant, name="x", subject="{{ nope }}", html="<p></p>")
    with pytest.raises(ValidationError) as error:
        row.full_clean()
    assert "unknown variable 'nope'" in error.value.message_dict["subject"][0]


def test_it_skips_contacts_who_opted_out_and_says_so(tenant, on_commit, mailoutbox):
    account = AccountFactory(tenant=tenant)
    ContactFactory(account=account, email="yes@c.test")
    ContactFactory(account=account, email="no@c.test", email_opt_out=True)
    at_risk_rule(tenant, template_id=EmailTemplateFactory(tenant=tenant).name, recipients={"customer_contacts": True})
    with on_commit():
        at_risk(account)
    assert [m.to for m in mailoutbox] == [["yes@c.test"]]
    step = RunStep.objects.get()
    assert step.status == "success"
    assert step.output["skipped"] == [{"email": "no@c.test", "reason": "opted out of email"}]


def test_it_fails_the_step_with_the_reason_when_every_recipient_opted_out(tenant, on_commit, mailoutbox):
    account = AccountFactory(tenant=tenant)
    ContactFactory(account=account, email="no@c.test", email_opt_out=True)
    at_risk_rule(tenant, template_id=EmailTemplateFactory(tenant=tenant).pk, recipient="entity_email")
    with on_commit():
        at_risk(account)
    step = RunStep.objects.get()
    assert step.status == "failed"
    assert step.error == "send_email: every recipient has opted out of email: no@c.test; nothing was sent"
    assert mailoutbox == [] and Outbox.objects.count() == 0


def test_it_does_not_send_to_a_contact_who_opted_out_after_the_message_was_queued(tenant, mailoutbox):
    account = AccountFactory(tenant=tenant)
    contact = ContactFactory(account=account, email="late@c.test")
    at_risk_rule(tenant, template_id=EmailTemplateFactory(tenant=tenant).pk)
    at_risk(account)  # the event is processed after commit: do it by hand, without delivering
    from automation import engine
    from automation.models import Event

    engine.process_event(tenant.pk, Event.objects.get().pk)
    emails.unsubscribe(emails.unsubscribe_token(contact))
    services.deliver()
    message = Outbox.objects.get()
    assert (message.status, message.error) == (Outbox.Status.DEAD, "the recipient has opted out of email")
    assert mailoutbox == []


def test_it_sends_to_the_owner_and_custom_addresses(tenant, on_commit, mailoutbox):
    owner = MembershipFactory(tenant=tenant, user__username="csm@acme.test").user
    account = AccountFactory(tenant=tenant, owner=owner)
    at_risk_rule(tenant, template_id=EmailTemplateFactory(tenant=tenant).pk, recipient="custom",
                 custom_email="boss@acme.test",
                 recipients={"internal_team": True, "specific_emails": ["ops@acme.test"]})
    with on_commit():
        at_risk(account)
    assert sorted(m.to[0] for m in mailoutbox) == ["boss@acme.test", "csm@acme.test", "ops@acme.test"]


def test_it_installs_the_default_rescue_and_winback_templates(tenant):
    account = AccountFactory(tenant=tenant, name="TechStart Solutions")
    contact = ContactFactory(account=account, name="Sam Lee")
    rescue = emails.email_template_get(tenant, "rescue")
    assert rescue.pk and rescue.category == "crm" and emails.email_template_get(tenant, "rescue").pk == rescue.pk
    rendered = emails.preview(rescue, account=account, contact=contact,
                              custom={"update_url": "https://billing.test/u", "discount_code": "CRM20-AB12",
                                      "discount_percent": 20})
    assert "TechStart Solutions" in rendered["subject"]
    assert "Hi Sam," in rendered["html"] and "CRM20-AB12" in rendered["html"] and "https://billing.test/u" in rendered["html"]
    assert "20% off" in rendered["text"]
    winback = emails.email_template_get(tenant, "winback")
    assert "CRM20-AB12" in emails.preview(winback, account=account, contact=contact,
                                          custom={"discount_code": "CRM20-AB12"})["html"]
    assert sorted(t.name for t in emails.install_default_templates(tenant)) == [
        "first_week_checkin", "getting_started", "health_concern", "renewal_planning", "renewal_reminder",
        "urgent_intervention", "urgent_renewal", "welcome_email"]
    for row in EmailTemplate.objects.for_tenant(tenant):
        emails.email_template_validate(row)  # every default passes the save-time check


def test_it_unsubscribes_a_contact_with_the_signed_link(tenant, other_tenant):
    contact = ContactFactory(account=AccountFactory(tenant=tenant))
    token = emails.unsubscribe_token(contact)
    assert emails.unsubscribe(token).email_opt_out is True
    contact.refresh_from_db()
    assert contact.email_opt_out is True
    with pytest.raises(signing.BadSignature):
        emails.unsubscribe(token[:-2] + "xx")


def test_it_unsubscribes_through_the_page_with_a_post_only(tenant, rf):
    from delivery.views import unsubscribe_view

    contact = ContactFactory(account=AccountFactory(tenant=tenant), email="dana@c.test")
    token = emails.unsubscribe_token(contact)
    assert unsubscribe_view(rf.get("/"), token=token).status_code == 200
    contact.refresh_from_db()
    assert contact.email_opt_out is False  # a link scanner's GET changes nothing
    response = unsubscribe_view(rf.post("/"), token=token)
    contact.refresh_from_db()
    assert response.status_code == 200 and b"dana@c.test will not receive" in response.content
    assert contact.email_opt_out is True
    assert unsubscribe_view(rf.post("/"), token="forged").status_code == 400
