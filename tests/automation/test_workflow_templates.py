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
    assert rules.count() == len(TEMPLATES) == 7
    assert set(rules.values_list("status", flat=True)) == {"draft"}
    assert "Renewal reminder: 30 days" in set(rules.values_list("name", flat=True))
    assert not Workflow.objects.for_tenant(other_tenant).exists()
