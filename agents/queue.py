"""Queueing django-q2 tasks, always after the current transaction commits."""

from __future__ import annotations

from django.db import transaction
from django_q.tasks import async_task


def enqueue_on_commit(func: str, *args: object) -> None:
    """Queue `func(*args)` once the surrounding transaction commits (at once without one)."""
    name = f"{func.rsplit('.', 1)[-1]}:{':'.join(map(str, args))}"
    transaction.on_commit(lambda: async_task(func, *args, task_name=name))
