import io

import pytest
from django.core.management import call_command

from automation.models import Workflow
from automation.workflow_templates import TEMPLATES

pytestmark = pytest.mark.django_db


def test_it_loads_every_template_as_an_inactive_draft_once(tenant, other_tenant):
    out = io.StringIO()
    call_command("load_workflow_templates", "--tenant", tenant.slug, stdout=out)
    call_command("load_workflow_templates", "--tenant", tenant.slug, stdout=out)
    rules = Workflow.objects.for_tenant(tenant)
    assert rules.count() == len(TEMPLATES) == 8
    assert set(rules.values_list("status", flat=True)) == {"draft"}
    assert "Renewal reminder: 30 days" in set(rules.values_list("name", flat=True))
    assert not Workflow.objects.for_tenant(other_tenant).exists()


def test_seed_001s_sequences_send_their_emails(tenant, django_capture_on_commit_callbacks, mailoutbox):
    """The onboarding sequence, activated: the welcome email an hour after the account is created (to the
    contact added meanwhile), then getting started 3 days later and the first-week check-in a week after."""
    import datetime  # noqa: PLC0415 - the imports of this test only

    from django.utils import timezone  # noqa: PLC0415

    from automation import scheduling  # noqa: PLC0415
    from delivery import services as delivery  # noqa: PLC0415
    from tests.factories import AccountFactory, ContactFactory, MembershipFactory  # noqa: PLC0415

    call_command("load_workflow_templates", "--tenant", tenant.slug, stdout=io.StringIO())
    Workflow.objects.for_tenant(tenant).filter(name="Onboarding sequence").update(status="active")
    owner = MembershipFactory(tenant=tenant).user
    with django_capture_on_commit_callbacks(execute=True):
        account = AccountFactory(tenant=tenant, name="Initech", owner=owner)
    ContactFactory(account=account, email="peter@initech.test", is_primary=True)
    start = timezone.now()
    for hours in (2, 3 * 24 + 2, 10 * 24 + 3):
        scheduling.run_due_runs(start + datetime.timedelta(hours=hours))
        delivery.deliver()
    assert [(m.to, m.subject) for m in mailoutbox] == [
        (["peter@initech.test"], "Welcome to Initech!"),
        (["peter@initech.test"], f"Getting started with {tenant.name}"),
        (["peter@initech.test"], "How are things going?")]
