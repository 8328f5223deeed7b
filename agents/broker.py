"""django-q2's ORM broker, woken by PostgreSQL's NOTIFY instead of looking every few ms.

The ORM broker (the default without Redis) finds new tasks by asking the queue table, and an
idle cluster asks every `Q_POLL` seconds: a run's first step waits half of that on average, and
an idle cluster makes a query every poll. On PostgreSQL each task queued also sends a NOTIFY on
the queue's channel, in the statement that inserts it (delivered when its transaction commits),
and an idle cluster waits on LISTEN: it wakes as the task is committed, and looks by itself only
every `NOTIFY_WAIT` seconds (a task whose delivery timed out is due again without a notice). It
takes its tasks in one statement too, skipping rows another cluster is taking. On SQLite it is
django-q2's broker as it is: ask, then sleep `Q_POLL`.

Nothing depends on the notice arriving: the queue table is the truth, and a lost notice costs
at most one wait.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time

import psycopg
from django.db import connections
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ

logger = logging.getLogger(__name__)

# The longest an idle cluster on PostgreSQL waits before it looks at the table by itself.
NOTIFY_WAIT = 1.0
_TABLE = OrmQ._meta.db_table


def channel_of(list_key: str) -> str:
    """The NOTIFY channel of a queue: a plain identifier, whatever the cluster's name is."""
    return "django_q_" + hashlib.sha1(list_key.encode()).hexdigest()[:16]


class NotifyingORM(ORM):
    def __init__(self, list_key: str = "") -> None:
        super().__init__(list_key=list_key)
        self._listener: psycopg.Connection | None = None
        self._listener_pid = 0

    @staticmethod
    def _on_postgresql() -> bool:
        return connections[Conf.ORM].vendor == "postgresql"

    def enqueue(self, task) -> int:
        if not self._on_postgresql():
            return super().enqueue(task)
        # The row and its notice in one statement (one round trip, as the task is queued).
        self.get_connection()
        with connections[Conf.ORM].cursor() as cursor:
            cursor.execute(
                f'WITH task AS (INSERT INTO {_TABLE} ("key", "payload", "lock") VALUES (%s, %s, %s) '
                'RETURNING "id") SELECT "id", pg_notify(%s, \'\') FROM task',
                [self._key, task, timezone.now(), channel_of(self._key)],
            )
            return cursor.fetchone()[0]

    @property
    def _key(self) -> str:
        return self.list_key or Conf.CLUSTER_NAME

    def dequeue(self):
        tasks = self._claim()
        if tasks:
            return tasks
        if not self._on_postgresql():
            time.sleep(Conf.POLL)
            return None
        try:
            self._wait(NOTIFY_WAIT)
        except psycopg.Error:
            logger.warning("the queue's LISTEN connection failed; looking again", exc_info=True)
            self._listener_close()
            time.sleep(Conf.POLL)
        return None

    def _claim(self) -> list[tuple[int, str]]:
        """Take the due tasks, as django-q2's ORM broker does (another cluster may be faster).

        On PostgreSQL in one statement: the due rows no other cluster is taking (SKIP LOCKED),
        oldest first, locked until `retry` and returned.
        """
        if self._on_postgresql():
            self.get_connection()  # closes a connection gone stale, as django-q2's broker does
            now = timezone.now()
            with connections[Conf.ORM].cursor() as cursor:
                cursor.execute(
                    f'UPDATE {_TABLE} SET "lock" = %s WHERE "id" IN (SELECT "id" FROM {_TABLE} '
                    'WHERE "key" = %s AND "lock" < %s ORDER BY "id" LIMIT %s FOR UPDATE SKIP LOCKED) '
                    'RETURNING "id", "payload"',
                    [self.timeout(None), self._key, now, Conf.BULK],
                )
                return sorted(cursor.fetchall())
        queued = OrmQ.objects.using(Conf.ORM)
        due = list(
            self.get_connection().filter(key=self._key, lock__lt=timezone.now())[: Conf.BULK]
        )
        taken = []
        for task in due:
            if queued.filter(id=task.id, lock=task.lock).update(lock=self.timeout(task)):
                taken.append((task.pk, task.payload))
        return taken

    def _wait(self, seconds: float) -> None:
        """Wait for a notice on the queue's channel, or `seconds`."""
        listener = self._listener_get()
        for _ in listener.notifies(timeout=seconds, stop_after=1):
            break

    def _listener_get(self) -> psycopg.Connection:
        # A cluster forks its processes: each listens on a connection of its own.
        if self._listener is None or self._listener_pid != os.getpid() or self._listener.closed:
            params = connections[Conf.ORM].get_connection_params()
            listener = psycopg.connect(**params, autocommit=True)
            listener.execute(
                psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel_of(self._key)))
            )
            self._listener, self._listener_pid = listener, os.getpid()
        return self._listener

    def _listener_close(self) -> None:
        if self._listener is not None and self._listener_pid == os.getpid():
            with contextlib.suppress(psycopg.Error):
                self._listener.close()
        self._listener = None
