"""The console's admin for the engine: runs, the audit log, approvals, and message batches."""

from agents.admin import audit, batches, notices, runs

__all__ = ["audit", "batches", "notices", "runs"]
