"""The engine's services: every write and every state transition of runs and tool calls."""

from agents.services.decisions import (
    ProposalBlocked,
    proposal_approve,
    proposal_expire,
    proposal_reject,
    tool_call_can_decide,
)
from agents.services.dispatch import tool_call_execute, tool_call_prepare, turn_settle
from agents.services.errors import InvalidToolInput, InvalidTransition
from agents.services.proposals import ChecksUnavailable
from agents.services.runs import run_advance, run_cancel, run_continue, run_drive, run_start
from agents.services.sweep import agents_sweep

__all__ = [
    "ChecksUnavailable",
    "InvalidToolInput",
    "InvalidTransition",
    "ProposalBlocked",
    "agents_sweep",
    "proposal_approve",
    "proposal_expire",
    "proposal_reject",
    "run_advance",
    "run_continue",
    "run_drive",
    "run_cancel",
    "run_start",
    "tool_call_can_decide",
    "tool_call_execute",
    "tool_call_prepare",
    "turn_settle",
]
