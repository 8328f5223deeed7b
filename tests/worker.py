"""A worker for tests: delivers the tasks queued in django-q2's ORM broker, one at a time.

Services queue tasks with `transaction.on_commit`; inside a test's transaction those callbacks
are captured and run when the block exits, as they would after a real commit.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.test import TestCase
from django.utils.module_loading import import_string
from django_q.models import OrmQ
from django_q.signing import SignedPackage


@dataclass(frozen=True)
class Delivery:
    func: str
    args: tuple[Any, ...]


class Worker:
    @contextmanager
    def committing(self):
        """Run the block as if in its own transaction: on_commit callbacks run at its end."""
        with TestCase.captureOnCommitCallbacks(execute=True):
            yield

    def queued(self) -> list[Delivery]:
        return [self._unpack(row) for row in OrmQ.objects.order_by("id")]

    def take(self) -> Delivery | None:
        """Remove the oldest queued task and return it without running it."""
        row = OrmQ.objects.order_by("id").first()
        if row is None:
            return None
        delivery = self._unpack(row)
        OrmQ.objects.filter(pk=row.pk).delete()
        return delivery

    def run(self, delivery: Delivery) -> Any:
        with self.committing():
            return import_string(delivery.func)(*delivery.args)

    def drain(self, limit: int = 100) -> list[Delivery]:
        """Deliver queued tasks in order, with the ones they queue, until none is left."""
        done = []
        for _ in range(limit):
            delivery = self.take()
            if delivery is None:
                return done
            self.run(delivery)
            done.append(delivery)
        raise AssertionError(f"The queue did not drain in {limit} tasks: {self.queued()[:5]}")

    @staticmethod
    def _unpack(row: OrmQ) -> Delivery:
        task = SignedPackage.loads(row.payload)
        return Delivery(func=task["func"], args=tuple(task["args"]))
