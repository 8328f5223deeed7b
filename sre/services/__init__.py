"""The SRE watchdog's services: every write and every state transition of sources and incidents."""

from sre.services.agent_requests import incident_agent_request
from sre.services.incidents import (
    incident_escalate,
    incident_ignore,
    incident_investigate,
    incident_make_branch,
    incident_open_pr,
    incident_propose_patch,
    incident_reinvestigate,
    incident_reopen,
    incident_resolve,
)
from sre.services.retention import sre_prune
from sre.services.scan import log_source_scan, log_sources_parse, log_sources_sync, sre_scan

__all__ = [
    "incident_agent_request",
    "incident_escalate",
    "incident_ignore",
    "incident_investigate",
    "incident_make_branch",
    "incident_open_pr",
    "incident_propose_patch",
    "incident_reinvestigate",
    "incident_reopen",
    "incident_resolve",
    "log_source_scan",
    "log_sources_parse",
    "log_sources_sync",
    "sre_prune",
    "sre_scan",
]
