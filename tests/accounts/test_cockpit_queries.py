"""The cockpit's pages make a bounded number of queries: a fixed ceiling, and the same count whatever the
size of the book or the account's history (bench/cockpit_bench.py times them on 10,000 accounts)."""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.demo import DEMO_ADMIN, demo_seed
from accounts.models import Account, UsageMetric
from playbooks.models import Playbook
from playbooks.services import trigger_playbook_manually
from tests.factories import AccountFactory, EngagementFactory, NoteFactory, SupportTicketFactory

pytestmark = pytest.mark.django_db
HOME_MAX = 25
CUSTOMER_360_MAX = 43  # 44 before the why-scores read became one query (demo, grown: 42)


@pytest.fixture
def demo():
    return demo_seed()


@pytest.fixture
def csm(demo, client):
    user = get_user_model().objects.get(email=DEMO_ADMIN[0])
    client.force_login(user)
    client.get(reverse("admin:index"))  # the session and the content types are read once, not per page
    return user


def queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def grow(demo, csm, techstart, batch: int, n=12):
    """More of everything: accounts at risk with scores and tasks, a longer history for TechStart."""
    today, now = timezone.localdate(), timezone.now()
    play = Playbook.objects.for_tenant(demo).get(name="Health Score Alert - Critical")
    for i in range(n):
        account = AccountFactory(tenant=demo, owner=csm, name=f"Grown {batch}-{i}",
                                 renewal_date=today + datetime.timedelta(days=i + 1))
        for days in (40, 10, 0):
            services.health_score_record(account=account, components={"usage_score": 20 + i, "adoption_score": 30},
                                         calculated_at=now - datetime.timedelta(days=days, minutes=i))
        services.task_create(account=account, title=f"Call {i}", assignee=csm, due_date=today - datetime.timedelta(days=i))
        trigger_playbook_manually(play, account, "growing the book", user=csm, force=True)
        NoteFactory(account=techstart, body=f"note {i}")
        EngagementFactory(account=techstart)
        SupportTicketFactory(account=techstart, subject=f"ticket {i}")
        services.health_score_record(account=techstart, components={"usage_score": 25 + i},
                                     calculated_at=now - datetime.timedelta(days=60 + batch * n + i))
        UsageMetric.objects.create(tenant=demo, account=techstart, active_users=i, logins=i,
                                   date=today - datetime.timedelta(days=40 + batch * n + i))


def test_the_home_page_makes_a_bounded_number_of_queries(demo, csm, client, django_assert_max_num_queries):
    with django_assert_max_num_queries(HOME_MAX):
        assert client.get(reverse("admin:index")).status_code == 200


def test_the_360_page_makes_a_bounded_number_of_queries(demo, csm, client, django_assert_max_num_queries):
    techstart = Account.objects.for_tenant(demo).get(name="TechStart Solutions")

    with django_assert_max_num_queries(CUSTOMER_360_MAX):
        assert client.get(reverse("admin:accounts_account_360", args=[techstart.pk])).status_code == 200


def test_the_query_counts_do_not_grow_with_the_data(demo, csm, client):
    techstart = Account.objects.for_tenant(demo).get(name="TechStart Solutions")
    home, page = reverse("admin:index"), reverse("admin:accounts_account_360", args=[techstart.pk])
    grow(demo, csm, techstart, batch=0)  # every list longer than a page
    before = queries(client, home), queries(client, page)

    grow(demo, csm, techstart, batch=1)

    assert (queries(client, home), queries(client, page)) == before
    assert before[0] <= HOME_MAX and before[1] <= CUSTOMER_360_MAX
