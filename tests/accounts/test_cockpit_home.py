"""The admin home as the CSM cockpit (accounts/cockpit/home.py), through the test client as the demo's CSM:
at-risk accounts with their trend and top driver, ARR at risk, renewals, my tasks, plays fired and their
delivery failures, the charts, and the app list kept in the side column."""

import datetime
import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.demo import DEMO_ADMIN, demo_seed
from accounts.models import Account, HealthScore, Role, Task
from delivery.models import Outbox
from playbooks.models import PlaybookExecution
from tests.factories import AccountFactory, MembershipFactory, TenantFactory

pytestmark = pytest.mark.django_db
HOME = "/admin/"


@pytest.fixture
def demo():
    return demo_seed()


@pytest.fixture
def csm(demo, client):
    """The demo's CSM (admin@acme.com owns every demo account), logged in."""
    user = get_user_model().objects.get(email=DEMO_ADMIN[0])
    client.force_login(user)
    return user


def named(demo, name) -> Account:
    return Account.objects.for_tenant(demo).get(name=name)


def section(page, anchor: str) -> str:
    """The HTML of one ``<section id=anchor>`` of the page."""
    html = page.content.decode()
    return re.search(rf'<section[^>]* id="{anchor}".*?</section>', html, re.S).group(0)


def test_it_shows_techstart_at_risk_with_its_trend_and_top_driver(csm, client):
    page = client.get(HOME)

    assert page.status_code == 200
    rows = page.context["cockpit"]["at_risk"]
    assert [row["account"].name for row in rows] == ["TechStart Solutions"]
    techstart = rows[0]
    assert techstart["driver"].label == "Usage"  # 28 at 35 % weight: the most points lost
    assert techstart["trend"].arrow == "↓"
    at_risk = section(page, "at-risk")
    assert "TechStart Solutions" in at_risk and "GlobalTech" not in at_risk
    assert "<strong>Usage</strong> 28" in at_risk
    assert "Critical" in at_risk and "down 3" in at_risk  # from about 65 a month ago to 35
    assert reverse("admin:accounts_account_360", args=[techstart["account"].pk]) in at_risk


def test_it_sums_arr_at_risk_and_lists_renewals_of_the_next_90_days(csm, client):
    page = client.get(HOME)

    figures = page.context["cockpit"]["figures"]
    assert (figures["accounts"], figures["at_risk"], figures["arr_at_risk"]) == (3, 1, 85000)
    renewals = page.context["cockpit"]["renewals"]
    assert [(r["account"].name, r["in"]) for r in renewals] == [("TechStart Solutions", "in 45 days"),
                                                                 ("GlobalTech Europe", "in 75 days")]
    assert "85,000" in section(page, "renewals") and "(in 45 days)" in section(page, "renewals")


def test_it_lists_my_tasks_due_today_and_overdue_only(demo, csm, client):
    techstart = named(demo, "TechStart Solutions")
    today = timezone.localdate()
    services.task_create(account=techstart, title="Send the export fix notes", assignee=csm, due_date=today)
    services.task_create(account=techstart, title="Chase the QBR date", assignee=csm,
                         due_date=today - datetime.timedelta(days=3))
    services.task_create(account=techstart, title="Plan next quarter", assignee=csm,
                         due_date=today + datetime.timedelta(days=3))

    page = client.get(HOME)

    tasks = page.context["cockpit"]["tasks"]
    assert (tasks["overdue"], tasks["today"]) == (1, 1)
    assert [t.title for t in tasks["rows"]] == ["Chase the QBR date", "Send the export fix notes"]
    assert "Overdue since" in section(page, "my-tasks") and "Plan next quarter" not in section(page, "my-tasks")


def test_it_shows_the_plays_fired_this_week_and_their_delivery_failures(demo, csm, client):
    executions = PlaybookExecution.objects.for_tenant(demo).filter(account__name="TechStart Solutions")
    assert executions.exists()  # the demo's plays caught up on TechStart
    dead = Outbox.objects.for_tenant(demo).filter(run_id=executions.first().run_id)
    assert dead.update(status=Outbox.Status.DEAD, error="connection refused") == 1

    page = client.get(HOME)

    plays = page.context["cockpit"]["plays"]
    assert plays["fired"] == executions.count() and plays["delivery_failed"] == 1
    shown = section(page, "plays")
    assert "SuccessPlay: Health Score Alert - Critical" in shown or "SuccessPlay: At Risk Stage Alert" in shown
    assert "Delivery failed" in shown and "TechStart Solutions" in shown


def test_it_draws_the_band_distribution_and_the_book_trend_with_data_tables(csm, client):
    page = client.get(HOME)

    bands = section(page, "bands")
    assert 'role="img"' in bands and 'aria-label="Accounts by risk band. Critical 1, At Risk 0, Moderate 1, Healthy 1' in bands
    assert "<details" in bands
    trend = section(page, "book-trend")
    assert "<svg" in trend and "Average health score" in trend and "<table>" in trend


def test_it_keeps_the_app_list_in_the_side_column(csm, client):
    html = client.get(HOME).content.decode()

    side = html[html.index('id="content-related"'):]
    assert "Apps and tables" in side and reverse("admin:accounts_account_changelist") in side


def test_a_practitioner_sees_their_own_accounts_and_may_switch_to_all(demo, client):
    user = MembershipFactory(tenant=demo, role=Role.PRACTITIONER, user__is_staff=True).user
    mine = Account.objects.for_tenant(demo).get(name="GlobalTech Europe")
    services.account_save(account=mine, changes={"owner": user})
    client.force_login(user)

    own = client.get(HOME).context["cockpit"]
    every = client.get(HOME, {"book": "all"}).context["cockpit"]

    assert own["book"].mine and own["figures"]["accounts"] == 1 and own["at_risk"] == []
    assert not every["book"].mine and [r["account"].name for r in every["at_risk"]] == ["TechStart Solutions"]


def test_it_never_shows_another_tenants_accounts(demo, csm, client):
    other = AccountFactory(tenant=TenantFactory(), name="Other tenant at risk", owner=csm)
    services.health_score_record(account=other, components={"usage_score": 5})

    page = client.get(HOME, {"book": "all"})

    assert "Other tenant at risk" not in page.content.decode()
    assert page.context["cockpit"]["figures"]["accounts"] == 3


def test_a_member_of_two_tenants_picks_one(demo, csm, client):
    second = TenantFactory(name="Second Co")
    MembershipFactory(tenant=second, user=csm, role=Role.TENANT_ADMIN)
    there = AccountFactory(tenant=second, name="Second's account", owner=csm)
    services.health_score_record(account=there, components={"usage_score": 10})

    first_page = client.get(HOME).context["cockpit"]
    picked = client.get(HOME, {"tenant": second.slug}).context["cockpit"]

    assert first_page["book"].tenant == demo
    assert picked["book"].tenant == second and [r["account"].name for r in picked["at_risk"]] == ["Second's account"]
    assert HealthScore.objects.for_tenant(second).count() == 1


def test_a_user_without_a_tenant_gets_the_plain_app_list(client):
    user = get_user_model().objects.create_user("loner@example.com", "loner@example.com", "pw", is_staff=True)
    client.force_login(user)

    page = client.get(HOME)

    assert page.status_code == 200 and "cockpit" not in page.context


def test_the_home_of_an_empty_book_says_so(demo, client):
    viewer = MembershipFactory(tenant=demo, role=Role.VIEWER, user__is_staff=True).user
    client.force_login(viewer)
    Task.objects.for_tenant(demo).update(assignee=None)

    page = client.get(HOME)

    assert page.status_code == 200
    assert "No account of this book is at risk" in page.content.decode()
