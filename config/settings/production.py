"""Production: the same settings, but refuse to start on a default that is only safe in a demo.

A default secret, DEBUG, an unpinned model (an SDK upgrade would silently change the model),
the replay model or the sandbox payments backend unless asked for by name.
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import AGENTS_LLM_BACKEND, ANTHROPIC_MODEL, DEFAULT_SECRET_KEY, STRIPE_API_KEY, env

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEFAULT_SECRET_KEY)

if DEBUG:
    raise ImproperlyConfigured("DJANGO_DEBUG is on: production refuses to start with DEBUG.")
if SECRET_KEY == DEFAULT_SECRET_KEY or len(SECRET_KEY) < 32:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is the default or shorter than 32 characters: set a real secret."
    )

if AGENTS_LLM_BACKEND == "anthropic" and not ANTHROPIC_MODEL:
    raise ImproperlyConfigured(
        "ANTHROPIC_MODEL is unset: production pins the model (e.g. claude-sonnet-4-5), so that an "
        "SDK upgrade cannot change it silently."
    )
if AGENTS_LLM_BACKEND == "replay" and "AGENTS_LLM_BACKEND" not in env.ENVIRON:
    raise ImproperlyConfigured(
        "No ANTHROPIC_API_KEY: production would run the replay model. Set the key, or set "
        "AGENTS_LLM_BACKEND=replay to run it on purpose."
    )
if not STRIPE_API_KEY and not env.bool("SUPPORT_ALLOW_SANDBOX_PAYMENTS", default=False):
    raise ImproperlyConfigured(
        "STRIPE_API_KEY is unset: production would refund through the sandbox. Set the key, or "
        "SUPPORT_ALLOW_SANDBOX_PAYMENTS=true to run without real payments on purpose."
    )

SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
