"""Streaming exports of audit rows as CSV or JSON Lines, for any queryset and columns."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.db import connections
from django.db.models import F, Func, QuerySet, TextField
from django.db.models.functions import Cast
from django.http import StreamingHttpResponse
from django.utils import timezone

FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "jsonl": ("application/jsonl; charset=utf-8", "jsonl"),
}
# Rows fetched from the database at a time (a server-side cursor on PostgreSQL), and rows
# written to the response at a time: one write per row costs more than making the row.
CHUNK_SIZE = 2000
ROWS_PER_CHUNK = 1000

# A spreadsheet runs a cell that starts with one of these as a formula; audit rows hold text
# Claude wrote, so the CSV neutralises them. JSON Lines keeps every value exactly.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if timezone.is_aware(value) else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    return value


def _cell(value: Any) -> str:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def _text(value: str | None) -> str | None:
    return "'" + value if value and value.startswith(_FORMULA_STARTS) else value


def _datetime(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()


def _bool(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


def _json(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return _text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value


# How each kind of column becomes a cell; a kind not listed goes through _cell. Numbers, UUIDs
# and decimals need nothing: the csv module writes str() of them, and "" for None.
_CONVERTERS = {
    "CharField": _text,
    "TextField": _text,
    "EmailField": _text,
    "URLField": _text,
    "SlugField": _text,
    "DateTimeField": _datetime,
    "BooleanField": _bool,
    "JSONField": _json,
    "AutoField": None,
    "BigAutoField": None,
    "IntegerField": None,
    "BigIntegerField": None,
    "SmallIntegerField": None,
    "PositiveIntegerField": None,
    "PositiveBigIntegerField": None,
    "PositiveSmallIntegerField": None,
    "ForeignKey": None,
    "OneToOneField": None,
    "UUIDField": None,
    "DecimalField": None,
}


def _json_text(value: str | None) -> str | None:
    """A JSON column read as PostgreSQL's text of it: a string as its value, null as empty."""
    if value is None or value == "null":
        return None
    return _text(json.loads(value)) if value.startswith('"') else value


class _IsoUtc(Func):
    """A timestamp as `datetime.isoformat()` writes it in UTC, made by PostgreSQL.

    Microseconds are written only when there are some, as isoformat does.
    """

    output_field = TextField()
    template = (
        "(to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
        "CASE WHEN to_char(%(expressions)s, 'US') = '000000' THEN '' "
        "ELSE to_char(%(expressions)s, '.US') END || '+00:00')"
    )


def _field_of(model: Any, lookup: str) -> Any:
    """The model field a `values()` lookup such as "run__toolset" ends on, or None."""
    field = None
    for part in lookup.split("__"):
        if model is None:
            return None
        try:
            field = model._meta.get_field(part)
        except Exception:  # noqa: BLE001 — an annotation or transform: the generic cell
            return None
        model = field.related_model if field.is_relation else None
    return field


def csv_columns(
    model: Any, lookups: Iterable[str], *, vendor: str
) -> tuple[list[Any], list[Callable[[Any], Any] | None]]:
    """What to select for each column and how it becomes a cell (None: as it comes).

    On PostgreSQL the database writes JSON and timestamps as text, which it does much faster
    than Python decodes them and writes them again: the same cells (JSON exactly as stored,
    so `1.50` stays `1.50`), at more than twice the rows per second.
    """
    selects: list[Any] = []
    converters: list[Callable[[Any], Any] | None] = []
    for lookup in lookups:
        field = _field_of(model, lookup)
        kind = field.get_internal_type() if field is not None else ""
        if vendor == "postgresql" and kind == "JSONField":
            selects.append(Cast(lookup, TextField()))
            converters.append(_json_text)
        elif vendor == "postgresql" and kind == "DateTimeField":
            selects.append(_IsoUtc(lookup))
            converters.append(None)
        else:
            selects.append(lookup)
            converters.append(_CONVERTERS.get(kind, _cell))
    return selects, converters


def _csv_chunks(
    rows: Iterable[tuple], columns: list[str], converters: list[Callable[[Any], Any] | None]
) -> Iterator[str]:
    """Yield a header line, then the rows, ROWS_PER_CHUNK CSV lines at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    yield buffer.getvalue()
    convert = [(i, c) for i, c in enumerate(converters) if c is not None]
    batch: list[list[Any]] = []
    for row in rows:
        cells = list(row)
        for i, c in convert:
            cells[i] = c(cells[i])
        batch.append(cells)
        if len(batch) >= ROWS_PER_CHUNK:
            buffer.seek(0)
            buffer.truncate()
            writer.writerows(batch)
            batch.clear()
            yield buffer.getvalue()
    if batch:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(batch)
        yield buffer.getvalue()


def csv_lines(rows: Iterable[dict[str, Any]], columns: list[str]) -> Iterator[str]:
    """Yield a header line, then CSV lines of the rows (dicts), each value made a safe cell."""
    tuples = (tuple(row.get(c) for c in columns) for row in rows)
    yield from _csv_chunks(tuples, columns, [_cell] * len(columns))


def jsonl_lines(rows: Iterable[dict[str, Any]], columns: list[str]) -> Iterator[str]:
    """Yield one JSON object per row, one per line, ROWS_PER_CHUNK lines at a time."""
    batch = []
    for row in rows:
        record = {c: _plain(row.get(c)) for c in columns}
        batch.append(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        if len(batch) >= ROWS_PER_CHUNK:
            yield "".join(batch)
            batch.clear()
    if batch:
        yield "".join(batch)


def export_response(
    *, queryset: QuerySet, columns: dict[str, str], fmt: str, filename: str
) -> StreamingHttpResponse:
    """Stream the queryset's rows as a download, read in chunks rather than all at once."""
    # `columns` maps each column's name in the file to its lookup: "toolset": "run__toolset".
    content_type, extension = FORMATS[fmt]
    names = list(columns)
    if fmt == "csv":
        vendor = connections[queryset.db].vendor
        selects, converters = csv_columns(queryset.model, columns.values(), vendor=vendor)
        rows = queryset.values_list(*selects).iterator(chunk_size=CHUNK_SIZE)
        lines = _csv_chunks(rows, names, converters)
    else:
        plain = [name for name, lookup in columns.items() if name == lookup]
        aliased = {name: F(lookup) for name, lookup in columns.items() if name != lookup}
        rows = queryset.values(*plain, **aliased).iterator(chunk_size=CHUNK_SIZE)
        lines = jsonl_lines(rows, names)
    response = StreamingHttpResponse(lines, content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="{filename}-{stamp}.{extension}"'
    response["Cache-Control"] = "no-store"
    return response
