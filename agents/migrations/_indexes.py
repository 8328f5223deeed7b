"""Indexes for the console's lists, shared by the apps' index migrations.

- Search: a trigram GIN index (pg_trgm) on UPPER(column::text) of each searched column, the very
  expression Django's `icontains` compares, so `LIKE '%term%'` is an index scan and conditions
  on several columns combine (BitmapOr) instead of reading the whole table. PostgreSQL only:
  SQLite has no GIN, and the embedded default is small.
- Filters: a B-tree index on each filtered column that had none, on both databases.

They are built CONCURRENTLY on PostgreSQL (the migrations are not atomic), so a deploy does not
hold up the writes to a table of a million rows while they build. They are written as SQL
rather than `GinIndex(OpClass(...))`: OpClass inside an index expression needs
django.contrib.postgres in INSTALLED_APPS. The models do not declare them, so the model state is
unchanged and `makemigrations` has nothing to add (a GIN index in `Meta.indexes` would also be
made on SQLite whenever a later migration rebuilds the table there).
"""

from __future__ import annotations


def _names(table: str, column: str, suffix: str) -> str:
    return f"{table}_{column}"[: 30 - len(suffix) - 1] + "_" + suffix


def indexes_wanted(
    *,
    searched: dict[str, tuple[str, ...]],
    filtered: dict[str, tuple[str | tuple[str, ...], ...]],
    postgres: bool,
) -> list[tuple[str, tuple[str, ...], str, str]]:
    """(table, columns, "trgm" or "idx", index name) of each index these tables get here."""
    wanted = [
        (table, column, "trgm") for table, cols in searched.items() for column in cols if postgres
    ] + [(table, column, "idx") for table, cols in filtered.items() for column in cols]
    wanted = [(t, c if isinstance(c, tuple) else (c,), kind) for t, c, kind in wanted]
    named = [(t, c, kind, _names(t, "_".join(c), kind)) for t, c, kind in wanted]
    names = [name for *_, name in named]
    assert len(set(names)) == len(names), names
    return named


def indexes_apply(
    schema_editor,
    *,
    searched: dict[str, tuple[str, ...]],
    filtered: dict[str, tuple[str | tuple[str, ...], ...]],
    remove: bool = False,
) -> None:
    """Create (or drop) the trigram and B-tree indexes of these tables' columns.

    A filtered entry that is a tuple of columns is one index on them all, in that order.
    """
    postgres = schema_editor.connection.vendor == "postgresql"
    quote = schema_editor.quote_name
    concurrently = " CONCURRENTLY" if postgres else ""
    for table, columns, kind, name in indexes_wanted(
        searched=searched, filtered=filtered, postgres=postgres
    ):
        if remove:
            schema_editor.execute(f"DROP INDEX{concurrently} IF EXISTS {quote(name)}")
        elif kind == "trgm":
            schema_editor.execute(
                f"CREATE INDEX{concurrently} IF NOT EXISTS {quote(name)} ON {quote(table)} "
                f"USING gin ((UPPER({quote(columns[0])}::text)) gin_trgm_ops)"
            )
        else:
            schema_editor.execute(
                f"CREATE INDEX{concurrently} IF NOT EXISTS {quote(name)} "
                f"ON {quote(table)} ({', '.join(quote(c) for c in columns)})"
            )
