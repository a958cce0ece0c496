"""Test settings: the real settings with fast hashing, in-memory mail and loopback webhooks allowed.

The database and broker still come from DATABASE_URL / REDIS_URL (``make test`` points them at
PostgreSQL and Redis); without them the suite falls back to SQLite and eager celery.
"""

import os

os.environ.setdefault("DJANGO_ALLOW_GENERATED_SECRET", "true")
os.environ.setdefault("OUTBOUND_ALLOW_LOOPBACK", "true")
# The runtime role the RLS probe tests connect as (scripts/services.sh creates it; migrate grants it DML).
os.environ.setdefault("DATABASE_APP_ROLE", "csplatform_app")

from .settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Pages render without a collectstatic manifest (production's hashed names need one), and WhiteNoise finds the
# files in the apps, as under `make run`, instead of warning that STATIC_ROOT does not exist.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_USE_FINDERS = WHITENOISE_AUTOREFRESH = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Each test run gets its own database, so parallel runs on one PostgreSQL server do not collide.
if DATABASES["default"]["ENGINE"].endswith("postgresql"):  # noqa: F405
    DATABASES["default"].setdefault("TEST", {})["NAME"] = f"test_csplatform_{os.getpid()}"  # noqa: F405

# Unit tests run celery tasks in-process; the end-to-end tests start a real worker explicitly.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)  # noqa: F405

# The test client speaks plain HTTP: no redirect to HTTPS, cookies without the Secure flag.
# (tests/security runs ``check --deploy`` on the real settings in a subprocess.)
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0

# Throttling stays on (the same classes as production) with rates no test reaches; a throttling test
# lowers them itself (tests/security/test_hardening.py).
_scopes = REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]  # noqa: F405
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {scope: "1000000/minute" for scope in _scopes}}  # noqa: F405
# Failed logins from 127.0.0.1 add up over the whole suite: tests of the guard lower the limit themselves.
LOGIN_FAILURE_LIMIT = 1_000_000
