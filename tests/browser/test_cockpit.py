"""In a real browser, with the demo data: the admin home (the CSM cockpit) shows TechStart Solutions at risk
with the component that drags it down, and its customer 360 page shows the score trend as a chart, the
components of the score and a timeline, where a task created from the page's own form appears."""

import pytest
from selenium.webdriver.common.by import By

from accounts.models import Account, Task

pytestmark = pytest.mark.slow

# The demo's TechStart Solutions (accounts/demo.py): 35, Critical, stage At Risk; its latest components are
# usage 28, engagement 36, support sentiment 43, adoption 38, so usage (the lowest, with the largest weight)
# is what drags it down most.
TECHSTART = "TechStart Solutions"
TOP_DRIVER = "usage"
COMPONENTS = ("Usage", "Engagement", "Support sentiment", "Adoption")
TIMELINE_ENTRIES = ("Data export failing since last release", "QBR - customer did not join",
                    "Champion said leadership talks about churn")

# The smallest block around each element naming the text: its row, list item or card, else three levels up.
BLOCKS_NAMING = """
const [text] = arguments, found = [];
const hits = document.evaluate(`//*[contains(text(), "${text}")]`, document.getElementById("content") || document.body,
                               null, XPathResult.ORDERED_NODE_SNAPSHOT_TYPE, null);
for (let i = 0; i < hits.snapshotLength; i++) {
  let block = hits.snapshotItem(i).closest("tr, li, article, [class*=card]");
  if (!block) {
    block = hits.snapshotItem(i);
    for (let up = 0; up < 3 && block.parentElement && block.parentElement !== document.body; up++) {
      block = block.parentElement;
    }
  }
  found.push(block.textContent.replace(/\\s+/g, " ").trim());
}
return found;
"""


def techstart(tenant) -> Account:
    return Account.objects.for_tenant(tenant).get(name=TECHSTART)


def timeline_text(page, *, required: bool = True) -> str:
    """The timeline's text, read by one script so a page that is navigating away (a form just submitted)
    cannot hand back elements that go stale between finding and reading them."""
    text = page.driver.execute_script(
        "const blocks = document.querySelectorAll('[id*=timeline], [class*=timeline]');"
        "return blocks.length ? Array.from(blocks, block => block.textContent).join(' ') : null;")
    assert text is not None or not required, f"no timeline on the page: {page.text()[:1500]!r}"
    return text or ""


def test_it_shows_techstart_at_risk_with_its_top_driver_on_the_home_page(csm):
    csm.open("/admin/")
    csm.wait_until(lambda: TECHSTART in csm.text(), f"{TECHSTART} is not on the home page")
    blocks = [block.lower() for block in csm.driver.execute_script(BLOCKS_NAMING, TECHSTART)]
    assert any(("risk" in block or "critical" in block) and TOP_DRIVER in block for block in blocks), blocks


def test_it_shows_the_trend_chart_components_and_timeline_on_the_360_page(csm, demo):
    account = techstart(demo)
    csm.open(f"/admin/accounts/account/{account.pk}/360/")
    chart = csm.wait_for("svg[role=img]")
    assert chart.get_attribute("aria-label") or chart.find_elements(By.TAG_NAME, "title"), "the chart has no text"
    tables = [table.get_attribute("textContent") for table in csm.driver.find_elements(By.TAG_NAME, "table")]
    assert any(all(name in table for name in COMPONENTS) for table in tables), tables
    timeline = timeline_text(csm)
    assert [entry for entry in TIMELINE_ENTRIES if entry not in timeline] == []


# The page's form for a new task: the one with a title field that speaks of a task (in its folded-away
# summary, if any). Returns [form, summary or null].
TASK_FORM = """
for (const form of document.querySelectorAll("form")) {
  const summary = form.closest("details") ? form.closest("details").querySelector("summary") : null;
  const words = (summary || form).textContent.toLowerCase();
  if (form.querySelector("input[name=title], input[name$='-title']") && words.includes("task")) {
    return [form, summary];
  }
}
return null;
"""


def test_it_puts_a_task_created_from_the_360_page_on_its_timeline(csm, demo):
    account = techstart(demo)
    csm.open(f"/admin/accounts/account/{account.pk}/360/")
    csm.wait_for("#content")
    found = csm.driver.execute_script(TASK_FORM)
    assert found, f"no form for a task on the 360 page: {csm.text()[:1500]!r}"
    form, summary = found
    if summary is not None and not form.is_displayed():
        summary.click()  # unfold it, as a CSM would
    form.find_element(By.CSS_SELECTOR, "input[name=title], input[name$='-title']").send_keys(
        "Send TechStart the export fix timeline")
    form.find_element(By.CSS_SELECTOR, "[type=submit]").click()
    csm.wait_until(lambda: "Send TechStart the export fix timeline" in timeline_text(csm, required=False),
                   "the new task is not on the timeline")
    task = Task.objects.for_tenant(demo).get(title="Send TechStart the export fix timeline")
    assert task.account_id == account.pk
