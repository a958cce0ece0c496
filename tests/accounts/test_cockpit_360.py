"""The customer 360 (accounts/cockpit), through the test client as the demo's CSM: the header and the score's
components, the charts, a timeline with an entry of every kind, "what's next", the actions (through the
services, CSRF-protected, tenant-scoped, refused to viewers) and the hierarchy."""

import datetime
import re
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse, set_script_prefix
from django.utils import timezone

from accounts import services
from accounts.demo import DEMO_ADMIN, demo_seed
from accounts.cockpit.sources import admin_url
from accounts.models import Account, Engagement, Note, Role, Task
from crm import services as crm_services
from crm.models import CRMPlaybookExecution
from crm.scheduler import execute_pending_steps
from playbooks.models import Playbook, PlaybookExecution
from tests.factories import AccountFactory, MembershipFactory, NoteFactory, TenantFactory

pytestmark = pytest.mark.django_db
KINDS = ("note", "engagement", "task", "stage", "health", "ticket", "survey", "play", "run", "message", "journey",
         "journey_step")


@pytest.fixture
def demo():
    return demo_seed()


@pytest.fixture
def csm(demo, client):
    user = get_user_model().objects.get(email=DEMO_ADMIN[0])
    client.force_login(user)
    return user


@pytest.fixture
def techstart(demo) -> Account:
    return Account.objects.for_tenant(demo).get(name="TechStart Solutions")


def url_360(account) -> str:
    return reverse("admin:accounts_account_360", args=[account.pk])


def section(page, anchor: str) -> str:
    return re.search(rf'<section[^>]* id="{anchor}".*?</section>', page.content.decode(), re.S).group(0)


def member(tenant, role):
    return MembershipFactory(tenant=tenant, role=role, user__is_staff=True).user


@pytest.fixture
def journey_ran(demo, techstart):
    """TechStart's champion went through the payment rescue's first step (an email, now in the outbox)."""
    crm_services.crm_journeys_ensure(demo)
    contact = crm_services.recipient_contact(techstart)
    execution = crm_services.start_journey(contact, "payment_failed_rescue", {}, source="admin")
    execute_pending_steps(timezone.now() + datetime.timedelta(minutes=1), tenant=demo)
    return execution


# --- reading -------------------------------------------------------------------------------------

def test_the_header_names_the_account_with_its_gauge_band_trend_and_contract(csm, client, techstart):
    page = client.get(url_360(techstart))

    assert page.status_code == 200
    html = page.content.decode()
    assert "<h1>TechStart Solutions</h1>" in html and str(techstart.pk) not in re.search(r"<title>(.*?)</title>",
                                                                                          html).group(1)
    header = re.search(r'<section class="module cs-header".*?</section>', html, re.S).group(0)
    assert 'aria-label="Health score. 35 out of 100, Critical"' in header
    assert 'aria-label="Health score, last 90 days. Health score: latest 35' in header  # the 90-day trend line
    for words in ("ARR", "85,000", "Renewal date", "in 45 days", "Stage", "At Risk", "Owner", "Alice Administrator"):
        assert words in header, words


def test_why_shows_each_component_with_weight_contribution_and_changes_the_top_driver_first(csm, client, techstart):
    page = client.get(url_360(techstart))

    rows = page.context["why"]["rows"]
    assert [r.label for r in rows] == ["Usage", "Engagement", "Adoption", "Support sentiment"]  # most points lost first
    usage = rows[0]
    assert (usage.score, usage.weight, usage.top) == (28.0, 35.0, True)
    assert usage.change_previous == 28 - 57 and usage.dropped
    why = section(page, "why")
    assert "Top driver" in why and "35.0 %" in why and "Points lost" in why
    assert "#usage" in why and f"account__id__exact={techstart.pk}" in why  # the driver links to its data


def test_it_shows_the_usage_chart_and_the_feedback_behind_the_drivers(csm, client, techstart):
    page = client.get(url_360(techstart))

    usage = section(page, "usage")
    assert 'role="img"' in usage and "Usage, last 90 days" in usage and "<details" in usage
    assert "Features used: dashboards" in usage
    assert "NPS 3" in section(page, "surveys") and "Data export failing since last release" in section(page, "tickets")


@pytest.mark.parametrize("kind", KINDS)
def test_the_timeline_has_entries_of_every_kind(csm, client, techstart, journey_ran, kind):
    page = client.get(url_360(techstart), {"kind": kind})

    entries = page.context["timeline"].entries
    assert entries and {e.kind for e in entries} == {kind}
    assert f"cs-kind-{kind}" in section(page, "timeline")


def test_the_timeline_is_newest_first_and_says_what_delivery_did(csm, client, techstart, journey_ran):
    page = client.get(url_360(techstart))

    times = [e.at for e in page.context["timeline"].entries]
    assert times == sorted(times, reverse=True)
    steps = client.get(url_360(techstart), {"kind": "journey_step"}).context["timeline"].entries
    assert steps[0].status == "Sent, queued" and "Payment update required" in steps[0].title


def test_the_timeline_pages_by_time_without_gaps_or_repeats(csm, client, techstart):
    start = timezone.now() - datetime.timedelta(days=1)
    for i in range(30):
        note = NoteFactory(account=techstart, body=f"Call note {i}")
        Note.objects.filter(pk=note.pk).update(created_at=start - datetime.timedelta(minutes=i))

    first = client.get(url_360(techstart), {"kind": "note"})
    older = first.context["timeline"].next_before
    second = client.get(url_360(techstart), {"kind": "note", "before": older.isoformat()})

    shown = [e.title for e in first.context["timeline"].entries + second.context["timeline"].entries]
    assert len(first.context["timeline"].entries) == 25
    assert len(shown) == len(set(e.url for e in first.context["timeline"].entries + second.context["timeline"].entries))
    assert len(shown) == Note.objects.for_tenant(techstart.tenant).filter(account=techstart).count()
    assert "Older entries" in section(first, "timeline") and "Older entries" not in section(second, "timeline")


def test_the_timeline_pages_through_kinds_mixed_in_time_without_gaps_or_repeats(csm, client, demo):
    account = AccountFactory(tenant=demo, name="Busy Ltd")
    start = timezone.now() - datetime.timedelta(days=1)
    for i in range(40):  # notes and engagements in turn, a pair at the very same time now and then
        at = start - datetime.timedelta(minutes=i - i % 2 * (i % 6 == 1))
        note = NoteFactory(account=account, body=f"Note {i}")
        Note.objects.filter(pk=note.pk).update(created_at=at)
        services.engagement_create(account=account, user=csm, kind="call", outcome="completed", summary=f"Call {i}",
                                   occurred_at=at - datetime.timedelta(seconds=30))

    shown, before, pages = [], None, 0
    while True:
        page = client.get(url_360(account), {"kind": ["note", "engagement"], **({"before": before} if before else {})})
        timeline = page.context["timeline"]
        shown += [(e.kind, e.url) for e in timeline.entries]
        pages += 1
        if timeline.next_before is None:
            break
        before = timeline.next_before.isoformat()

    assert pages == 4 and len(shown) == 80 == len(set(shown))
    assert {kind for kind, _ in shown} == {"note", "engagement"}


def test_why_compares_with_the_earliest_score_of_the_month_when_none_is_older(csm, client, demo):
    account = AccountFactory(tenant=demo, name="New Customer")
    now = timezone.now()
    for days, usage in ((20, 80), (10, 60), (1, 50)):
        services.health_score_record(account=account, components={"usage_score": usage},
                                     calculated_at=now - datetime.timedelta(days=days))

    usage = next(r for r in client.get(url_360(account)).context["why"]["rows"] if r.name == "usage_score")

    assert (usage.score, usage.change_previous, usage.change_30_days, usage.dropped) == (50.0, -10.0, -30.0, True)


def test_links_keep_the_prefix_the_site_is_served_under(techstart):
    note = NoteFactory(account=techstart)
    plain = admin_url("admin:accounts_note_change", note.pk)
    set_script_prefix("/cs/")  # as a WSGI server sets it for a site under /cs
    try:
        prefixed = admin_url("admin:accounts_note_change", note.pk)
    finally:
        set_script_prefix("/")

    assert (plain, prefixed) == (f"/admin/accounts/note/{note.pk}/change/", f"/cs/admin/accounts/note/{note.pk}/change/")
    assert admin_url("admin:accounts_account_change", techstart.pk) == reverse("admin:accounts_account_change",
                                                                               args=[techstart.pk])
    assert admin_url("admin:accounts_note_change", "a b/c") == "/admin/accounts/note/a%20b/c/change/"


def test_whats_next_lists_journey_steps_cooldowns_and_the_renewal(csm, client, techstart, demo):
    crm_services.crm_journeys_ensure(demo)
    crm_services.start_journey(crm_services.recipient_contact(techstart), "payment_failed_rescue", {},
                               now=timezone.now() + datetime.timedelta(hours=2))

    items = client.get(url_360(techstart)).context["upcoming"]

    whats = {item.what for item in items}
    assert {"Journey step", "Cooldown ends", "Renewal", "Task due"} <= whats
    cooldown = next(i for i in items if i.what == "Cooldown ends")
    assert "may fire again" in cooldown.title


def test_the_hierarchy_shows_parent_children_and_the_rollup(csm, client, demo):
    parent = Account.objects.for_tenant(demo).get(name="GlobalTech Corporation")
    child = Account.objects.for_tenant(demo).get(name="GlobalTech Europe")

    parent_page = client.get(url_360(parent))
    child_page = client.get(url_360(child))

    shown = section(parent_page, "hierarchy")
    assert "GlobalTech Europe" in shown and "Roll-up of 2 accounts" in shown
    assert "GlobalTech Corporation" in section(child_page, "hierarchy")


def test_the_account_list_and_form_link_to_the_360_and_the_360_to_the_form(csm, client, techstart):
    listed = client.get(reverse("admin:accounts_account_changelist")).content.decode()
    form = client.get(reverse("admin:accounts_account_change", args=[techstart.pk])).content.decode()
    page = client.get(url_360(techstart)).content.decode()

    assert url_360(techstart) in listed and url_360(techstart) in form
    assert reverse("admin:accounts_account_change", args=[techstart.pk]) in page and "Edit account" in page


# --- acting --------------------------------------------------------------------------------------

def test_posting_a_task_creates_it_through_the_service_for_me_and_it_shows_on_the_timeline(csm, client, techstart):
    form = client.get(url_360(techstart)).content.decode()
    assert re.search(rf'<option value="{csm.pk}" selected>', form)  # assigned to me by default
    due = timezone.localdate() + datetime.timedelta(days=2)

    with mock.patch("accounts.services.task_create", wraps=services.task_create) as task_create:
        posted = client.post(url_360(techstart), {"action": "task", "task-title": "Fix the export with engineering",
                                                  "task-assignee": csm.pk, "task-priority": "high",
                                                  "task-due_date": due.isoformat()})

    assert posted.status_code == 302 and posted.url.endswith("#timeline")
    task_create.assert_called_once()
    task = Task.objects.for_tenant(techstart.tenant).get(title="Fix the export with engineering")
    assert (task.account, task.assignee, task.created_by, task.due_date, task.priority) == (techstart, csm, csm, due, "high")
    timeline = client.get(url_360(techstart), {"kind": "task"}).context["timeline"].entries
    assert timeline[0].title == "Fix the export with engineering" and timeline[0].status == "Open"


def test_logging_a_note_and_an_engagement(csm, client, techstart):
    client.post(url_360(techstart), {"action": "note", "note-body": "Champion is back from leave."})
    client.post(url_360(techstart), {"action": "engagement", "engagement-kind": "call", "engagement-outcome": "completed",
                                     "engagement-occurred_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
                                     "engagement-summary": "Walked through the export fix."})

    assert Note.objects.for_tenant(techstart.tenant).filter(account=techstart, body="Champion is back from leave.",
                                                             author=csm).exists()
    assert Engagement.objects.for_tenant(techstart.tenant).get(summary="Walked through the export fix.").user == csm


def test_an_invalid_form_is_shown_again_with_its_error(csm, client, techstart):
    page = client.post(url_360(techstart), {"action": "task", "task-title": "", "task-priority": "high"})

    assert page.status_code == 200 and page.context["posted"] == "task"
    assert "This field is required." in section(page, "actions")


def test_triggering_a_successplay_respects_its_cooldown_unless_forced(csm, client, techstart, demo):
    play = Playbook.objects.for_tenant(demo).get(name="Health Score Alert - Critical")
    before = PlaybookExecution.objects.for_tenant(demo).filter(playbook=play).count()

    cooling = client.post(url_360(techstart), {"action": "play", "play-playbook": play.pk})
    forced = client.post(url_360(techstart), {"action": "play", "play-playbook": play.pk, "play-force": "on",
                                              "play-reason": "Customer asked for the escalation today"})

    assert cooling.status_code == 200 and "cooling down" in section(cooling, "actions")
    assert forced.status_code == 302
    assert PlaybookExecution.objects.for_tenant(demo).filter(playbook=play).count() == before + 1


def test_starting_a_journey_from_the_360(csm, client, techstart, demo):
    crm_services.crm_journeys_ensure(demo)
    journey = crm_services.playbook_get(demo, "payment_failed_rescue")
    contact = crm_services.recipient_contact(techstart)

    posted = client.post(url_360(techstart), {"action": "journey", "journey-journey": journey.pk,
                                              "journey-contact": contact.pk})

    assert posted.status_code == 302
    execution = CRMPlaybookExecution.objects.for_tenant(demo).get(contact=contact, playbook=journey)
    assert (execution.source, execution.started_by) == ("admin", csm)


def test_actions_need_the_csrf_token(csm, techstart):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(csm)

    refused = strict.post(url_360(techstart), {"action": "note", "note-body": "no token"})

    assert refused.status_code == 403
    assert not Note.objects.for_tenant(techstart.tenant).filter(body="no token").exists()


# --- who may see and act -------------------------------------------------------------------------

def test_a_viewer_may_read_the_360_but_not_act(client, demo, techstart):
    client.force_login(member(demo, Role.VIEWER))

    page = client.get(url_360(techstart))
    posted = client.post(url_360(techstart), {"action": "task", "task-title": "Viewer's task", "task-priority": "low"})

    assert page.status_code == 200 and page.context["actions"] == []
    assert "lets you read this account, not act on it" in section(page, "actions")
    assert posted.status_code == 403
    assert not Task.objects.for_tenant(demo).filter(title="Viewer's task").exists()


def test_a_contributor_may_log_but_not_run_plays(client, demo, techstart):
    client.force_login(member(demo, Role.CONTRIBUTOR))
    play = Playbook.objects.for_tenant(demo).first()

    page = client.get(url_360(techstart))
    refused = client.post(url_360(techstart), {"action": "play", "play-playbook": play.pk, "play-force": "on",
                                               "play-reason": "x"})

    assert [item["action"].key for item in page.context["actions"]] == ["note", "engagement", "task"]
    assert refused.status_code == 403
    assert "journey" not in {k.key for k in page.context["timeline"].kinds}  # CRM is for admins and practitioners


def test_another_tenants_account_is_a_404(client, techstart):
    stranger = member(TenantFactory(), Role.TENANT_ADMIN)
    AccountFactory(tenant=stranger.memberships.get().tenant, name="Theirs")
    client.force_login(stranger)

    assert client.get(url_360(techstart)).status_code == 404
    assert client.post(url_360(techstart), {"action": "note", "note-body": "sneaky"}).status_code == 404
    assert not Note.objects.for_tenant(techstart.tenant).filter(body="sneaky").exists()


def test_an_unknown_or_malformed_account_id_is_a_404(csm, client):
    assert client.get("/admin/accounts/account/not-a-uuid/360/").status_code == 404
    assert client.get(f"/admin/accounts/account/{'0' * 8}-0000-0000-0000-{'0' * 12}/360/").status_code == 404


def test_logged_out_users_are_sent_to_the_login(client, techstart):
    page = client.get(url_360(techstart))

    assert page.status_code == 302 and reverse("admin:login") in page.url
