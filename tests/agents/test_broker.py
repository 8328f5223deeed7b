"""The ORM broker on PostgreSQL wakes an idle cluster by NOTIFY; elsewhere it is django-q2's."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from django_q.brokers import get_broker

from agents import broker as broker_module
from agents.broker import NotifyingORM

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queue():
    made = get_broker(f"test-{time.monotonic_ns()}")
    assert isinstance(made, NotifyingORM)
    yield made
    made.purge_queue()
    made._listener_close()


def test_a_task_queued_is_taken_once(queue):
    pk = queue.enqueue("payload")
    assert queue.dequeue() == [(pk, "payload")]
    assert not queue._claim()  # taken: its lock runs until the delivery's retry time
    queue.acknowledge(pk)
    assert queue.queue_size() == 0 and queue.lock_size() == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="NOTIFY is PostgreSQL's")
def test_an_idle_cluster_wakes_when_a_task_is_queued_not_when_its_wait_ends(queue, monkeypatch):
    monkeypatch.setattr(broker_module, "NOTIFY_WAIT", 120.0)  # it would look again only then
    queue._listener_get()  # listening before anything is queued, as an idle cluster is
    woke = threading.Event()

    def idle_cluster():
        queue.dequeue()  # nothing due: waits on the channel
        woke.set()

    waiting = threading.Thread(target=idle_cluster, daemon=True)
    waiting.start()
    time.sleep(0.2)
    assert not woke.is_set()
    other = get_broker(queue.list_key)  # the web process queues it
    pk = other.enqueue("payload")
    assert woke.wait(timeout=30), "the notice did not wake the waiting cluster"
    assert queue.dequeue() == [(pk, "payload")]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="NOTIFY is PostgreSQL's")
def test_a_broken_listen_connection_is_made_again(queue):
    queue._listener_get().close()
    assert queue.dequeue() is None  # waits (or sleeps), no error
    pk = queue.enqueue("payload")
    assert queue.dequeue() == [(pk, "payload")]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SKIP LOCKED is PostgreSQL's")
def test_two_clusters_taking_at_once_take_each_task_once(queue):
    """Invariant: a queued task is handed to one cluster per delivery, however they race."""
    from django.db import connections

    queued = {queue.enqueue(f"payload {n}") for n in range(60)}
    taken: list[list[int]] = [[], []]
    start = threading.Barrier(2)

    def cluster(mine: list[int]) -> None:
        other = get_broker(queue.list_key)
        try:
            start.wait()
            while batch := other._claim():
                mine.extend(pk for pk, _ in batch)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=cluster, args=(mine,)) for mine in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(taken[0] + taken[1]) == sorted(queued)
    assert not set(taken[0]) & set(taken[1])
