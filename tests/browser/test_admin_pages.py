"""In a real browser: the CSM signs in through the admin's login form, the admin home loads, and Swagger UI
renders the API's operations from assets the platform serves itself (no request leaves the machine)."""

import time

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By

from accounts.demo import DEMO_ADMIN

from .chromium import leaving_the_machine, requested_urls

pytestmark = pytest.mark.slow


def test_it_signs_the_demo_csm_in_through_the_login_form(page, demo):
    email, password, first_name, _ = DEMO_ADMIN
    page.log_in(email, password)
    assert page.driver.current_url.rstrip("/").endswith("/admin")
    assert first_name.lower() in page.driver.find_element(By.ID, "user-tools").get_attribute("textContent").lower()


def test_it_refuses_a_wrong_password(page, demo):
    page.open("/admin/login/")
    page.wait_for("#id_username").send_keys(DEMO_ADMIN[0])
    page.driver.find_element(By.ID, "id_password").send_keys("not the password")
    page.driver.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
    page.wait_for(".errornote")
    assert "/admin/login/" in page.driver.current_url


def test_it_loads_the_admin_home_with_its_styles(csm):
    csm.open("/admin/")
    header = csm.wait_for("#header")
    assert "Customer Success Platform" in csm.driver.title
    assert "Server Error" not in csm.text()
    # The admin's own stylesheet was served and applied (the header is not the browser's default transparent).
    background = csm.driver.execute_script("return getComputedStyle(arguments[0]).backgroundColor", header)
    assert background not in ("", "transparent", "rgba(0, 0, 0, 0)")
    assert leaving_the_machine(requested_urls(csm.driver)) == []


def test_it_renders_the_api_operations_in_swagger_ui_without_leaving_the_machine(csm):
    csm.open("/api/docs/")
    try:
        csm.wait_for(".swagger-ui .opblock")  # an operation, drawn by Swagger UI's script from /api/schema/
        drawn = True
    except TimeoutException:
        drawn = False
    if not drawn:
        pytest.fail(f"Swagger UI drew no operation; requests to other hosts: "
                    f"{leaving_the_machine(requested_urls(csm.driver))}", pytrace=False)
    operations = csm.driver.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock .opblock-summary-path")
    paths = {element.get_attribute("data-path") or element.text for element in operations}
    assert any(path.startswith("/api/accounts/") for path in paths), sorted(paths)[:20]
    time.sleep(0.5)  # what the rendered page fetches next (fonts, images) is in the log too
    urls = requested_urls(csm.driver)
    assert any("/api/schema/" in url for url in urls), urls
    assert leaving_the_machine(urls) == []
