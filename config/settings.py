"""Settings for every environment, each knob read from the environment.

Production is the default: development and test are asked for with
SHOPFLOW_ENV=development or SHOPFLOW_ENV=test (the Makefile, .ci/run and the test
harness set them). Their defaults suit a laptop (local PostgreSQL and Redis, the sandbox
partners, a public development key); production's secrets have no default, and its
system checks (config/checks.py) refuse the development ones.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.queues import BULK, HIGH, LOW, MEDIUM, TASK_QUEUES, celery_routes

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SHOPFLOW_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # media (and a SQLite file, if chosen) live here


def env_bool(name: str, default: bool) -> bool:
    return os.environ.get(name, str(default)).lower() in {"1", "true", "yes", "on"}


ENVIRONMENTS = ("production", "development", "test")
ENVIRONMENT = os.environ.get("SHOPFLOW_ENV", "production")
if ENVIRONMENT not in ENVIRONMENTS:
    # A typo (`prod`) must not fall back to the development defaults.
    raise ImproperlyConfigured(
        f"SHOPFLOW_ENV={ENVIRONMENT!r} is not one of {', '.join(ENVIRONMENTS)} "
        "(unset means production)."
    )
PRODUCTION = ENVIRONMENT == "production"

# Public, so refused in production by config/checks.py.
DEVELOPMENT_SECRET_KEY = "dev-only-insecure-key-change-me"
# Production without DJANGO_SECRET_KEY gets an empty key: Django refuses to sign with it
# and the system checks name the variable.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "" if PRODUCTION else DEVELOPMENT_SECRET_KEY)
DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)
ALLOWED_HOSTS = [
    host
    for host in os.environ.get(
        "DJANGO_ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,testserver"
    ).split(",")
    if host
]

# HTTPS in production (manage.py check --deploy). Behind a proxy that terminates TLS,
# SHOPFLOW_BEHIND_TLS_PROXY=1 trusts its X-Forwarded-Proto header, and only then: a
# client could send that header itself to a server it reaches directly.
if env_bool("SHOPFLOW_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", PRODUCTION)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000" if PRODUCTION else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", PRODUCTION)
# Admin logins: django-axes locks a username from an address out after this many failures.
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("AXES_COOLOFF_HOURS", "1"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "axes",
    "bulkjobs",
    "engine",
    "shop",
    "orders",
    "fulfillment",
    "notifications",
    "webhooks",
    "ops",
    "sandbox",
    "config",
]

# The pipeline the step engine runs (engine/pipeline.py): its steps, step-record model
# and the domain's hooks.
ENGINE_PIPELINE = "orders.pipeline.ORDER_PIPELINE"

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it answers a locked-out login.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# PostgreSQL, the database the guarantees are written for. In development the default is
# the demo's own server (`make demo` starts it from a wheel: harness/services.py).
# SQLite is the lighter option, chosen with DATABASE_URL=sqlite:///...: WAL lets readers
# work beside the one writer, IMMEDIATE transactions take the write lock up front (no
# upgrade deadlocks) and the timeout makes concurrent workers wait instead of failing.
DEMO_DATABASE_URL = "postgres://postgres@127.0.0.1:5433/shopflow"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", DEMO_DATABASE_URL),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("SHOPFLOW_MEDIA_ROOT", VAR_DIR / "media"))
# Two storages (kit/files.py): "default", public, for product images (MEDIA_ROOT, which a
# web server may serve under MEDIA_URL); "private" for exports, invoices, labels and
# uploaded import files, under random names, served only by views that check access
# (PRIVATE_MEDIA_ROOT, outside MEDIA_ROOT, served by nothing). In production each is an
# S3-compatible bucket through django-storages once its bucket is named: S3_PUBLIC_BUCKET,
# S3_PRIVATE_BUCKET, with S3_ENDPOINT_URL and S3_REGION for a provider other than AWS and
# S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY unless the machine's role gives the credentials.
PRIVATE_MEDIA_ROOT = Path(os.environ.get("SHOPFLOW_PRIVATE_MEDIA_ROOT", VAR_DIR / "private"))
S3_OPTIONS = {
    option: os.environ[variable]
    for option, variable in {
        "endpoint_url": "S3_ENDPOINT_URL",
        "region_name": "S3_REGION",
        "access_key": "S3_ACCESS_KEY_ID",
        "secret_key": "S3_SECRET_ACCESS_KEY",
    }.items()
    if os.environ.get(variable)
}
S3_PUBLIC_BUCKET = os.environ.get("S3_PUBLIC_BUCKET", "")
S3_PRIVATE_BUCKET = os.environ.get("S3_PRIVATE_BUCKET", "")
STORAGES = {
    "default": (
        {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                **S3_OPTIONS,
                "bucket_name": S3_PUBLIC_BUCKET,
                "querystring_auth": False,  # product images: plain public URLs
                "file_overwrite": False,
            },
        }
        if S3_PUBLIC_BUCKET
        else {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    ),
    "private": (
        {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                **S3_OPTIONS,
                "bucket_name": S3_PRIVATE_BUCKET,
                "default_acl": "private",
                "file_overwrite": False,
            },
        }
        if S3_PRIVATE_BUCKET
        else {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            # No URL serves this folder; views stream its files after checking access.
            "OPTIONS": {"location": PRIVATE_MEDIA_ROOT, "base_url": "/private-files-have-no-url/"},
        }
    ),
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# In the database, so that logging out (or deleting a session row) revokes a session; a
# signed cookie stayed valid wherever it had been copied.
SESSION_ENGINE = "django.contrib.sessions.backends.db"

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
# The pipeline's workers run a pool of threads (Procfile), where Celery cannot enforce a
# task's time limit: every blocking call in a step carries its own timeout instead.
EMAIL_TIMEOUT = float(os.environ.get("EMAIL_TIMEOUT", "10"))
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Shopflow <orders@shopflow.example>")
# The right-hand side of every outbox email's Message-ID (made from its row, the same on
# every attempt): the sender's domain unless told otherwise.
EMAIL_MESSAGE_ID_DOMAIN = os.environ.get(
    "EMAIL_MESSAGE_ID_DOMAIN", DEFAULT_FROM_EMAIL.rpartition("@")[2].rstrip(">").strip()
)

SHOP_CURRENCY = os.environ.get("SHOP_CURRENCY", "EUR")
SHOP_BASE_URL = os.environ.get("SHOP_BASE_URL", "http://127.0.0.1:8000")

# External partners. The defaults point at the sandbox (`manage.py run_sandbox`);
# production points them at the real gateway, ERP, carrier and collector.
SANDBOX_URL = os.environ.get("SANDBOX_URL", "http://127.0.0.1:8100")
PARTNER_NAMES = ("payment", "erp", "carrier", "analytics")
# How long each partner keeps an idempotency key (<NAME>_KEY_RETENTION_S): Stripe keeps
# them for 24 hours; the others are taken to keep them as long until their contracts
# say otherwise. Past it (less a margin) a call is found by order, not by key (partners/).
KEY_RETENTION_S = {name: 24 * 3600 for name in PARTNER_NAMES}
PARTNERS = {
    name: {
        "base_url": os.environ.get(f"{name.upper()}_URL", f"{SANDBOX_URL}/{name}"),
        "timeout_s": float(os.environ.get(f"{name.upper()}_TIMEOUT_S", "5")),
        "key_retention_s": float(
            os.environ.get(f"{name.upper()}_KEY_RETENTION_S", KEY_RETENTION_S[name])
        ),
    }
    for name in PARTNER_NAMES
}

# Celery: at-least-once delivery. A message is acked only after its task ends,
# is redelivered when the worker running it dies, and each worker process holds
# one message at a time so a dead process strands at most one.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# The step records in the database are the results; no result backend.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_QUEUES = TASK_QUEUES
CELERY_TASK_ROUTES = celery_routes()
CELERY_TASK_DEFAULT_QUEUE = "medium"
CELERY_TASK_DEFAULT_EXCHANGE = "shopflow"
CELERY_TASK_DEFAULT_ROUTING_KEY = "medium"
# Workers run at this nice value (kit/priority.py): on a machine they share with the web
# server, a checkout takes the CPU ahead of the pipeline, which absorbs the wait (it is
# background work by design); alone on a machine they lose nothing. 0 leaves them as
# started. Under systemd or in containers, give the workers' cgroup a lower CPU weight.
WORKER_NICENESS = int(os.environ.get("WORKER_NICENESS", "10"))
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 120
CELERY_WORKER_SEND_TASK_EVENTS = True
# No task-sent event: it is one more Redis publish (and serialization) per task on the
# checkout's request path, for Flower's "sent" state, which the step record's queued_at
# already shows. Flower still sees every task from "received" on (worker events).
CELERY_TASK_SEND_SENT_EVENT = env_bool("CELERY_TASK_SEND_SENT_EVENT", False)
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Redis redelivers an unacked message after the visibility timeout, so it must
# exceed the longest task (hard limit 120 s) and the longest retry countdown
# (600 s), or a healthy task would run twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600")),
}
# A checkout must not hang on a broker that is down: publish gives up quickly and
# the step stays pending for reconciliation.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# Celery's Django fixup closes the database connection before and after every task
# unless this is set: each step paid for a new PostgreSQL connection (a backend
# forked, authenticated). Workers keep their connection under CONN_MAX_AGE and its
# health check instead, as web requests do (config/celery.py); this only bounds it.
CELERY_DB_REUSE_MAX = int(os.environ.get("CELERY_DB_REUSE_MAX", "1000"))
# Only for the synchronous baseline of bench/checkout.py: every task runs inline where
# it is sent, so the pipeline published after commit runs inside the checkout request.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# JSON lines in production (for a log shipper), readable text on a laptop. Inside a
# task every line carries its order, step and attempt (kit/logs.py); Celery's
# processes use this configuration too (ops/receivers.py).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "json" if PRODUCTION else "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"task_context": {"()": "kit.logs.TaskContextFilter"}},
    "formatters": {
        "text": {
            "()": "kit.logs.TextFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {"()": "kit.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["task_context"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # django-axes says INFO at every start and on each failed login; lockouts are WARNING.
    "loggers": {"httpx": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# Scales every retry delay of the pipeline; tests and chaos runs shrink it.
PIPELINE_RETRY_DELAY_SCALE = float(os.environ.get("PIPELINE_RETRY_DELAY_SCALE", "1"))
# The same for the policies' budgets in time (kit/retry.py); 0 leaves the attempts alone
# (the suite: its in-process retries do not wait, so no time would ever be spent).
PIPELINE_RETRY_BUDGET_SCALE = float(os.environ.get("PIPELINE_RETRY_BUDGET_SCALE", "1"))
IDEMPOTENCY_KEY_TTL_HOURS = int(os.environ.get("IDEMPOTENCY_KEY_TTL_HOURS", "24"))

# Shared state that every worker process must see (circuit breakers, job locks).
SHOPFLOW_REDIS_URL = os.environ.get(
    "SHOPFLOW_REDIS_URL",
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "redis://127.0.0.1:6379/0",
)

# Abuse limits (kit/limits.py), counted in Redis through this cache so every process shares
# them. Each scope is "count/seconds", from RATE_LIMIT_<SCOPE> (":" as "_"): checkouts and
# cancels per client address and per email, and emails of a kind to one recipient.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "limits": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": SHOPFLOW_REDIS_URL,
        "KEY_PREFIX": "shopflow:limit",
        # A Redis that does not answer lets the request through (kit/limits.py), quickly.
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    },
}
RATE_LIMITS_ENABLED = env_bool("RATE_LIMITS_ENABLED", True)
RATE_LIMITS = {
    scope: os.environ.get(f"RATE_LIMIT_{scope.upper().replace(':', '_')}", default)
    for scope, default in {
        "checkout_address": "20/600",
        "checkout_email": "10/3600",
        "cancel_address": "20/600",
        "cancel_email": "10/3600",
        "email:payment_failed": "3/3600",
        "email:order_cancelled": "5/3600",
    }.items()
}
# Proxies in front of the web process that append the client to X-Forwarded-For: the
# limits count the address the nearest of them saw. 0: REMOTE_ADDR, the header ignored.
RATE_LIMIT_PROXIES = int(os.environ.get("RATE_LIMIT_PROXIES", "0"))
# An order whose payment has not succeeded this long after checkout is cancelled by the
# reconciliation and its stock released (orders/services/pipeline.py).
UNPAID_ORDER_DEADLINE_S = float(os.environ.get("UNPAID_ORDER_DEADLINE_S", "1800"))

# "host:port" pairs the safe fetcher (safefetch/) may reach though they are internal:
# only the tests' own image servers. Production leaves it empty.
SAFE_FETCH_ALLOWED = [a for a in os.environ.get("SAFE_FETCH_ALLOWED", "").split(",") if a]

# Production refuses a broker or Redis URL without a password (config/checks.py) unless
# this says the network alone guards them.
SHOPFLOW_ALLOW_UNAUTHENTICATED_REDIS = env_bool("SHOPFLOW_ALLOW_UNAUTHENTICATED_REDIS", False)

# Failure handling (orders/runner.py, orders/services/reconcile.py, orders/breaker.py).
# A worker that dies this many times running one step marks it a poison pill.
STEP_MAX_CRASHES = int(os.environ.get("STEP_MAX_CRASHES", "3"))
# A claim on a step is a lease this long on the database's clock; every worker process
# renews the leases it holds, and sweeps for expired ones, every STEP_HEARTBEAT_S. A
# worker that dies anywhere has its steps running again within about lease + heartbeat.
STEP_LEASE_S = float(os.environ.get("STEP_LEASE_S", "15"))
STEP_HEARTBEAT_S = float(os.environ.get("STEP_HEARTBEAT_S", "3"))
# Steps the reconciliation treats as lost besides those running under an expired lease:
# queued or pending far longer than any healthy backlog, retrying well past their retry
# time.
RECONCILE_QUEUED_AFTER_S = float(os.environ.get("RECONCILE_QUEUED_AFTER_S", "900"))
RECONCILE_PENDING_AFTER_S = float(os.environ.get("RECONCILE_PENDING_AFTER_S", "60"))
RECONCILE_RETRYING_GRACE_S = float(os.environ.get("RECONCILE_RETRYING_GRACE_S", "120"))
RECONCILE_BATCH = int(os.environ.get("RECONCILE_BATCH", "500"))
# A partner call from inside a database transaction holds its locks while it waits:
# refused outside production (so the tests find any), logged with its stack in it.
PARTNER_CALL_IN_TRANSACTION = os.environ.get(
    "PARTNER_CALL_IN_TRANSACTION", "log" if ENVIRONMENT == "production" else "refuse"
)
BREAKER_FAILURE_THRESHOLD = int(os.environ.get("BREAKER_FAILURE_THRESHOLD", "5"))
BREAKER_WINDOW_S = int(os.environ.get("BREAKER_WINDOW_S", "60"))
BREAKER_COOLDOWN_S = float(os.environ.get("BREAKER_COOLDOWN_S", "30"))
# After the cool-down one call probes the partner; the others wait this long at most
# for its answer (past it a probe whose worker died is replaced): above every partner's
# timeout.
BREAKER_PROBE_S = float(os.environ.get("BREAKER_PROBE_S", "15"))

# Ops alerts: who hears, and when.
OPS_ALERT_EMAIL = os.environ.get("OPS_ALERT_EMAIL", "ops@shopflow.example")
ALERT_DEAD_LETTERS = int(os.environ.get("ALERT_DEAD_LETTERS", "10"))
ALERT_QUEUE_DEPTH = int(os.environ.get("ALERT_QUEUE_DEPTH", "1000"))
# The watchdog for workers that live but no longer consume (ops/consumers.py): each
# worker writes a beacon every CONSUMER_BEACON_S; a queue whose messages have waited
# CONSUMER_STALL_S while a live worker of it had a free slot and took nothing is stalled.
CONSUMER_BEACON_S = float(os.environ.get("CONSUMER_BEACON_S", "5"))
CONSUMER_STALL_S = float(os.environ.get("CONSUMER_STALL_S", "60"))
# Each queue's promise (DESIGN.md): the longest a step may wait on it before it starts,
# from the step's first queued_at. The oldest waiting step of a queue past its promise
# raises an alert for that queue and is red on the dashboard. The control queue carries
# no steps, so it has none.
QUEUE_MAX_WAIT_S = {
    queue: float(os.environ.get(f"QUEUE_MAX_WAIT_{queue.upper()}_S", default))
    for queue, default in ((HIGH, "30"), (MEDIUM, "300"), (LOW, "1800"), (BULK, "3600"))
}

# Review requests (orders/services/follow_ups.py): this many days after the carrier reports
# the parcel delivered; this many after the label when no delivery is reported by then.
REVIEW_REQUEST_AFTER_DELIVERY_DAYS = int(os.environ.get("REVIEW_REQUEST_AFTER_DELIVERY_DAYS", "7"))
REVIEW_REQUEST_DELIVERY_WAIT_DAYS = int(os.environ.get("REVIEW_REQUEST_DELIVERY_WAIT_DAYS", "14"))

# Partners' webhooks (webhooks/). Each partner signs with its secret; during a rotation
# the previous one is accepted too. Development and test have public defaults (the
# sandbox signs with them); production has none and refuses to start without them
# (config/checks.py, shopflow.E005).
WEBHOOK_PARTNERS = ("payment", "carrier")
DEVELOPMENT_WEBHOOK_SECRETS = {name: f"dev-webhook-secret-{name}" for name in WEBHOOK_PARTNERS}
WEBHOOK_SECRETS = {
    name: [
        secret
        for secret in (
            os.environ.get(
                f"{name.upper()}_WEBHOOK_SECRET",
                "" if PRODUCTION else DEVELOPMENT_WEBHOOK_SECRETS[name],
            ),
            os.environ.get(f"{name.upper()}_WEBHOOK_SECRET_PREVIOUS", ""),
        )
        if secret
    ]
    for name in WEBHOOK_PARTNERS
}
# A signature's timestamp may be this far from our clock (either way): a replay window.
WEBHOOK_TOLERANCE_S = int(os.environ.get("WEBHOOK_TOLERANCE_S", "300"))
# The largest body accepted (partners' events are a few hundred bytes).
WEBHOOK_MAX_BYTES = int(os.environ.get("WEBHOOK_MAX_BYTES", "65536"))
# An event for an order we do not have (yet: its checkout may not have committed) is
# retried this long, then failed; a processing error is retried this many times.
WEBHOOK_ORDER_WAIT_S = float(os.environ.get("WEBHOOK_ORDER_WAIT_S", "3600"))
WEBHOOK_MAX_ATTEMPTS = int(os.environ.get("WEBHOOK_MAX_ATTEMPTS", "8"))
# Longest wait between two tries of a waiting event (1, 2, 4, ... seconds up to this).
WEBHOOK_RETRY_MAX_S = float(os.environ.get("WEBHOOK_RETRY_MAX_S", "60"))
# The sweep publishes a waiting event again this long after it fell due (its own message
# should have run it by then).
WEBHOOK_SWEEP_AFTER_S = float(os.environ.get("WEBHOOK_SWEEP_AFTER_S", "30"))
# Processed and ignored events are purged this long after processing; failed ones stay.
WEBHOOK_RETENTION_DAYS = int(os.environ.get("WEBHOOK_RETENTION_DAYS", "30"))
# Ops are alerted when this many of a partner's events failed, or still wait after 3
# tries, within the last hour.
ALERT_WEBHOOK_FAILURES = int(os.environ.get("ALERT_WEBHOOK_FAILURES", "5"))

# Retention of the daily cleanup (orders/services/cleanup.py). Dead letters are kept.
STEP_RETENTION_DAYS = int(os.environ.get("STEP_RETENTION_DAYS", "90"))
EMAIL_RETENTION_DAYS = int(os.environ.get("EMAIL_RETENTION_DAYS", "180"))
CLEANUP_BATCH = int(os.environ.get("CLEANUP_BATCH", "1000"))

# Order exports (orders/services/exports.py): how long the emailed link works, orders per
# written batch, and the most ids a selection may name.
EXPORT_LINK_TTL_HOURS = int(os.environ.get("EXPORT_LINK_TTL_HOURS", "24"))
EXPORT_BATCH = int(os.environ.get("EXPORT_BATCH", "1000"))
EXPORT_MAX_IDS = int(os.environ.get("EXPORT_MAX_IDS", "10000"))

# Operations surface (ops/).
# /metrics answers a staff session, or this bearer token; production sets one or has none.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "" if PRODUCTION else "shopflow-metrics")
# Step durations and queue waits on /metrics cover the steps of this last window.
METRICS_WINDOW_S = int(os.environ.get("METRICS_WINDOW_S", "900"))
# /readyz: how long each check waits for an answer (the workers' replies take all of
# it), and how long ago beat may have last sent a job (the fastest job runs every minute).
READY_TIMEOUT_S = float(os.environ.get("READY_TIMEOUT_S", "1"))
READY_BEAT_MAX_AGE_S = float(os.environ.get("READY_BEAT_MAX_AGE_S", "180"))
# How long /readyz reuses its worker ping (a broadcast to every worker) in the cache.
READY_WORKERS_CACHE_S = float(os.environ.get("READY_WORKERS_CACHE_S", "5"))
# Beat writes each job's last run when it sends it, not every 3 minutes, so the
# dashboard and /readyz see it at once.
CELERY_BEAT_SYNC_EVERY = 1
# The dashboard marks a periodic job this long past its due time.
ALERT_JOB_LATE_S = float(os.environ.get("ALERT_JOB_LATE_S", "120"))
# First, so the checkout latency it measures includes the other middleware.
MIDDLEWARE = ["ops.middleware.CheckoutLatencyMiddleware", *MIDDLEWARE]
