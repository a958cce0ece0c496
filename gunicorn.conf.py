"""gunicorn's configuration, read from the environment: ``gunicorn -c gunicorn.conf.py csplatform.wsgi``.

| variable | default | meaning |
| --- | --- | --- |
| ``GUNICORN_BIND`` | ``0.0.0.0:$PORT`` (``PORT`` 8000) | address(es) to listen on, comma-separated |
| ``GUNICORN_WORKERS`` | ``WEB_CONCURRENCY``, else 2 x CPUs + 1, at most 8 | sync worker processes |
| ``GUNICORN_TIMEOUT`` | 30 | s a request may take before its worker is killed and replaced |
| ``GUNICORN_GRACEFUL_TIMEOUT`` | 30 | s the workers get to finish their requests after SIGTERM |
| ``GUNICORN_KEEPALIVE`` | 5 | s an idle keep-alive connection from the proxy stays open |
| ``GUNICORN_MAX_REQUESTS`` | 20000 | requests after which a worker is replaced (0: never), with 10 % jitter |
| ``FORWARDED_ALLOW_IPS`` | 127.0.0.1,::1 | read by gunicorn itself: proxies trusted for X-Forwarded-Proto |

Sync workers: every request is one transaction on PostgreSQL (ATOMIC_REQUESTS), so a worker holds at most
one connection; size ``GUNICORN_WORKERS`` x web containers against PostgreSQL's ``max_connections``. A sync worker
serves one connection at a time, so it belongs behind a proxy that buffers whole requests (as gunicorn's docs say):
a client that opens a connection and sends later holds a worker meanwhile (docs/performance.md, "think time").
"""

import os

from django.core.exceptions import ImproperlyConfigured


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


wsgi_app = "csplatform.wsgi:application"
bind = [part.strip() for part in os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}").split(",")
        if part.strip()]
workers = _int("GUNICORN_WORKERS", _int("WEB_CONCURRENCY", min(2 * _cpus() + 1, 8), minimum=1), minimum=1)
worker_class = "sync"
timeout = _int("GUNICORN_TIMEOUT", 30, minimum=1)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30, minimum=1)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# A worker is replaced after this many requests (a guard against slow leaks). At 1,000 a busy worker was rebooted
# every ~30 s, and each boot costs it 1-2 s of CPU (5.5 % of a loaded run, docs/performance.md).
max_requests = _int("GUNICORN_MAX_REQUESTS", 20000)
max_requests_jitter = max_requests // 10

# The heartbeat file in memory: on a container's overlay filesystem fchmod can stall a worker (gunicorn docs).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
# No control socket in $HOME: several gunicorns on one machine (prod-smoke, tests) would share its path.
control_socket_disable = True

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()


def child_exit(server, worker):
    """prometheus_client's multiprocess mode (csplatform/metrics.py) must forget a worker that has gone."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess  # only in multiprocess mode

        multiprocess.mark_process_dead(worker.pid)
