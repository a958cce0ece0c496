"""The production stack's files, checked without Docker (no engine on the test machines): compose.yml's topology
and order, the Dockerfile's shape, gunicorn.conf.py's reading of the environment, the web health check, and
WhiteNoise's place. ``make prod-smoke`` runs the same topology as processes (scripts/prod_smoke.py)."""

import re
import runpy
import shlex
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import get_commands
from django.urls import resolve

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("web", "worker", "worker-bulk", "beat")


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "compose.yml").read_text())["services"]


def argv(service: dict) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else command


def queues(service: dict) -> set[str]:
    command = argv(service)
    return set(command[command.index("-Q") + 1].split(","))


def test_compose_runs_web_two_worker_lanes_beat_postgres_and_redis(compose):
    assert set(compose) >= {*APP_SERVICES, "migrate", "postgres", "redis"}
    assert argv(compose["web"])[:3] == ["gunicorn", "-c", "gunicorn.conf.py"]
    assert queues(compose["worker"]) == {"events", "delivery", "default"}
    assert queues(compose["worker-bulk"]) == {"bulk"}
    assert queues(compose["worker"]) | queues(compose["worker-bulk"]) == {
        route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} | {settings.CELERY_TASK_DEFAULT_QUEUE}
    beat = argv(compose["beat"])
    assert beat[beat.index("-S") + 1] == settings.CELERY_BEAT_SCHEDULER


def test_compose_migrates_and_sets_up_beat_once_before_anything_else_starts(compose):
    migrate = " ".join(argv(compose["migrate"]))
    assert re.search(r"manage\.py migrate --noinput && python manage\.py setup_periodic_tasks", migrate)
    assert {"migrate", "setup_periodic_tasks"} <= set(get_commands())
    assert compose["migrate"]["restart"] == "no"
    assert compose["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                                "redis": {"condition": "service_healthy"}}
    for name in APP_SERVICES:
        assert compose[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}, name


def test_compose_gives_every_service_but_beat_a_health_check_and_the_web_one_is_healthz(compose):
    for name in ("web", "worker", "worker-bulk", "postgres", "redis"):
        assert compose[name]["healthcheck"]["test"], name
    assert compose["web"]["healthcheck"]["test"] == ["CMD", "python", "scripts/healthcheck.py", "healthz"]
    assert resolve("/healthz").url_name == "healthz"
    assert compose["web"]["stop_grace_period"] == "40s"  # longer than gunicorn's graceful timeout (30 s)


def test_compose_app_services_share_one_image_and_the_production_environment(compose):
    for name in (*APP_SERVICES, "migrate"):
        service = compose[name]
        assert service["image"] == "${CSPLATFORM_IMAGE:-csplatform:latest}" and service["build"] == ".", name
        env = service["environment"]
        user = "csplatform" if name == "migrate" else "csplatform_app"  # the owner migrates; the rest is the runtime role
        assert env["DATABASE_URL"].startswith(f"postgres://{user}:"), name
        assert env["REDIS_URL"] == "redis://redis:6379/0" and "CELERY_BROKER_URL" in env, name
        assert env["DJANGO_SECRET_KEY"].startswith("${DJANGO_SECRET_KEY:?"), name  # no default secret
        assert "DJANGO_DEBUG" not in env, name
    assert "10-app-role.sh:/docker-entrypoint-initdb.d/" in " ".join(compose["postgres"]["volumes"])
    init = (ROOT / "deploy/postgres/10-app-role.sh").read_text()
    assert "NOSUPERUSER NOBYPASSRLS" in init  # row-level security binds the application's role


def test_the_dockerfile_is_multi_stage_slim_non_root_with_runtime_requirements_only():
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?", dockerfile, re.MULTILINE)
    assert [name for _, name in stages] == ["build", "runtime"] and all("-slim" in image for image, _ in stages)
    assert "requirements.txt" in dockerfile and "requirements-test" not in dockerfile
    assert "manage.py collectstatic --noinput" in dockerfile
    user = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert dockerfile.rstrip().splitlines()[-1] == 'CMD ["gunicorn", "-c", "gunicorn.conf.py"]'
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "var", "tests", ".env"} <= set(ignored)


def gunicorn_config(monkeypatch, **env) -> dict:
    for name in ("GUNICORN_BIND", "PORT", "GUNICORN_WORKERS", "WEB_CONCURRENCY", "GUNICORN_TIMEOUT",
                 "GUNICORN_GRACEFUL_TIMEOUT", "GUNICORN_MAX_REQUESTS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_gunicorn_reads_bind_workers_and_timeouts_from_the_environment(monkeypatch):
    config = gunicorn_config(monkeypatch, GUNICORN_BIND="127.0.0.1:9000,unix:/tmp/web.sock", GUNICORN_WORKERS="3",
                             GUNICORN_TIMEOUT="45", GUNICORN_GRACEFUL_TIMEOUT="20")
    assert config["bind"] == ["127.0.0.1:9000", "unix:/tmp/web.sock"]
    assert (config["workers"], config["timeout"], config["graceful_timeout"]) == (3, 45, 20)
    assert config["wsgi_app"] == "csplatform.wsgi:application" and config["control_socket_disable"] is True

    defaults = gunicorn_config(monkeypatch, PORT="8080")
    assert defaults["bind"] == ["0.0.0.0:8080"] and 1 <= defaults["workers"] <= 8
    assert (defaults["timeout"], defaults["graceful_timeout"]) == (30, 30)
    assert gunicorn_config(monkeypatch, WEB_CONCURRENCY="5")["workers"] == 5


@pytest.mark.parametrize("value", ["two", "0", "-1"])
def test_gunicorn_refuses_a_bad_worker_count_at_start_up(monkeypatch, value):
    with pytest.raises(ImproperlyConfigured, match="GUNICORN_WORKERS"):
        gunicorn_config(monkeypatch, GUNICORN_WORKERS=value)


def test_whitenoise_serves_static_files_right_after_the_security_middleware():
    middleware = settings.MIDDLEWARE
    security = middleware.index("django.middleware.security.SecurityMiddleware")
    assert middleware[security + 1] == "whitenoise.middleware.WhiteNoiseMiddleware"


class _Web:
    """A stand-in web server that answers /healthz 200 only to the Host it is told to expect."""

    def __init__(self, expected_host: str):
        seen = self.hosts = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.headers["Host"])
                self.send_response(200 if self.path == "/healthz" and self.headers["Host"] == expected_host else 400)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def check(self, allowed_hosts: str) -> int:
        env = {"PORT": str(self.server.server_port), "DJANGO_ALLOWED_HOSTS": allowed_hosts, "PATH": "/usr/bin:/bin"}
        return subprocess.run([sys.executable, str(ROOT / "scripts/healthcheck.py")], env=env, capture_output=True,
                              timeout=30).returncode


@pytest.mark.parametrize("allowed, host", [("csp.example.com,localhost", "csp.example.com"),
                                           (".example.com", "example.com"), ("*", "localhost")])
def test_the_health_check_asks_healthz_with_an_allowed_host(allowed, host):
    web = _Web(expected_host=host)
    try:
        assert web.check(allowed) == 0
        assert web.check("other.example.org") == 1  # a 400 (DisallowedHost) is unhealthy
    finally:
        web.server.shutdown()
        web.server.server_close()


def test_the_health_check_fails_when_nothing_listens():
    env = {"PORT": "9", "PATH": "/usr/bin:/bin"}  # the discard port: nothing answers there
    result = subprocess.run([sys.executable, str(ROOT / "scripts/healthcheck.py")], env=env, capture_output=True,
                            timeout=30)
    assert result.returncode == 1
