"""Settings for every environment, read through one environ.Env.

A fresh checkout runs on embedded defaults: SQLite, the django-q2 ORM broker and the replay
model backend. Each variable is listed in `.env.example` with its default and meaning.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEFAULT_SECRET_KEY = "insecure-development-key-change-me"

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEFAULT_SECRET_KEY)
DEBUG = env.bool("DJANGO_DEBUG", default=True)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "agents",
    "support",
    "sre",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"

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
                "agents.context_processors.live_parts",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Keep a connection across requests and tasks (a new one per task cost 7-28 connects per run),
# checked before each reuse so a restarted database is not a failed task.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=300)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the workers write to one file: wait for the lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

LOGIN_URL = "admin:login"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # The Stripe SDK logs request URLs at INFO, customer emails included.
    "loggers": {"stripe": {"level": "WARNING"}},
}

# --- Task queue (django-q2) -------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER = {
    "name": env.str("Q_CLUSTER_NAME", default="countersign"),
    "workers": env.int("Q_WORKERS", default=2),
    # A task that runs longer than `timeout` is killed; one not acknowledged within `retry` is
    # delivered again. Every task here is safe to deliver twice.
    "timeout": env.int("Q_TIMEOUT", default=300),
    "retry": env.int("Q_RETRY", default=360),
    "max_attempts": env.int("Q_MAX_ATTEMPTS", default=5),
    "ack_failures": True,
    "save_limit": 1000,
    "catch_up": False,
    # How often an idle cluster asks the ORM broker for tasks on SQLite: a run's first step
    # waits half of it on average, each poll one indexed query. On PostgreSQL a NOTIFY wakes
    # the cluster (agents/broker.py); Redis hands tasks over at once.
    "poll": env.float("Q_POLL", default=0.02),
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    # On PostgreSQL a queued task wakes an idle cluster by NOTIFY (agents/broker.py).
    Q_CLUSTER["broker_class"] = "agents.broker.NotifyingORM"

# --- Agents (the engine) ----------------------------------------------------------------------
ANTHROPIC_API_KEY = env.str("ANTHROPIC_API_KEY", default="")
ANTHROPIC_BASE_URL = env.str("ANTHROPIC_BASE_URL", default="") or None
# Empty means the newest Sonnet that the installed anthropic SDK lists.
ANTHROPIC_MODEL = env.str("ANTHROPIC_MODEL", default="")
ANTHROPIC_TIMEOUT = env.float("ANTHROPIC_TIMEOUT", default=120.0)
ANTHROPIC_MAX_RETRIES = env.int("ANTHROPIC_MAX_RETRIES", default=2)
AGENTS_LLM_BACKEND = env.str(
    "AGENTS_LLM_BACKEND", default="anthropic" if ANTHROPIC_API_KEY else "replay"
)
AGENTS_MAX_TOKENS = env.int("AGENTS_MAX_TOKENS", default=4096)
AGENTS_MAX_TOKENS_CEILING = env.int("AGENTS_MAX_TOKENS_CEILING", default=16384)
AGENTS_MAX_TURNS = env.int("AGENTS_MAX_TURNS", default=20)
AGENTS_MAX_COST_USD = env.float("AGENTS_MAX_COST_USD", default=2.0)
AGENTS_RETRY_BASE_SECONDS = env.float("AGENTS_RETRY_BASE_SECONDS", default=15.0)
AGENTS_RETRY_MAX_SECONDS = env.float("AGENTS_RETRY_MAX_SECONDS", default=900.0)
AGENTS_STALE_CLAIM_SECONDS = env.int("AGENTS_STALE_CLAIM_SECONDS", default=600)
AGENTS_APPROVAL_TTL_HOURS = env.float("AGENTS_APPROVAL_TTL_HOURS", default=72.0)
# Transient failures (outages, timeouts) while checking a proposal or running a call are tried
# again with growing delays (AGENTS_RETRY_*); after this many tries the call fails visibly.
AGENTS_CHECK_MAX_ATTEMPTS = env.int("AGENTS_CHECK_MAX_ATTEMPTS", default=6)
AGENTS_EXECUTE_MAX_ATTEMPTS = env.int("AGENTS_EXECUTE_MAX_ATTEMPTS", default=6)
AGENTS_SWEEP_MINUTES = env.int("AGENTS_SWEEP_MINUTES", default=1)
AGENTS_MODEL_PRICES = env.json("AGENTS_MODEL_PRICES", default={})
# Backlog mode (agents/services/batches.py, docs/BACKLOG.md): first model calls of backlog runs
# go through the Message Batches API at half price, polled every AGENTS_BATCH_POLL_MINUTES.
AGENTS_BATCH_ENABLED = env.bool("AGENTS_BATCH_ENABLED", default=False)
AGENTS_BATCH_POLL_MINUTES = env.int("AGENTS_BATCH_POLL_MINUTES", default=2)
AGENTS_BATCH_MAX_REQUESTS = env.int("AGENTS_BATCH_MAX_REQUESTS", default=1000)
AGENTS_BATCH_TIMEOUT_HOURS = env.float("AGENTS_BATCH_TIMEOUT_HOURS", default=26.0)
# Retention (agents/services/retention.py, `manage.py audit_prune`): model calls and audit events
# older than this many days may be exported to AGENTS_AUDIT_EXPORT_DIR and then pruned.
AGENTS_AUDIT_RETENTION_DAYS = env.int("AGENTS_AUDIT_RETENTION_DAYS", default=365)
AGENTS_AUDIT_EXPORT_DIR = env.str(
    "AGENTS_AUDIT_EXPORT_DIR", default=str(BASE_DIR / "var" / "audit-exports")
)
# Settings whose values are masked out of everything sent to Claude (agents/redaction.py), on top
# of the token shapes detect-secrets knows; SRE_REDACT_ENV adds environment variables.
AGENTS_REDACT_SETTINGS = env.list(
    "AGENTS_REDACT_SETTINGS",
    default=[
        "SECRET_KEY",
        "ANTHROPIC_API_KEY",
        "STRIPE_API_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "GITHUB_TOKEN",
        "GITHUB_WEBHOOK_SECRET",
        "INBOUND_EMAIL_SECRET",
        "IMAP_PASSWORD",
        "EMAIL_HOST_PASSWORD",
        "METRICS_TOKEN",
    ],
)
# The console's address as people reach it: the links in notices and commit messages.
CONSOLE_URL = env.str("CONSOLE_URL", default="http://localhost:8000")
# A bearer token for a Prometheus scraper at /metrics (empty: only staff who may see runs and
# failed tasks can read it, logged in). docs/DEPLOY.md, "What an operator watches".
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --- Notices: Slack, or mail to the approvers ------------------------------------------------
SLACK_BOT_TOKEN = env.str("SLACK_BOT_TOKEN", default="")
SLACK_API_URL = env.str("SLACK_API_URL", default="")
SLACK_CHANNEL = env.str("SLACK_CHANNEL", default="")
# A channel per kind of proposal, e.g. process_refund=#refunds,create_pull_request=#oncall.
SLACK_CHANNELS = env.dict("SLACK_CHANNELS", default={})
# Interactivity (Approve / Reject from Slack): the app's signing secret, and the tools that
# may be decided there (none by default; a tool may still offer only "Open in console").
SLACK_SIGNING_SECRET = env.str("SLACK_SIGNING_SECRET", default="")
SLACK_DECISION_TOOLS = env.list("SLACK_DECISION_TOOLS", default=[])
# Without Slack, mail the approvers of a kind when one of its proposals starts waiting.
AGENTS_NOTICE_EMAIL = env.bool("AGENTS_NOTICE_EMAIL", default=True)

# --- Outgoing mail -----------------------------------------------------------------------------
# consolemail:// prints mail to the worker's terminal; smtp+tls://user:pass@host:587 sends it.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="support@countersign.localhost")

# --- Support desk ------------------------------------------------------------------------------
STRIPE_API_KEY = env.str("STRIPE_API_KEY", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env.int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", default=300)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
SUPPORT_SANDBOX_FIXTURE = env.str(
    "SUPPORT_SANDBOX_FIXTURE", default=str(BASE_DIR / "support" / "sandbox" / "customers.json")
)
SUPPORT_SANDBOX_STATE = env.str(
    "SUPPORT_SANDBOX_STATE", default=str(BASE_DIR / "var" / "sandbox-payments.json")
)
INBOUND_EMAIL_SECRET = env.str("INBOUND_EMAIL_SECRET", default="")
IMAP_HOST = env.str("IMAP_HOST", default="")
IMAP_PORT = env.int("IMAP_PORT", default=993)
IMAP_USER = env.str("IMAP_USER", default="")
IMAP_PASSWORD = env.str("IMAP_PASSWORD", default="")
IMAP_FOLDER = env.str("IMAP_FOLDER", default="INBOX")
IMAP_SSL = env.bool("IMAP_SSL", default=True)
IMAP_POLL_MINUTES = env.int("IMAP_POLL_MINUTES", default=2)
SUPPORT_REFUND_MAX_CENTS = env.int("SUPPORT_REFUND_MAX_CENTS", default=50_000)
SUPPORT_REFUND_DAILY_MAX_CENTS = env.int("SUPPORT_REFUND_DAILY_MAX_CENTS", default=100_000)
SUPPORT_TWO_PERSON_THRESHOLD_CENTS = env.int("SUPPORT_TWO_PERSON_THRESHOLD_CENTS", default=20_000)
SUPPORT_REFUND_EXPIRY_HOURS = env.float("SUPPORT_REFUND_EXPIRY_HOURS", default=48.0)
# Above this, a refund's Slack notice offers only "Open in console" (with Slack decisions on).
SUPPORT_SLACK_MAX_CENTS = env.int("SUPPORT_SLACK_MAX_CENTS", default=10_000)
SUPPORT_ESCALATION_EMAILS = env.list("SUPPORT_ESCALATION_EMAILS", default=[])

# --- SRE watchdog ------------------------------------------------------------------------------
# Log sources as comma-separated kind:path pairs; kinds nginx_access, nginx_error, gunicorn,
# django. Sources can also be added in the console. docs/sre-logging.md shows the NGINX and
# Django LOGGING settings that produce logs these parsers read.
SRE_LOG_SOURCES = env.str("SRE_LOG_SOURCES", default="")
SRE_SCAN_MINUTES = env.int("SRE_SCAN_MINUTES", default=5)
SRE_WINDOW_MINUTES = env.int("SRE_WINDOW_MINUTES", default=5)
SRE_SPIKE_MIN = env.int("SRE_SPIKE_MIN", default=10)
SRE_SPIKE_FACTOR = env.float("SRE_SPIKE_FACTOR", default=3.0)
SRE_BASELINE_WINDOWS = env.int("SRE_BASELINE_WINDOWS", default=12)
SRE_SCAN_MAX_BYTES = env.int("SRE_SCAN_MAX_BYTES", default=64 * 1024 * 1024)
SRE_MAX_LINE_BYTES = env.int("SRE_MAX_LINE_BYTES", default=64 * 1024)
SRE_SETTLE_SECONDS = env.float("SRE_SETTLE_SECONDS", default=10.0)
SRE_DEDUPE_SECONDS = env.int("SRE_DEDUPE_SECONDS", default=60)
SRE_REQUEST_MATCH_SECONDS = env.int("SRE_REQUEST_MATCH_SECONDS", default=60)
SRE_AGENT_RUNS_PER_HOUR = env.int("SRE_AGENT_RUNS_PER_HOUR", default=4)
SRE_RETENTION_DAYS = env.int("SRE_RETENTION_DAYS", default=30)

# --- SRE agent: the code it reads, the scratch copies it edits, where its patches go ----------
# The default is the demo's sample service, which `manage.py demo_sre` makes (samples/shop as a
# git repository); set it to the deployed checkout. Empty: the agent has no code to read.
SRE_REPO_ROOT = env.str("SRE_REPO_ROOT", default=str(BASE_DIR / "var" / "demo-shop"))
SRE_SCRATCH_DIR = env.str("SRE_SCRATCH_DIR", default=str(BASE_DIR / "var" / "sre-scratch"))
SRE_DENY_PATHS = env.list("SRE_DENY_PATHS", default=[])
SRE_REDACT_ENV = env.list(
    "SRE_REDACT_ENV",
    default=[
        "ANTHROPIC_API_KEY",
        "GITHUB_TOKEN",
        "GITHUB_WEBHOOK_SECRET",
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "STRIPE_API_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "INBOUND_EMAIL_SECRET",
        "IMAP_PASSWORD",
        "DJANGO_SECRET_KEY",
        "DATABASE_URL",
    ],
)
SRE_CHECK_COMMAND = env.str("SRE_CHECK_COMMAND", default="")
SRE_CHECK_TIMEOUT = env.float("SRE_CHECK_TIMEOUT", default=120.0)
SRE_READ_MAX_BYTES = env.int("SRE_READ_MAX_BYTES", default=200_000)
SRE_GIT_REMOTE = env.str("SRE_GIT_REMOTE", default="")
SRE_BASE_BRANCH = env.str("SRE_BASE_BRANCH", default="main")
GITHUB_TOKEN = env.str("GITHUB_TOKEN", default="")
GITHUB_REPOSITORY = env.str("GITHUB_REPOSITORY", default="")
GITHUB_API_URL = env.str("GITHUB_API_URL", default="https://api.github.com")
GITHUB_WEBHOOK_SECRET = env.str("GITHUB_WEBHOOK_SECRET", default="")
