"""Queueing django-q2 tasks, always after the current transaction commits."""

from __future__ import annotations

import functools
import os

from django.db import transaction
from django_q import brokers
from django_q.tasks import async_task


@functools.cache
def _broker_of(pid: int) -> brokers.Broker:
    return brokers.get_broker()


def broker() -> brokers.Broker:
    """This process's broker, made once: django-q2 makes one, and its connection, per task.

    One per process id, as a cluster forks its workers and each needs connections of its own.
    """
    return _broker_of(os.getpid())


broker.cache_clear = _broker_of.cache_clear  # type: ignore[attr-defined]


def enqueue_on_commit(func: str, *args: object) -> None:
    """Queue `func(*args)` once the surrounding transaction commits (at once without one)."""
    name = f"{func.rsplit('.', 1)[-1]}:{':'.join(map(str, args))}"
    transaction.on_commit(lambda: async_task(func, *args, task_name=name, broker=broker()))
