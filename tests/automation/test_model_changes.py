"""The event a save raises says what changed since the row was loaded (``automation.events.snapshot``)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account
from automation.models import Event
from tests.factories import AccountFactory, WorkflowFactory

pytestmark = pytest.mark.django_db


def test_a_row_loaded_with_only_some_fields_loads_in_one_query_and_its_save_reports_what_changed(tenant):
    WorkflowFactory(tenant=tenant, trigger_type="model_updated", model_type="account",
                    actions=[{"type": "create_note", "config": {"body": "changed"}}])
    account = AccountFactory(tenant=tenant, name="Globex", industry="Retail")

    with CaptureQueriesContext(connection) as queries:  # it used to recurse, loading one deferred field per level
        partial = Account.objects.for_tenant(tenant).only("id", "tenant_id", "name").get(pk=account.pk)
    assert len(queries) == 1
    partial.name = "Globex Corp"
    partial.save(update_fields=["name"])

    event = Event.objects.filter(type="model_updated", model="account").latest("id")
    assert event.changes == {"name": {"old": "Globex", "new": "Globex Corp"}}
    assert event.payload["industry"] == "Retail"  # the payload still describes the whole row


def test_a_save_nobody_listens_to_reads_no_deferred_field(tenant):
    account = AccountFactory(tenant=tenant, name="Globex")
    partial = Account.objects.for_tenant(tenant).only("id", "tenant_id", "name").get(pk=account.pk)
    partial.name = "Globex Corp"
    with CaptureQueriesContext(connection) as queries:
        partial.save(update_fields=["name"])
    assert [q["sql"].split()[0] for q in queries] == ["UPDATE"]
    assert not Event.objects.exists()
