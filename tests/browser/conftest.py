"""Browser tests: headless Chromium (``tests.browser.chromium``) against a live server on the test database,
with seed_demo's Acme Corporation tenant, logged in as its CSM through the admin's login form.

The server (pytest-django's ``live_server``, a thread of this process) listens on 127.0.0.1, the one address
the browser resolves; each test gets a fresh demo tenant (``transactional_db``: the server's requests run in
their own connections and must see committed rows) and one browser is shared by the whole session.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pytest_django.live_server_helper import LiveServer
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from accounts.demo import DEMO_ADMIN, demo_seed

from .chromium import chromium, missing, requested_urls

WAIT = 20  # seconds a page may take to show what a test waits for


@pytest.fixture(scope="session")
def live_server():
    """pytest-django's live server, on 127.0.0.1 (its default, ``localhost``, is a name the browser may not
    resolve) and a free port."""
    server = LiveServer("127.0.0.1:0")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session. Missing binaries fail the tests: CI must run them."""
    problem = missing()
    if problem:
        pytest.fail(f"browser tests need Chromium and chromedriver: {problem}", pytrace=False)
    with chromium() as driver:
        yield driver


@pytest.fixture
def demo(live_server):
    """seed_demo's tenant, committed so the live server sees it."""
    return demo_seed()


@dataclass
class Page:
    """The browser at the live server: ``open(path)``, ``wait_for(css)``, ``text()``."""

    driver: object
    base: str

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def wait_for(self, css: str, timeout: float = WAIT):
        return WebDriverWait(self.driver, timeout).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)),
            message=f"no {css!r} on {self.driver.current_url} within {timeout} s; page text: {self.text()[:1500]!r}")

    def wait_until(self, predicate, message: str, timeout: float = WAIT):
        # A page replaced mid-check (a submitted form's redirect) makes elements stale: check again.
        return WebDriverWait(self.driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda driver: predicate(), message=message)

    def text(self) -> str:
        """The page's text as it is in the document (CSS may upper-case what a user sees), scripts left out."""
        return self.driver.execute_script(
            "if (!document.body) return '';"
            "const copy = document.body.cloneNode(true);"
            "copy.querySelectorAll('script, style, template').forEach(node => node.remove());"
            "return copy.textContent.replace(/\\s+/g, ' ').trim();") or ""

    def log_in(self, email: str, password: str) -> None:
        self.open("/admin/login/")
        self.wait_for("#id_username").send_keys(email)
        self.driver.find_element(By.ID, "id_password").send_keys(password)
        self.driver.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
        self.wait_until(lambda: "/admin/login/" not in self.driver.current_url,
                        f"still on the login page: {self.text()[:1000]!r}")


@pytest.fixture
def page(browser, live_server):
    """The shared browser, signed out, its network log emptied."""
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    requested_urls(browser)
    return Page(browser, live_server.url)


@pytest.fixture
def csm(page, demo):
    """The browser signed in to the admin as the demo tenant's CSM (README: admin@acme.com)."""
    email, password, *_ = DEMO_ADMIN
    page.log_in(email, password)
    return page
