"""django-q2 entry points: take ids, call one service. Safe to deliver twice."""

from agents import services


def run_advance_task(run_id: int, step: int) -> None:
    services.run_drive(run_id=run_id, step=step)


def tool_call_prepare_task(tool_call_id: int) -> None:
    services.tool_call_prepare(tool_call_id=tool_call_id)


def tool_call_execute_task(tool_call_id: int) -> None:
    services.tool_call_execute(tool_call_id=tool_call_id)
    services.run_continue(tool_call_id=tool_call_id)


def proposal_notices_task(tool_call_id: int) -> str:
    from agents.notices import proposal_notices_sync

    return proposal_notices_sync(tool_call_id=tool_call_id)


def slack_decision_task(interaction_id: int) -> str:
    from agents.interactions import slack_decision_handle

    return slack_decision_handle(interaction_id=interaction_id)


def agents_sweep_task() -> str:
    report = services.agents_sweep()
    return (
        f"runs queued {report.runs_queued}, calls queued {report.calls_queued}, "
        f"interrupted {report.calls_interrupted}, expired {report.calls_expired}"
    )


def batches_work_task() -> str:
    from agents.services.batches import batches_work

    report = batches_work()
    return (
        f"submitted {report.submitted}, recorded {report.recorded}, "
        f"released {report.released}, dropped {report.dropped}"
    )


def batch_reply_dispatch_task(run_id: int) -> None:
    from agents.services.batches import batch_reply_dispatch

    batch_reply_dispatch(run_id=run_id)
