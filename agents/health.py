"""Liveness and readiness for load balancers and process managers: cheap, open, secret-free.

`/healthz` says the process answers (no database, no broker: a slow database must not get a
healthy web server restarted). `/readyz` says this process can do its work now: the database
answers, and so does Redis when it is the broker. Neither needs a login, so neither says more
than which check failed: no hostnames, no versions, no error text (that goes to the log).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from agents.queue import broker

logger = logging.getLogger(__name__)


def database_check() -> None:
    """Raise unless the default database answers a trivial query."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def broker_check() -> None:
    """Raise unless the task broker answers (Redis only; the ORM broker is the database)."""
    if not broker().ping():
        raise ConnectionError("the broker did not answer the ping")


def readiness_checks() -> dict[str, Callable[[], None]]:
    """The checks /readyz runs, by name: the database, and the broker when Redis is set."""
    checks: dict[str, Callable[[], None]] = {"database": database_check}
    if settings.REDIS_URL:
        checks["broker"] = broker_check
    return checks


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving requests."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """The database (and Redis, when it is the broker) answer: 200, or 503 naming what failed."""
    results = {}
    for name, check in readiness_checks().items():
        try:
            check()
        except Exception:
            logger.exception("readiness check %r failed", name)
            results[name] = "failed"
        else:
            results[name] = "ok"
    ready = all(value == "ok" for value in results.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": results},
        status=200 if ready else 503,
    )
