"""Streaming exports of audit rows as CSV or JSON Lines, for any queryset and columns."""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.db.models import F, QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "jsonl": ("application/jsonl; charset=utf-8", "jsonl"),
}
CHUNK_SIZE = 500

# A spreadsheet runs a cell that starts with one of these as a formula; audit rows hold text
# Claude wrote, so the CSV neutralises them. JSON Lines keeps every value exactly.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file-like object whose write() returns the line, for csv.writer to stream through."""

    def write(self, value: str) -> str:
        return value


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


def csv_lines(rows: Iterable[dict[str, Any]], columns: list[str]) -> Iterator[str]:
    """Yield a header line, then one CSV line per row."""
    writer = csv.writer(_Echo())
    yield writer.writerow(columns)
    for row in rows:
        yield writer.writerow([_cell(row.get(c)) for c in columns])


def jsonl_lines(rows: Iterable[dict[str, Any]], columns: list[str]) -> Iterator[str]:
    """Yield one JSON object per row, one per line."""
    for row in rows:
        record = {c: _plain(row.get(c)) for c in columns}
        yield json.dumps(record, ensure_ascii=False, default=str) + "\n"


def export_response(
    *, queryset: QuerySet, columns: dict[str, str], fmt: str, filename: str
) -> StreamingHttpResponse:
    """Stream the queryset's rows as a download, read in chunks rather than all at once."""
    # `columns` maps each column's name in the file to its lookup: "toolset": "run__toolset".
    content_type, extension = FORMATS[fmt]
    plain = [name for name, lookup in columns.items() if name == lookup]
    aliased = {name: F(lookup) for name, lookup in columns.items() if name != lookup}
    rows = queryset.values(*plain, **aliased).iterator(chunk_size=CHUNK_SIZE)
    names = list(columns)
    lines = csv_lines(rows, names) if fmt == "csv" else jsonl_lines(rows, names)
    response = StreamingHttpResponse(lines, content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="{filename}-{stamp}.{extension}"'
    response["Cache-Control"] = "no-store"
    return response
