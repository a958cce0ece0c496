"""In a real browser 1,280 px wide (a laptop), the CSM's main lists fit: neither the page nor the list's own
scrolling box scrolls sideways, so no column is out of sight (issue 14, "Columns fit at 1280 px"). Measured, not
guessed, on lists holding seed_demo's rows and the runs, messages and executions it fires.

Django's admin puts a change list's table in a box of its own that scrolls (``.results``, ``overflow-x: auto``):
the page itself then never overflows, so the box is measured too (its scroll width against its client width)."""

import pytest
from django.urls import reverse

from accounts.models import Contact
from crm import services as crm_services
from crm.models import CRMPlaybook, CRMPlaybookExecution

pytestmark = pytest.mark.slow

WIDTH = 1280
LISTS = ("accounts_account", "accounts_healthscore", "automation_workflow", "automation_run", "delivery_outbox",
         "playbooks_playbookexecution", "crm_crmplaybookexecution", "accounts_task")


@pytest.fixture
def journeys(demo):
    """The demo starts no journey: start one for each of a few contacts, as the 360 page does."""
    crm_services.crm_journeys_ensure(demo)
    journey = CRMPlaybook.objects.for_tenant(demo).filter(active=True).order_by("name").first()
    for contact in Contact.objects.for_tenant(demo).order_by("name")[:3]:
        crm_services.start_journey(contact, journey, {}, source=CRMPlaybookExecution.Source.ADMIN)


@pytest.fixture
def laptop(csm, journeys):
    """The signed-in browser at 1,280 px, put back to its own size afterwards (the session shares it)."""
    size = csm.driver.get_window_size()
    csm.driver.set_window_size(WIDTH, size["height"])
    yield csm
    csm.driver.set_window_size(size["width"], size["height"])


def measure(page, changelist: str) -> dict:
    page.open(reverse(f"admin:{changelist}_changelist"))
    page.wait_for("#result_list")
    return page.driver.execute_script(
        "const table = document.querySelector('#result_list'), box = table.parentElement;"
        "return {window: window.innerWidth, page: document.documentElement.scrollWidth,"
        " box: box.clientWidth, table: box.scrollWidth, rows: table.tBodies[0].rows.length};")


def test_no_main_list_scrolls_sideways_at_1280_px(laptop):
    measured = {name: measure(laptop, name) for name in LISTS}

    assert {name: m["window"] for name, m in measured.items()} == dict.fromkeys(LISTS, WIDTH)
    assert all(m["rows"] for m in measured.values()), f"a list without rows measures nothing: {measured}"
    page_too_wide = {name: m["page"] for name, m in measured.items() if m["page"] > m["window"]}
    assert not page_too_wide, f"pages wider than the {WIDTH} px window: {page_too_wide}"
    cut_off = {name: f"table {m['table']} px in {m['box']} px" for name, m in measured.items() if m["table"] > m["box"]}
    assert not cut_off, f"columns out of sight at {WIDTH} px: {cut_off}"
