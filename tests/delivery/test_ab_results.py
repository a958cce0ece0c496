"""A/B results per template variant (delivery.ab_results): sent, delivered, opened, clicked, converted and a
two-proportion significance test against the control, through GET /api/email-templates/{id}/results/."""

from __future__ import annotations

import pytest

from crm.models import CRMStepExecution
from crm.services import execution_convert, start_journey
from delivery import services
from delivery.ab_results import two_proportion_test
from delivery.models import EmailEvent, Outbox
from delivery.tracking import email_open_record
from tests.factories import AccountFactory, ContactFactory, EmailTemplateFactory

pytestmark = pytest.mark.django_db

VARIANTS = [{"name": "control", "weight": 50}, {"name": "urgent", "weight": 50, "subject": "Act now"}]


def send(tenant, template, variant: str, n: int) -> list[Outbox]:
    return [services.outbox_enqueue(tenant=tenant, channel="email", target=f"{variant}{i}@globex.test", dispatch=False,
                                    payload={"subject": "s", "text": "t", "template": template.name, "variant": variant})
            for i in range(n)]


def click(message: Outbox) -> None:
    EmailEvent.objects.create(tenant_id=message.tenant_id, message=message, email=message.target,
                              kind=EmailEvent.Kind.CLICK, url="https://example.test/")


def test_it_reports_engagement_per_variant_and_a_significant_winner(api, tenant):
    template = EmailTemplateFactory(tenant=tenant, name="offer", variants=VARIANTS)
    control, urgent = send(tenant, template, "control", 50), send(tenant, template, "urgent", 50)
    services.deliver()
    for message in control[:5] + urgent[:20]:
        click(message)
    for message in control[:30] + urgent[:10]:
        email_open_record(message)
        email_open_record(message)  # a second open of the same message counts once

    response = api.get(f"/api/email-templates/{template.pk}/results/")

    assert response.status_code == 200, response.json()
    rows = {row["variant"]: row for row in response.json()}
    assert [(rows[v]["sent"], rows[v]["delivered"], rows[v]["opened"], rows[v]["clicked"]) for v in rows] == [
        (50, 50, 30, 5), (50, 50, 10, 20)]
    assert rows["control"]["significance"] is None
    significance = rows["urgent"]["significance"]
    assert (significance["against"], significance["metric"], significance["significant"]) == ("control", "clicked", True)
    assert significance["p_value"] < 0.001 and significance["z"] > 3


def test_a_small_or_even_split_is_not_significant():
    assert two_proportion_test(5, 50, 6, 50)[1] > 0.5
    assert two_proportion_test(0, 0, 1, 10) is None


def test_conversions_come_from_the_crm_journeys_that_converted(api, tenant):
    template = EmailTemplateFactory(tenant=tenant, name="offer", variants=VARIANTS)
    [won], [lost] = send(tenant, template, "urgent", 1), send(tenant, template, "control", 1)
    for message, converted in ((won, True), (lost, False)):
        contact = ContactFactory(account=AccountFactory(tenant=tenant), is_primary=True)
        execution = start_journey(contact, "payment_failed_rescue", {"amount": "49.00"})
        CRMStepExecution.objects.filter(execution=execution).update(outbox_message_id=message.message_id)
        if converted:
            execution_convert(execution=execution, value="49.00")
    rows = {row["variant"]: row for row in api.get(f"/api/email-templates/{template.pk}/results/").json()}
    assert (rows["urgent"]["converted"], rows["control"]["converted"]) == (1, 0)
    assert rows["urgent"]["significance"]["metric"] == "converted"


def test_another_tenants_template_is_a_404(api, other_tenant):
    theirs = EmailTemplateFactory(tenant=other_tenant, name="offer", variants=VARIANTS)
    assert api.get(f"/api/email-templates/{theirs.pk}/results/").status_code == 404


def test_the_admin_shows_the_results_on_the_template_page(client, tenant):
    from django.urls import reverse  # noqa: PLC0415 - the admin test's imports

    from tests.factories import staff  # noqa: PLC0415

    template = EmailTemplateFactory(tenant=tenant, name="offer", variants=VARIANTS)
    send(tenant, template, "urgent", 3)
    client.force_login(staff(tenant))
    page = client.get(reverse("admin:delivery_emailtemplate_change", args=[template.pk])).content.decode()
    assert "A/B results" in page and "<td>urgent</td><td>3</td>" in page
