"""What is live: the console always says which real services or embedded stand-ins run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection

from agents import llm

# Each part returns (concern, what runs, True when it is the real service).
_parts: list[Callable[[], tuple[str, str, bool]]] = []


def live_part_register(part: Callable[[], tuple[str, str, bool]]) -> None:
    _parts.append(part)


def _engine_parts() -> list[tuple[str, str, bool]]:
    backend = llm.configured_backend()
    model = (
        f"Anthropic · {llm.configured_model()}"
        if backend == "anthropic"
        else "replay of recorded replies"
    )
    database = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}.get(
        connection.vendor, connection.vendor
    )
    broker = "Redis" if settings.REDIS_URL else "database (ORM broker)"
    return [
        ("model", model, backend == "anthropic"),
        ("database", database, connection.vendor == "postgresql"),
        ("task broker", broker, bool(settings.REDIS_URL)),
    ]


def live_parts_list() -> list[dict[str, Any]]:
    parts = _engine_parts() + [part() for part in _parts]
    return [{"concern": c, "value": v, "real": r} for c, v, r in parts]


def live_parts(request: Any) -> dict[str, Any]:
    if not request.path.startswith("/admin/") or not getattr(request.user, "is_staff", False):
        return {}
    return {"live_parts": live_parts_list()}
