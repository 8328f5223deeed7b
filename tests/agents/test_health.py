"""/healthz and /readyz: open, cheap, and saying which check failed but nothing more."""

from __future__ import annotations

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


def test_the_real_broker_check_pings_redis(settings):
    from agents.health import broker_check

    broker = mock.Mock()
    broker.ping.return_value = False
    with (
        mock.patch("django_q.brokers.get_broker", return_value=broker),
        pytest.raises(ConnectionError),
    ):
        broker_check()
    broker.ping.return_value = True
    with mock.patch("django_q.brokers.get_broker", return_value=broker):
        broker_check()


def test_only_get_is_served(client):
    assert client.post(HEALTHZ).status_code == 405
    assert client.post(READYZ).status_code == 405
