"""The console's admin for the engine: runs, the audit log, and approvals."""

from agents.admin import audit, notices, runs

__all__ = ["audit", "notices", "runs"]
