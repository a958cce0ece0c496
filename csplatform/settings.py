"""Settings for the Customer Success Platform, read from the environment through django-environ.

With no environment set the platform runs embedded: SQLite in ``var/``, celery tasks run eagerly,
emails go to the console. ``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL and a
Redis-backed celery. ``.env`` is read only when ``DJANGO_READ_DOT_ENV=true``.
"""

import base64
import datetime
import hashlib
import hmac
import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from csplatform.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if env.bool("DJANGO_READ_DOT_ENV", default=False):
    env.read_env(str(BASE_DIR / ".env"))

DEBUG = env.bool("DJANGO_DEBUG", default=False)
EMBEDDED = not env("DATABASE_URL", default="")


def _secret_key() -> str:
    """The production key comes from the environment; embedded/debug runs keep a generated one in var/."""
    key = env("DJANGO_SECRET_KEY", default="")
    if key:
        return key
    if not (DEBUG or env.bool("DJANGO_ALLOW_GENERATED_SECRET", default=False)):
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is false")
    VAR_DIR.mkdir(exist_ok=True)
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()


def _field_encryption_keys() -> list[str]:
    """Fernet keys for secrets at rest (csplatform/crypto.py): the first encrypts, all decrypt (rotation). Like
    the secret key, production must set them; debug/test runs derive one from SECRET_KEY (a changed SECRET_KEY
    then makes their stored secrets unreadable)."""
    keys = env.list("FIELD_ENCRYPTION_KEYS", default=[])
    if keys:
        return keys
    if not (DEBUG or env.bool("DJANGO_ALLOW_GENERATED_SECRET", default=False)):
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS must be set when DJANGO_DEBUG is false (comma-separated "
                                   "Fernet keys, the first encrypts; docs/security.md \"Secrets at rest\")")
    derived = hmac.new(SECRET_KEY.encode(), b"csplatform.field-encryption.v1", hashlib.sha256).digest()
    return [base64.urlsafe_b64encode(derived).decode()]


FIELD_ENCRYPTION_KEYS = _field_encryption_keys()
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "accounts.cockpit.apps.CockpitAdminConfig",  # django.contrib.admin, its home the CSM cockpit (docs/cockpit.md)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",  # only so accounts 0007 can move its keys to ApiToken: its table stays empty
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from static files, not a CDN
    "django_celery_beat",
    "csplatform.apps.CSPlatformConfig",
    "accounts",
    "delivery",
    "automation",
    "playbooks",
    "crm",
]

MIDDLEWARE = [
    # First, so every layer below logs with the request id (csplatform/request_id.py, docs/observability.md).
    "csplatform.request_id.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files under gunicorn (STORAGES below)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csplatform.middleware.TenantContextMiddleware",
    "csplatform.login_guard.LoginGuardMiddleware",
]
# Every password form (token, DRF and admin logins): failures per client address and per username
# (csplatform/login_guard.py). X-Forwarded-For is believed only behind TRUSTED_PROXY_COUNT proxies (also
# DRF's NUM_PROXIES), so rotating it does not give a client a new identity.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
LOGIN_FAILURE_WINDOW = env.int("LOGIN_FAILURE_WINDOW", default=900)
# API tokens (accounts.ApiToken, docs/security.md "API tokens"): how long a new one lasts. Only
# ``issue_api_token --no-expiry`` makes one that never expires.
API_TOKEN_TTL_DAYS = env.int("API_TOKEN_TTL_DAYS", default=30)
if API_TOKEN_TTL_DAYS < 1:
    raise ImproperlyConfigured("API_TOKEN_TTL_DAYS must be at least 1 (a token that never expires is issued "
                               "only by the issue_api_token command)")
API_TOKEN_TTL = datetime.timedelta(days=API_TOKEN_TTL_DAYS)
# Beyond this many live tokens a user's least recently used one is revoked at the next issue; dead tokens
# (revoked or expired) are deleted this many days later by purge_history.
API_TOKEN_MAX_PER_USER = env.int("API_TOKEN_MAX_PER_USER", default=100)
API_TOKEN_KEEP_DAYS = env.int("API_TOKEN_KEEP_DAYS", default=90)

ROOT_URLCONF = "csplatform.urls"
ADMIN_URL = "admin/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "csplatform.wsgi.application"

VAR_DIR.mkdir(exist_ok=True)
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
# One transaction per request: the tenant setting for PostgreSQL row-level security lives in it.
DATABASES["default"]["ATOMIC_REQUESTS"] = True
# Persistent connections on PostgreSQL: a request or a task reuses its process's session instead of starting a
# backend each time (a new connection was 7-10 % of an API read, docs/performance.md). Health checks replace a
# session that died while idle. Reuse across tenants is safe: the row-level-security scope follows the tenancy
# context query by query (csplatform.tenancy._apply_scope). 0 restores a connection per request and per task.
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=300)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Row-level security (csplatform/rls.py): the runtime role granted DML after each migrate (run
# migrate as the tables' owner, the web and workers as this role), and the key that signs a
# session's scope (default: derived from SECRET_KEY).
DATABASE_APP_ROLE = env("DATABASE_APP_ROLE", default="")
RLS_SIGNING_KEY = env("RLS_SIGNING_KEY", default="")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("DJANGO_STATIC_ROOT", default=str(VAR_DIR / "static")))
# WhiteNoise serves STATIC_ROOT; without DEBUG, names carry a content hash (cached forever) and gzip copies,
# which needs ``collectstatic`` first (the Dockerfile runs it at build time; settings_test does not need it).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage" if DEBUG
                    else "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    # Fails open when Redis is down (csplatform/cache.py): throttles let requests through, nothing 500s.
    CACHES = {"default": {"BACKEND": "csplatform.cache.FailOpenRedisCache", "LOCATION": REDIS_URL,
                          "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: eager in embedded mode (no broker needed). The broker is CELERY_BROKER_URL (Redis or RabbitMQ,
# e.g. amqp://user:pass@host:5672//), else REDIS_URL; results and the cache stay on Redis either way.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=CELERY_BROKER_URL == "memory://")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 120
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Celery's Django fixup closes the database connection before and after every task unless this is set; with
# persistent connections, csplatform.celery closes only broken or expired ones between tasks, as Django does
# between requests (a new session per task was 12 % of a worker's CPU, docs/performance.md).
if DATABASES["default"].get("CONN_MAX_AGE"):
    CELERY_DB_REUSE_MAX = 1_000_000
# Priority lanes (docs/operations.md): rule processing and delivery never wait behind work over many
# accounts. One worker on ``-Q events,delivery,default``, another on ``-Q bulk``. Every task of the project
# is named here (tests/csplatform/test_task_routes.py), so none lands on ``default`` by accident.
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "automation.tasks.process_event": {"queue": "events"},
    "automation.tasks.run_due_runs_task": {"queue": "events"},  # delayed and retried runs, due now
    "automation.tasks.sweep_events_task": {"queue": "events"},  # re-dispatches lost events (cheap)
    "automation.delivery.deliver_messages": {"queue": "delivery"},
    "automation.delivery.deliver_outbox": {"queue": "delivery"},  # retries, lost dispatches
    "playbooks.tasks.evaluate_due_tenants_task": {"queue": "bulk"},  # evaluate-all over every account
    "automation.tasks.run_scheduled_rules_task": {"queue": "bulk"},  # scheduled and time-based sweeps
    "automation.tasks.tick_task": {"queue": "bulk"},
    "crm.tasks.daily_triggers_task": {"queue": "bulk"},
    "crm.tasks.execute_pending_steps_task": {"queue": "bulk"},  # up to 10,000 executions per tenant and tick
    "crm.tasks.run_execution_steps": {"queue": "default"},  # the first step of one journey just started
    "automation.health_adjustments.expire_health_adjustments_task": {"queue": "default"},
    "automation.heartbeat.scheduler_heartbeat_task": {"queue": "default"},  # says beat and a worker are alive
    "automation.retention.purge_history_task": {"queue": "bulk"},  # batched deletes of old history, hourly
}
# Bulk tasks may run for minutes (evaluate-all over 100,000 accounts: 30-45 s the first time, docs/performance.md);
# the 60/120 s limits above stay for the other lanes. Per task, since a worker's --time-limit does not override them.
CELERY_TASK_ANNOTATIONS = {
    name: {"soft_time_limit": env.int("CELERY_BULK_SOFT_TIME_LIMIT", default=1500),
           "time_limit": env.int("CELERY_BULK_TIME_LIMIT", default=1800)}
    for name, route in CELERY_TASK_ROUTES.items()
    if route["queue"] == "bulk" and name != "automation.retention.purge_history_task"  # its own, from its budget
}

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="success@localhost")

# Webhooks may reach loopback/private addresses only when this is set (demo, tests).
OUTBOUND_ALLOW_LOOPBACK = env.bool("OUTBOUND_ALLOW_LOOPBACK", default=False)

REST_FRAMEWORK = {
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,  # None would make the whole X-Forwarded-For header the client's identity
    # JSON that nests too deeply or holds NUL / unpaired surrogates is a 400 naming it (csplatform.json_input).
    "DEFAULT_PARSER_CLASSES": ["csplatform.json_input.SafeJSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api.authentication.ApiTokenAuthentication",  # hashed, expiring, revocable; same header
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["csplatform.permissions.RolePermission"],
    "DEFAULT_PAGINATION_CLASS": "csplatform.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    # Error responses, tags and summaries of every operation (csplatform/openapi.py).
    "DEFAULT_SCHEMA_CLASS": "csplatform.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "EXCEPTION_HANDLER": "csplatform.api.exception_handler",
    # Per user (token or session) and per client address for anonymous calls; views that evaluate rules
    # over many accounts opt into the stricter scope with ``throttle_scope = "evaluation"``. The counters
    # live in the cache (Redis when REDIS_URL is set, so all web processes share them).
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.ScopedRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("API_THROTTLE_ANON", default="60/minute"),
        "user": env("API_THROTTLE_USER", default="1200/minute"),
        "evaluation": env("API_THROTTLE_EVALUATION", default="10/minute"),
        "login": env("API_THROTTLE_LOGIN", default="10/minute"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Customer Success Platform API",
    "DESCRIPTION": "Accounts, health scores, journeys and the automation that reacts to them. Send "
                   "`Authorization: Token <key>` (POST /api/auth/token/) and JSON bodies; text may not contain NUL "
                   "(U+0000) or unpaired surrogates. Errors: `{\"detail\": ...}`, or the fields and their messages "
                   "(400).",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Two choice sets share the field name risk_level: the account's health band keeps its name.
    "ENUM_NAME_OVERRIDES": {"RiskLevelEnum": "accounts.models.customers.RiskLevel",
                            "OpportunityRiskEnum": "accounts.models.opportunities.Opportunity.Risk"},
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "csplatform.openapi.add_tag_descriptions"],
    # /api/docs/ and /api/redoc/ load their scripts from this server (drf-spectacular-sidecar), not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGIN_URL = "admin:login"

# --- transport and browser security -----------------------------------------------------------------
# Secure by default whenever DEBUG is off, so ``manage.py check --deploy`` is clean with nothing but
# DJANGO_SECRET_KEY (and FIELD_ENCRYPTION_KEYS) set; each setting can be relaxed through the environment (docs/security.md).
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Prometheus and load balancers often speak plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = env.list("DJANGO_SECURE_REDIRECT_EXEMPT", default=[r"^(metrics|healthz|readyz)/?$"])
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = env("DJANGO_SECURE_REFERRER_POLICY", default="same-origin")
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Behind a TLS-terminating proxy: DJANGO_SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https (only if the
# proxy always sets or strips that header, or clients could claim HTTPS).
_proxy_ssl_header = env.list("DJANGO_SECURE_PROXY_SSL_HEADER", default=[])
if _proxy_ssl_header:
    if len(_proxy_ssl_header) != 2:
        raise ImproperlyConfigured(
            "DJANGO_SECURE_PROXY_SSL_HEADER must be HEADER,VALUE, e.g. HTTP_X_FORWARDED_PROTO,https"
        )
    SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header)

# One console handler; LOG_FORMAT=json writes JSON lines; every line carries request_id and tenant_id
# (csplatform/logs.py, docs/observability.md). Celery workers and beat log through it too.
LOG_LEVEL = env("LOG_LEVEL", default="INFO").upper()
LOG_FORMAT = env("LOG_FORMAT", default="text").lower()
LOGGING = logging_config(LOG_LEVEL, LOG_FORMAT)

# --- delivery (delivery/, docs/delivery.md) ------------------------------------------------------
OUTBOX_BATCH_SIZE = env.int("OUTBOX_BATCH_SIZE", default=50)  # rows claimed per SKIP LOCKED query
OUTBOX_SENDING_TIMEOUT = env.int("OUTBOX_SENDING_TIMEOUT", default=300)  # s before a 'sending' row is re-claimed
OUTBOX_PASS_BUDGET = env.float("OUTBOX_PASS_BUDGET", default=30.0)  # s the periodic pass keeps claiming
OUTBOX_PASS_EVERY = env.int("OUTBOX_PASS_EVERY", default=15)  # s between two periodic passes (beat)
OUTBOX_DRAIN_LIMIT = env.int("OUTBOX_DRAIN_LIMIT", default=50)  # more due messages an on-commit task takes
OUTBOX_DRAIN_BUDGET = env.float("OUTBOX_DRAIN_BUDGET", default=5.0)  # s it may spend on them
OUTBOX_SHORT_RETRY = 300  # s: a retry due sooner is also scheduled as a celery countdown (not only the pass)
OUTBOX_RESPONSE_EXCERPT = 1000  # characters of a response body kept on the message
OUTBOX_ASYNC_COMMIT = env.bool("OUTBOX_ASYNC_COMMIT", default=True)  # results commit without a WAL flush wait
OUTBOUND_TIMEOUT = env.float("OUTBOUND_TIMEOUT", default=10.0)  # read/write timeout of one HTTP call
OUTBOUND_CONNECT_TIMEOUT = env.float("OUTBOUND_CONNECT_TIMEOUT", default=5.0)
OUTBOUND_TOTAL_TIMEOUT = env.float("OUTBOUND_TOTAL_TIMEOUT", default=15.0)  # stop reading a response after this
OUTBOUND_CA_BUNDLE = env("OUTBOUND_CA_BUNDLE", default="")  # extra CA file for TLS (blank: certifi's roots)
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="http://localhost:8000")  # unsubscribe links in emails
SLACK_API_URL = env("SLACK_API_URL", default="https://slack.com/api")
# "console": Telegram messages are printed, not sent (the embedded demo, like its console email backend).
TELEGRAM_API_URL = env("TELEGRAM_API_URL", default="console" if EMBEDDED else "https://api.telegram.org")
SMS_API_URL = env("SMS_API_URL", default="")
SMS_FROM = env("SMS_FROM", default="")
HUBSPOT_API_URL = env("HUBSPOT_API_URL", default="https://api.hubapi.com")
SALESFORCE_INSTANCE_URL = env("SALESFORCE_INSTANCE_URL", default="")
SALESFORCE_API_VERSION = env("SALESFORCE_API_VERSION", default="v60.0")
WEBHOOK_DISABLE_AFTER_DAYS = env.float("WEBHOOK_DISABLE_AFTER_DAYS", default=5)  # all-failing streak that disables
# --- end delivery ---------------------------------------------------------------------------------

# --- engine (automation/engine.py, docs/automation.md) ---------------------------------------------
# A worker handed one event also takes up to this many - 1 other pending events of the same tenant, so a
# backlog is drained in few transactions. 1 = strictly one event per task.
AUTOMATION_EVENT_BATCH = env.int("AUTOMATION_EVENT_BATCH", default=50)
# An event whose processing fails this many times is set aside (Event.failed_at) instead of being retried.
AUTOMATION_EVENT_MAX_ATTEMPTS = env.int("AUTOMATION_EVENT_MAX_ATTEMPTS", default=5)
# A rule whose automatic runs failed this many times in a row gets one task for its owner (automation.breaker).
AUTOMATION_FAILING_RULE_TASK_AFTER = env.int("AUTOMATION_FAILING_RULE_TASK_AFTER", default=3)
# --- end engine -----------------------------------------------------------------------------------

# --- retention and observability (automation/retention.py, docs/scaling.md, docs/observability.md) --------
# Days of history kept; a tenant's RetentionPolicy (automation) overrides each. Pending work is never purged.
RETENTION_DEFAULTS = {
    "events": env.int("RETENTION_EVENTS_DAYS", default=30),  # processed events
    "runs": env.int("RETENTION_RUNS_DAYS", default=180),  # finished runs and their steps
    "delivered_messages": env.int("RETENTION_DELIVERED_DAYS", default=30),  # delivered outbox messages
    "dead_messages": env.int("RETENTION_DEAD_DAYS", default=90),  # dead outbox messages
    "audit_log": env.int("RETENTION_AUDIT_DAYS", default=730),  # audit log entries
}
RETENTION_BATCH = env.int("RETENTION_BATCH", default=5000)  # ids per DELETE, each in its own short transaction
RETENTION_PURGE_BUDGET = env.float("RETENTION_PURGE_BUDGET", default=600)  # s one beat run purges; the next goes on
METRICS_WINDOW = env.int("METRICS_WINDOW", default=3600)  # s of runs, steps and deliveries /metrics counts
SCHEDULER_SILENT_AFTER = env.int("SCHEDULER_SILENT_AFTER", default=300)  # s without a heartbeat: "silent"
# --- end retention and observability ----------------------------------------------------------------

# --- scheduling (automation/scheduling.py, docs/scheduling.md) ------------------------------------
# Embedded mode runs the web server and the ``tick --loop`` process on one SQLite file: WAL lets reads
# go on during a write, and IMMEDIATE transactions wait for the write lock (up to ``timeout`` s) instead
# of failing with "database is locked" when a read transaction later wants to write.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"})
# --- end scheduling -------------------------------------------------------------------------------

# --- crm (crm/, docs/crm.md) ------------------------------------------------------------------------
# Give a new tenant seed 002's default journeys (each started by a managed automation rule) when it is
# created and at the daily scan. Off: journeys appear only when someone opens them (API, admin) or runs
# ``crm_ensure_journeys``; the test suite turns it off outside tests/crm so other tests see only their rules.
CRM_DEFAULT_JOURNEYS = env.bool("CRM_DEFAULT_JOURNEYS", default=True)
# --- end crm --------------------------------------------------------------------------------------
