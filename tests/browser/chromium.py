"""Headless Chromium from the Debian packages (``chromium``, ``chromium-driver``) driven by Selenium, shut off
from everything but 127.0.0.1: the browser tests and ``scripts/screenshots.py`` start it through here.

No Selenium Manager download: the driver is the packaged ``/usr/bin/chromedriver`` (``CHROMEDRIVER`` overrides
it, ``CHROMIUM`` the browser). ``scripts/test.sh`` installs both when they are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
INSTALL_HINT = ("install them with: apt-get install -y chromium chromium-driver (scripts/test.sh does it as root), "
                "or point CHROMIUM and CHROMEDRIVER at them")
# Every host name resolves to nothing except 127.0.0.1: no page can fetch from outside the machine.
BLOCK_OUTSIDE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", BLOCK_OUTSIDE)
# Addresses that need no network: inline data, a page's own generated objects, the browser's built-in pages.
LOCAL_SCHEMES = ("data", "blob", "about", "chrome")


def missing() -> str:
    """Why Chromium cannot start here ("" when both binaries are present)."""
    absent = [path for path in (CHROMIUM, CHROMEDRIVER) if not (Path(path).is_file() and os.access(path, os.X_OK))]
    return f"{' and '.join(absent)} not found: {INSTALL_HINT}" if absent else ""


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator:
    """A headless Chromium (selenium ``WebDriver``) with a throwaway profile, its network log recorded
    (``requested_urls``); quit and its profile removed at the end."""
    from selenium import webdriver  # test requirement only: the app never imports selenium
    from selenium.webdriver.chrome.service import Service  # see above

    problem = missing()
    if problem:
        raise RuntimeError(problem)
    profile = tempfile.mkdtemp(prefix="csplatform-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (*ARGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = None
    try:
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def requested_urls(driver) -> list[str]:
    """The URLs of every request the browser's pages sent since the last call (Chrome's performance log,
    ``Network.requestWillBeSent``: fetched or blocked alike)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def leaving_the_machine(urls: list[str]) -> list[str]:
    """The URLs that are not to 127.0.0.1 (nor inline data)."""
    return [url for url in urls
            if urlsplit(url).scheme not in LOCAL_SCHEMES and urlsplit(url).hostname != "127.0.0.1"]
