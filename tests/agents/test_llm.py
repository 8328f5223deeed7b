"""Model access: the default model, the replay backend, prompts."""

from __future__ import annotations

import typing

import pytest
from anthropic.types.model_param import ModelParam

from agents import llm
from agents.models import AgentRun, ToolCall
from agents.prompts import UnknownPrompt, prompt_get
from agents.services import proposal_approve, proposal_reject, run_start
from tests.agents.helpers import assert_status
from tests.factories.users import user_create
from tests.toolbox.models import Shipment

pytestmark = pytest.mark.django_db


def test_default_model_is_the_newest_sonnet_the_sdk_lists():
    listed = typing.get_args(typing.get_args(ModelParam)[0])
    model = llm.default_model()
    assert model in listed and model.startswith("claude-sonnet-")
    versions = [
        tuple(int(p) for p in name.removeprefix("claude-sonnet-").split("-"))
        for name in listed
        if name.startswith("claude-sonnet-") and len(name.split("-")[-1]) < 8
    ]
    assert tuple(int(p) for p in model.removeprefix("claude-sonnet-").split("-")) == max(versions)


def test_backend_defaults_follow_the_key(settings):
    settings.ANTHROPIC_MODEL = "claude-opus-4-8"
    assert llm.configured_model() == "claude-opus-4-8"
    settings.AGENTS_LLM_BACKEND = "gpt"
    with pytest.raises(llm.ModelError):
        llm.configured_backend()


def start_replay(worker, text):
    with worker.committing():
        return run_start(toolset="toolbox", user_message=text)


def test_replay_backend_runs_a_recorded_conversation_through_the_same_loop(
    worker, widgets, settings
):
    settings.AGENTS_LLM_BACKEND = "replay"
    first = start_replay(worker, "Please ship two gears to 1 Main St")
    second = start_replay(worker, "Ship 2 gears again please")
    worker.drain()
    approver = user_create(perms=["toolbox.approve_shipment"])
    for run in (first, second):
        run = assert_status(run, AgentRun.Status.AWAITING_APPROVAL)
        assert run.backend == "replay"
        ship = run.tool_calls.get(tool_name="ship_widget")
        assert ship.input_proposed == {"name": "gear", "quantity": 2, "address": "1 Main St"}
        with worker.committing():
            proposal_approve(tool_call_id=ship.pk, user=approver)
    worker.drain()
    for run in (first, second):
        run = assert_status(run, AgentRun.Status.COMPLETED)
        assert run.model_calls.filter(request_id__startswith="replay-ship-").count() == 3
    # Recorded tool_use ids are made unique per run, so the audit log keeps both.
    assert ToolCall.objects.filter(tool_name="ship_widget").count() == 2
    assert Shipment.objects.count() == 2


def test_replay_answers_truthfully_when_the_call_was_rejected(worker, widgets, settings):
    settings.AGENTS_LLM_BACKEND = "replay"
    run = start_replay(worker, "Please ship two gears to 1 Main St")
    worker.drain()
    ship = ToolCall.objects.get(run=run, tool_name="ship_widget")
    reviewer = user_create(perms=["toolbox.approve_shipment"])
    with worker.committing():
        proposal_reject(tool_call_id=ship.pk, user=reviewer, reason="Out of policy")
    worker.drain()
    run = assert_status(run, AgentRun.Status.COMPLETED)
    assert (
        run.messages[-1]["content"][0]["text"]
        == "The shipment was not approved, so nothing was sent."
    )


def test_replay_without_a_matching_recording_fails_the_run_clearly(worker, widgets, settings):
    settings.AGENTS_LLM_BACKEND = "replay"
    run = start_replay(worker, "What is the weather?")
    worker.drain()
    run = assert_status(run, AgentRun.Status.FAILED)
    assert "No recorded reply matches" in run.status_reason


def test_a_run_stores_the_prompt_version_and_text_it_used(fake_anthropic, worker, widgets):
    fake_anthropic.push_text("ok")
    with worker.committing():
        run = run_start(
            toolset="toolbox", user_message="hi", prompt_context={"company": "Acme & Sons"}
        )
    worker.drain()
    run.refresh_from_db()
    assert (run.prompt_name, run.prompt_version) == ("toolbox", 2)
    assert "for Acme & Sons." in run.system  # plain text: no HTML escaping
    assert run.system.startswith("<role>") and "<directives>" in run.system
    assert fake_anthropic.message_requests[0].body["system"][0]["text"] == run.system
    assert prompt_get(name="toolbox", version=1).render().count("escalate") == 0
    with pytest.raises(UnknownPrompt):
        prompt_get(name="toolbox", version=9)


def test_the_cache_breakpoint_follows_the_conversation(fake_anthropic, worker, widgets):
    """Each call marks its newest turn, so the next reads everything before it from the cache."""
    from agents.models import AgentRun
    from tests.agents.helpers import start

    fake_anthropic.push_tool_use(("lookup_widget", {"name": "gear"}))
    fake_anthropic.push_tool_use(("lookup_widget", {"name": "sprocket"}))
    fake_anthropic.push_text("Done.")
    run = start(worker, text="How many gears and sprockets?")
    worker.drain()
    bodies = [r.body for r in fake_anthropic.message_requests]
    for body in bodies:
        marked = [i for i, m in enumerate(body["messages"]) if "cache_control" in str(m)]
        assert marked == [len(body["messages"]) - 1]  # only the newest turn
    run.refresh_from_db()
    # The stored conversation carries no breakpoint; what is sent does.
    assert "cache_control" not in str(run.messages)
    calls = list(run.model_calls.order_by("step"))
    assert (
        calls[0].cache_write_tokens > 0
    )  # its first message was new (system and tools may not be)
    # Later calls read the whole earlier conversation, not only system and tools.
    assert calls[2].cache_read_tokens > calls[1].cache_read_tokens > calls[0].cache_read_tokens
    assert run.cache_read_fraction > 0.4
    assert AgentRun.objects.get(pk=run.pk).cache_read_fraction == run.cache_read_fraction


def test_the_run_page_shows_how_much_of_the_input_came_from_the_cache(
    fake_anthropic, worker, widgets, client
):
    from django.urls import reverse

    from tests.agents.helpers import start
    from tests.factories.users import user_create

    fake_anthropic.push_tool_use(("lookup_widget", {"name": "gear"}))
    fake_anthropic.push_text("Done.")
    run = start(worker, text="How many gears?")
    worker.drain()
    run.refresh_from_db()
    client.force_login(user_create(perms=["agents.view_agentrun"]))
    page = client.get(reverse("admin:agents_agentrun_change", args=[run.pk])).content.decode()
    assert f"{round(run.cache_read_fraction * 100)}% of the input read from the cache" in page
