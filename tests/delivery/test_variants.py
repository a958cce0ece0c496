"""A/B variants of email templates: validation, deterministic weighted choice by idempotency key,
rendering, the variant recorded on the outbox message, and the split report."""

from collections import Counter

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from delivery import email as emails
from delivery import services
from delivery.models import Outbox
from tests.factories import AccountFactory, ContactFactory, EmailTemplateFactory, WorkflowFactory

pytestmark = pytest.mark.django_db

VARIANTS = [{"name": "control", "weight": 80},
            {"name": "urgent", "weight": 20, "subject": "{{ account.name }}: act now, {{ contact.first_name }}",
             "html": "<p>Hurry, {{ contact.name }}!</p>"}]


def template(tenant, variants=VARIANTS, **data):
    """A template with these A/B ``variants``."""
    data = {"name": "checkin", "subject": "Checking in on {{ account.name }}", "html": "<p>Hi {{ contact.name }}</p>",
            **data}
    return EmailTemplateFactory(tenant=tenant, variants=variants, **data)


@pytest.mark.parametrize("variants, field, reason", [
    ([{"name": "a", "subject": "{{ account.secret }}"}], "variants[0].subject", "unknown variable 'account.secret'"),
    ([{"name": "a"}, {"name": "a"}], "variants[1].name", "used by another variant"),
    ([{"weight": 1}], "variants[0].name", "is required"),
    ([{"name": "a", "weight": -1}], "variants[0].weight", "from 0 to"),
    ([{"name": "a", "weight": 0}], "variants", "weight above 0"),
    ([{"name": "a", "colour": "red"}], "variants[0]", "unknown key 'colour'"),
    ([{"name": "a", "html": "{% if %}"}], "variants[0].html", "invalid template"),
    ({"name": "a"}, "variants", "must be a list"),
])
def test_it_rejects_a_bad_variant_naming_the_field(tenant, variants, field, reason):
    with pytest.raises(ValidationError) as caught:
        template(tenant, variants)
    assert reason in " ".join(caught.value.message_dict[field])


def test_it_picks_the_same_variant_for_the_same_key_and_follows_the_weights(tenant):
    t = template(tenant)
    assert emails.pick_variant(t, "run:1:0:send_email:a@x.test") is emails.pick_variant(t, "run:1:0:send_email:a@x.test")
    picks = Counter(emails.pick_variant(t, f"run:{n}:0:send_email:a@x.test")["name"] for n in range(4000))
    assert 0.77 < picks["control"] / 4000 < 0.83
    t.variants = [{"name": "control", "weight": 0}, {"name": "urgent", "weight": 5}]
    assert {emails.pick_variant(t, f"k{n}")["name"] for n in range(200)} == {"urgent"}  # weight 0: paused
    t.variants = []
    assert emails.pick_variant(t, "k") is None


def test_it_renders_the_picked_variant_falling_back_to_the_template_parts(tenant):
    t = template(tenant)
    account = AccountFactory(tenant=tenant, name="Globex")
    contact = ContactFactory(account=account, name="Ada Lovelace", email="ada@globex.test")
    context = emails.email_context(tenant=tenant, account=account, contact=contact)
    keys = {emails.pick_variant(t, f"k{n}")["name"]: f"k{n}" for n in range(50)}
    urgent = emails.render_for_send(t, context, key=keys["urgent"])
    control = emails.render_for_send(t, context, key=keys["control"])
    assert (urgent["variant"], urgent["subject"], urgent["html"]) == (
        "urgent", "Globex: act now, Ada", "<p>Hurry, Ada Lovelace!</p>")
    assert (control["variant"], control["subject"], control["html"]) == (
        "control", "Checking in on Globex", "<p>Hi Ada Lovelace</p>")
    assert urgent["template"] == "checkin"
    assert emails.render_for_send(t, context, key=keys["urgent"], subject="Override")["subject"] == "Override"
    assert emails.preview(t, account=account, contact=contact, variant="urgent")["subject"] == "Globex: act now, Ada"
    with pytest.raises(ValidationError):
        emails.preview(t, account=account, contact=contact, variant="nope")


def test_it_records_the_variant_on_the_message_and_reports_the_split(tenant):
    t = template(tenant)
    account = AccountFactory(tenant=tenant, name="Globex")
    sent = Counter()
    for n in range(40):
        contact = ContactFactory(account=account, name=f"Contact {n}", email=f"c{n}@globex.test")
        key = f"run:9:0:send_email:c{n}@globex.test"
        payload = emails.render_for_send(t, emails.email_context(tenant=tenant, account=account, contact=contact),
                                         key=key)
        message = services.outbox_enqueue(tenant=tenant, channel="email", target=contact.email, payload=payload,
                                          idempotency_key=key, dispatch=False)
        assert (message.email_template, message.variant) == (t, payload["variant"])
        sent[payload["variant"]] += 1
    # a sender that names the template but picks no variant (the variant "")
    services.outbox_enqueue(tenant=tenant, channel="email", target="x@globex.test", dispatch=False,
                            payload={"subject": "s", "text": "t", "template": "checkin"})
    services.deliver()
    assert len(mail.outbox) == 41
    Outbox.objects.filter(target="c2@globex.test").update(status=Outbox.Status.DEAD)  # say it bounced

    report = {row["variant"]: row for row in emails.email_variant_report(t)}
    assert list(report) == ["control", "urgent", ""]
    assert report["control"]["sent"] == sent["control"] and report["urgent"]["sent"] == sent["urgent"]
    assert sent["control"] > sent["urgent"] > 0
    assert (report["control"]["weight"], report["control"]["share"], report["urgent"]["share"]) == (80, 0.8, 0.2)
    assert report[""]["sent"] == 1 and report[""]["configured"] is False
    total = sum(r["delivered"] + r["dead"] + r["pending"] for r in report.values())
    assert (total, sum(r["delivered"] for r in report.values()), sum(r["dead"] for r in report.values())) == (41, 40, 1)
    c2 = Outbox.objects.get(target="c2@globex.test").variant
    assert report[c2]["delivery_rate"] == round(report[c2]["delivered"] / report[c2]["sent"], 4)
    assert emails.email_variant_report(template(tenant, [], name="plain")) == []


def test_it_records_the_variant_a_rules_send_email_action_picked(tenant):
    from automation import engine

    tpl = template(tenant)
    account = AccountFactory(tenant=tenant)
    ContactFactory(account=account, tenant=tenant, email="champion@customer.test", is_primary=True)
    rule = WorkflowFactory(tenant=tenant, name="Mail", actions=[
        {"type": "send_email", "config": {"template_id": tpl.name, "recipient": "primary_contact"}}])
    run = engine.fire(rule, account=account, manual=True)
    assert run.status == "success", run.error
    message = Outbox.objects.get(channel="email")
    assert message.email_template == tpl
    assert message.variant in {v["name"] for v in VARIANTS}
