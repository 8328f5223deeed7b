"""The console's indexes are still there after every migration, on this database.

The index migrations (agents 0008/0009, support 0005, sre 0005) write their indexes as SQL and
the models do not declare them, so a later migration that rebuilds one of those tables on
SQLite (Django copies a table to alter it there) would drop them without a word. This test
reads the migrated test database: it fails as soon as a migration loses one.
"""

from __future__ import annotations

import importlib

import pytest
from django.db import connection

from agents.migrations._indexes import indexes_wanted

pytestmark = pytest.mark.django_db

MIGRATIONS = (
    "agents.migrations.0008_console_indexes",
    "agents.migrations.0009_console_status_index",
    "support.migrations.0005_console_indexes",
    "sre.migrations.0005_console_indexes",
)


def wanted() -> list[tuple[str, tuple[str, ...], str, str]]:
    every = []
    for name in MIGRATIONS:
        module = importlib.import_module(name)
        every += indexes_wanted(
            searched=getattr(module, "SEARCHED", {}),
            filtered=getattr(module, "FILTERED", {}),
            postgres=connection.vendor == "postgresql",
        )
    return every


def test_every_console_index_made_by_the_migrations_is_still_there():
    expected = wanted()
    assert len(expected) >= 10  # the migrations were read, not an empty list
    missing = []
    with connection.cursor() as cursor:
        for table, columns, kind, name in expected:
            found = connection.introspection.get_constraints(cursor, table).get(name)
            if found is None or (kind == "idx" and tuple(found["columns"]) != columns):
                missing.append((table, name))
    assert not missing, f"indexes lost by a later migration: {missing}"
