"""django-q2 entry points: take ids, call one service. Safe to deliver twice."""

from agents import services


def run_advance_task(run_id: int, step: int) -> None:
    services.run_advance(run_id=run_id, step=step)


def tool_call_prepare_task(tool_call_id: int) -> None:
    services.tool_call_prepare(tool_call_id=tool_call_id)


def tool_call_execute_task(tool_call_id: int) -> None:
    services.tool_call_execute(tool_call_id=tool_call_id)


def agents_sweep_task() -> str:
    report = services.agents_sweep()
    return (
        f"runs queued {report.runs_queued}, calls queued {report.calls_queued}, "
        f"interrupted {report.calls_interrupted}, expired {report.calls_expired}"
    )
