"""The engine's services: every write and every state transition of runs and tool calls."""

from agents.services.decisions import (
    tool_call_approve,
    tool_call_can_decide,
    tool_call_expire,
    tool_call_reject,
)
from agents.services.dispatch import tool_call_execute, tool_call_prepare, turn_settle
from agents.services.errors import InvalidToolInput, InvalidTransition
from agents.services.runs import run_advance, run_cancel, run_start
from agents.services.sweep import agents_sweep

__all__ = [
    "InvalidToolInput",
    "InvalidTransition",
    "agents_sweep",
    "run_advance",
    "run_cancel",
    "run_start",
    "tool_call_approve",
    "tool_call_can_decide",
    "tool_call_execute",
    "tool_call_expire",
    "tool_call_prepare",
    "tool_call_reject",
    "turn_settle",
]
