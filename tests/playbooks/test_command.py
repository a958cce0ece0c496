"""``manage.py evaluate_playbook_triggers``: every tenant in its own context, or the ones named."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from playbooks import services
from playbooks.models import PlaybookExecution, PlaybookTrigger
from tests.factories import AccountFactory, SurveyResponseFactory, TenantFactory

pytestmark = pytest.mark.django_db


def unhappy_tenant(slug):
    tenant = TenantFactory(slug=slug)
    SurveyResponseFactory(account=AccountFactory(tenant=tenant, name=f"{slug} account"), score=0)
    services.playbook_trigger_save(tenant=tenant, playbook_type="voc", changes={"auto_trigger_enabled": True})
    return tenant


def run(*args):
    out = StringIO()
    call_command("evaluate_playbook_triggers", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_it_evaluates_every_tenant(db):
    first, second = unhappy_tenant("first"), unhappy_tenant("second")
    quiet = TenantFactory(slug="quiet")

    output = run()

    assert "first: 1 trigger(s) evaluated, 1 fired" in output
    assert "second: 1 trigger(s) evaluated, 1 fired" in output
    assert "quiet: 0 trigger(s) evaluated, 0 fired" in output
    assert "voc: VoC Sprint triggered for 1 account(s); 1 execution(s) started" in output
    for tenant in (first, second):
        assert PlaybookExecution.objects.for_tenant(tenant).get().source == "schedule"
        assert PlaybookTrigger.objects.for_tenant(tenant).get(playbook_type="voc").trigger_count == 1
    assert PlaybookTrigger.objects.for_tenant(quiet).count() == 5  # defaults created on the way


def test_it_evaluates_only_the_named_tenants(db):
    first, second = unhappy_tenant("first"), unhappy_tenant("second")

    output = run("--tenant", "first", "--tenant", str(first.pk))

    assert "first:" in output and "second:" not in output
    assert PlaybookExecution.objects.for_tenant(first).count() == 1
    assert PlaybookExecution.objects.for_tenant(second).count() == 0


def test_it_refuses_an_unknown_tenant(db):
    with pytest.raises(CommandError, match="No tenant 'nope'"):
        run("--tenant", "nope")


def test_it_saves_nothing_on_a_dry_run(db):
    tenant = unhappy_tenant("first")

    output = run("--dry-run")

    assert "voc: VoC Sprint triggered for 1 account(s)" in output
    assert PlaybookExecution.objects.count() == 0
    assert PlaybookTrigger.objects.for_tenant(tenant).get(playbook_type="voc").trigger_count == 0
