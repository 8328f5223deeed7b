"""/healthz and /readyz: open, cheap, and saying which check failed but nothing more."""

from __future__ import annotations

import uuid
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

pytestmark = pytest.mark.django_db

HEALTHZ, READYZ = reverse("healthz"), reverse("readyz")


def test_liveness_answers_without_a_login_or_the_database(client):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(HEALTHZ)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert len(queries) == 0
    assert "no-cache" in response["Cache-Control"]


def test_liveness_stays_up_when_the_database_is_down(client):
    with mock.patch("agents.health.database_check", side_effect=OSError("db gone")):
        assert client.get(HEALTHZ).status_code == 200


def test_readiness_checks_the_database_only_on_the_orm_broker(client, settings):
    settings.REDIS_URL = ""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(READYZ)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}
    assert len(queries) == 1


def test_readiness_checks_redis_when_it_is_the_broker(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    with mock.patch("agents.health.broker_check") as pinged:
        response = client.get(READYZ)
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}
    pinged.assert_called_once()


def test_a_database_that_does_not_answer_is_503_naming_it_and_nothing_else(client, caplog):
    secret = "postgres://countersign_app:hunter2@db.internal:5432/countersign"
    with mock.patch("agents.health.database_check", side_effect=OSError(f"refused: {secret}")):
        response = client.get(READYZ)
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": "failed"}}
    assert b"hunter2" not in response.content and b"db.internal" not in response.content
    assert "hunter2" in caplog.text  # the reason goes to the log, for the operator


def test_a_broker_that_does_not_answer_is_503(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    with mock.patch("agents.health.broker_check", side_effect=ConnectionError("redis gone")):
        response = client.get(READYZ)
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "failed"}


def test_the_real_broker_check_pings_the_broker_made_once_per_process():
    from agents import health

    broker = mock.Mock()
    broker.ping.return_value = False
    health.broker.cache_clear()
    try:
        with mock.patch("django_q.brokers.get_broker", return_value=broker) as made:
            with pytest.raises(ConnectionError):
                health.broker_check()
            broker.ping.return_value = True
            health.broker_check()
        assert made.call_count == 1 and broker.ping.call_count == 2
    finally:
        health.broker.cache_clear()


def test_only_get_is_served(client):
    assert client.post(HEALTHZ).status_code == 405
    assert client.post(READYZ).status_code == 405


# --- against a real Redis ----------------------------------------------------------------------


def redis_broker_at(url: str, monkeypatch) -> Any:
    """A django-q2 Redis broker on `url` with a queue of its own, as /readyz and /metrics see it."""
    from django_q.brokers.redis_broker import Redis
    from django_q.conf import Conf

    from agents import health

    monkeypatch.setattr(Conf, "REDIS", url)
    made = Redis(list_key=f"cs-test-{uuid.uuid4().hex[:8]}")
    monkeypatch.setattr(health, "broker", lambda: made)
    return made


@pytest.fixture
def redis_broker(settings, monkeypatch):
    from tests.e2e.conftest import REDIS_URL, redis_reachable

    if not redis_reachable():
        pytest.skip("needs Redis at TEST_REDIS_URL")
    settings.REDIS_URL = REDIS_URL
    made = redis_broker_at(REDIS_URL, monkeypatch)
    yield made
    made.delete_queue()


def test_readiness_and_metrics_on_a_real_redis(client, settings, redis_broker):
    from agents.metrics import operations_get

    assert client.get(READYZ).json()["checks"] == {"database": "ok", "broker": "ok"}
    for n in range(3):
        redis_broker.enqueue(f"task {n}")
    ops = operations_get()
    assert (ops.broker, ops.broker_up, ops.queue_depth, ops.in_flight) == ("redis", True, 3, None)
    assert isinstance(ops.clusters, int)


def test_a_redis_that_does_not_answer_fails_readiness_fast(client, settings, monkeypatch):
    settings.REDIS_URL = "redis://127.0.0.1:9/0?socket_connect_timeout=1"  # nothing listens
    redis_broker_at(settings.REDIS_URL, monkeypatch)
    response = client.get(READYZ)
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "failed"}
