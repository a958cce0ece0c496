"""``make screenshots``: docs/screenshots/home.png (the admin home, the CSM cockpit) and account-360.png
(TechStart Solutions' customer 360 page), taken from a development server with the demo data on a throwaway
SQLite database, in the headless Chromium of the browser tests (``tests/browser/chromium.py``: same options,
nothing fetched from outside 127.0.0.1).

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.chromium import chromium, leaving_the_machine, requested_urls  # noqa: E402

TECHSTART = "TechStart Solutions"
PAGES = (("home.png", "/admin/"), ("account-360.png", "/admin/accounts/account/{techstart}/360/"))
WIDTH, MIN_HEIGHT, MAX_HEIGHT = 1400, 900, 4000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the development server stopped (exit {server.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    sys.exit(f"the development server did not answer {url} within {timeout:.0f} s")


def log_in(driver, base: str, email: str, password: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait  # test requirement: installed by bootstrap.sh --test

    driver.get(base + "/admin/login/")
    driver.find_element("id", "id_username").send_keys(email)
    driver.find_element("id", "id_password").send_keys(password)
    driver.find_element("css selector", "#login-form [type=submit]").click()
    WebDriverWait(driver, 30).until(lambda d: "/admin/login/" not in d.current_url,
                                    message="the demo CSM's login failed")


def shoot(driver, base: str, path: str, target: Path) -> None:
    """Open ``path`` and save the whole page (up to MAX_HEIGHT pixels) as ``target``."""
    from selenium.common.exceptions import TimeoutException  # test requirement: installed by bootstrap.sh --test
    from selenium.webdriver.common.by import By  # test requirement: installed by bootstrap.sh --test
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver.set_window_size(WIDTH, MIN_HEIGHT)
    driver.get(base + path)
    try:
        WebDriverWait(driver, 30).until(expected_conditions.presence_of_element_located((By.ID, "content")))
    except TimeoutException:
        text = driver.execute_script("return document.body ? document.body.innerText : ''")
        sys.exit(f"{path} did not render an admin page; it says: {text[:2000]}")
    if not driver.current_url.startswith(base + path):
        sys.exit(f"{path} is not there (the browser ended on {driver.current_url})")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, max(MIN_HEIGHT, min(int(height), MAX_HEIGHT)))
    time.sleep(0.3)  # let the resized page lay out again
    target.parent.mkdir(parents=True, exist_ok=True)
    if not driver.save_screenshot(str(target)):
        sys.exit(f"could not write {target}")
    print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    out = parser.parse_args().out.resolve()
    with tempfile.TemporaryDirectory(prefix="csplatform-screenshots-") as tmp:
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp}/db.sqlite3", "DJANGO_DEBUG": "true",
               "DJANGO_SETTINGS_MODULE": "csplatform.settings", "OUTBOUND_ALLOW_LOOPBACK": "true"}
        env.pop("REDIS_URL", None)  # embedded mode: eager celery, locmem cache
        manage(env, "migrate", "--noinput")
        manage(env, "seed_demo")
        demo = json.loads(manage(env, "shell", "-c", (
            "import json; from accounts.demo import DEMO_ADMIN; from accounts.models import Account; "
            f"print(json.dumps({{'techstart': str(Account.objects.get(name={TECHSTART!r}).pk), "
            "'email': DEMO_ADMIN[0], 'password': DEMO_ADMIN[1]}))")).strip().splitlines()[-1])
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_up(base + "/healthz", server)
            with chromium(WIDTH, MIN_HEIGHT) as driver:
                requested_urls(driver)  # what the browser's own start page asked for is not ours to judge
                log_in(driver, base, demo["email"], demo["password"])
                for name, path in PAGES:
                    shoot(driver, base, path.format(techstart=demo["techstart"]), out / name)
                outside = leaving_the_machine(requested_urls(driver))
                if outside:
                    print(f"warning: the pages asked for other hosts (blocked): {outside}", file=sys.stderr)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


if __name__ == "__main__":
    main()
