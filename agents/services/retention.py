"""Retention: export the model calls and audit events older than N days, then prune them.

An audit log that never shrinks is a disk that fills; one that anyone can shrink is no audit
log. So: only a person with `agents.prune_auditevent`, only rows older than
AGENTS_AUDIT_RETENTION_DAYS (the database itself refuses anything younger than a day), the rows
written to a gzipped JSON Lines file first (fsynced, hashed), the delete in the same transaction
and checked against the export, and the prune itself recorded as an audit event that names the
file and its SHA-256. Tool calls, approvals and runs are kept: the decisions outlive the chatter.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.utils import timezone

from agents.audit import audit_record
from agents.exports import _plain
from agents.guards import PRUNABLE_TABLES, sqlite_install
from agents.models import AuditEvent, ModelCall

PERMISSION = "agents.prune_auditevent"
MODELS = {"agents_modelcall": ModelCall, "agents_auditevent": AuditEvent}


class RetentionRefused(Exception):
    """The prune was not allowed or did not match its export; nothing was deleted."""


@dataclass(frozen=True)
class PruneResult:
    cutoff: Any
    counts: dict[str, int]
    path: Path | None
    sha256: str


def audit_prune(*, user: Any, older_than_days: int, dry_run: bool = False) -> PruneResult:
    """Export, then delete, the model calls and audit events older than `older_than_days`."""
    if not getattr(user, "is_active", False) or not user.has_perm(PERMISSION):
        raise PermissionDenied(f"Pruning the audit log needs the {PERMISSION} permission.")
    minimum = settings.AGENTS_AUDIT_RETENTION_DAYS
    if older_than_days < minimum:
        raise RetentionRefused(
            f"Rows younger than {minimum} days are kept (AGENTS_AUDIT_RETENTION_DAYS); "
            f"{older_than_days} is too few."
        )
    cutoff = timezone.now() - timedelta(days=older_than_days)
    if dry_run:
        counts = {t: MODELS[t].objects.filter(created_at__lt=cutoff).count() for t in MODELS}
        return PruneResult(cutoff=cutoff, counts=counts, path=None, sha256="")
    directory = Path(settings.AGENTS_AUDIT_EXPORT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"audit-before-{cutoff:%Y%m%dT%H%M%SZ}.jsonl.gz"
    with transaction.atomic():
        counts, sha256 = _export(path, cutoff)
        try:
            deleted = _delete(cutoff)
            if deleted != counts:
                raise RetentionRefused(
                    f"The delete ({deleted}) did not match the export ({counts}); nothing pruned."
                )
            audit_record(
                kind="audit.pruned",
                actor=user,
                message=(
                    f"Pruned {counts['agents_auditevent']} audit events and "
                    f"{counts['agents_modelcall']} model calls older than {older_than_days} days "
                    f"after exporting them to {path.name}."
                ),
                data={
                    "cutoff": cutoff.isoformat(),
                    "counts": counts,
                    "file": str(path),
                    "sha256": sha256,
                },
            )
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    return PruneResult(cutoff=cutoff, counts=counts, path=path, sha256=sha256)


def _export(path: Path, cutoff) -> tuple[dict[str, int], str]:
    counts = dict.fromkeys(MODELS, 0)
    with gzip.open(path, "wt", encoding="utf-8") as out:
        for table, model in MODELS.items():
            rows = model.objects.filter(created_at__lt=cutoff).order_by("id").values()
            for row in rows.iterator(chunk_size=2000):
                record = {"table": table, **{k: _plain(v) for k, v in row.items()}}
                out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
                counts[table] += 1
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
        sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
    return counts, sha256


def _delete(cutoff) -> dict[str, int]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT model_calls, audit_events FROM agents_audit_prune(%s)", [cutoff])
            calls, events = cursor.fetchone()
            return {"agents_modelcall": calls, "agents_auditevent": events}
        # SQLite has no roles: the delete guards are dropped and re-made inside the transaction.
        counts = {}
        for table in PRUNABLE_TABLES:
            cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
            cursor.execute(f"DELETE FROM {table} WHERE created_at < %s", [cutoff])
            counts[table] = cursor.rowcount
        for statement in sqlite_install():
            cursor.execute(statement)
        return counts
