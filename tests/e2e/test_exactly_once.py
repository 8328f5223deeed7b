"""Each external effect happens once though the worker is killed between the effect and its record.

The fake acts on the request and holds its answer; the worker waiting for it is SIGKILLed; the
answer is dropped. After a restart (and the periodic sweep, run here at once) the retry must
find the earlier effect — by the idempotency key, the remote ref, the pull request for the
head branch, the Slack message's metadata — and not repeat it; mail, which cannot be looked
up, is sent at most once and the call says it may not have been sent.
"""

from __future__ import annotations

import pytest

from tests.e2e.world import PushHold

pytestmark = pytest.mark.e2e

SHIP = {"name": "gear", "quantity": 2, "address": "1 Main St"}


def ship_proposed(world, fake_anthropic) -> str:
    [ship] = fake_anthropic.push_tool_use(("ship_widget", SHIP), text="<scratchpad>ok</scratchpad>")
    world.site.python(
        "from tests.toolbox.models import Widget\n"
        "from agents.services import run_start\n"
        "Widget.objects.get_or_create(name='gear', defaults={'stock': 1000})\n"
        "run_start(toolset='toolbox', user_message='Ship two gears to 1 Main St.')"
    )
    return ship


def test_a_refund_whose_answer_was_lost_with_the_worker_is_made_once(world, fake_anthropic):
    site = world.site
    bob = world.customer_writes(fake_anthropic)
    worker = site.worker_start()
    world.wait_call(bob.tool_use, "awaiting_approval")

    hold = world.stripe.fail_next("hold", path="/v1/refunds")
    world.approve(bob.tool_use, "support.approve_refund")
    hold.wait_arrived()  # Stripe has made the refund; the worker waits for the answer
    site.worker_kill(worker)
    hold.release()
    assert len(world.stripe.refunds_on(bob.charge)) == 1
    assert world.call(bob.tool_use)[1] == "executing"  # never recorded

    fake_anthropic.push_text("Your refund is on its way.")
    site.sweep()
    site.worker_start()
    world.wait_run(world.run_of(bob.tool_use), "completed")

    [refund] = world.stripe.refunds_on(bob.charge)
    posts = [p for p in world.stripe.refund_posts if p.form.get("charge") == bob.charge]
    assert len(posts) == 2  # the lost one and the retry, with one key: Stripe replayed it
    assert len({p.headers["idempotency-key"] for p in posts}) == 1
    assert site.query(
        f"SELECT provider_refund_id FROM support_refund WHERE charge_id = '{bob.charge}'"
    ) == [(refund["id"],)]
    assert world.call(bob.tool_use)[1] == "succeeded"


def test_a_branch_pushed_as_the_worker_died_is_pushed_once(world, fake_anthropic):
    site = world.site
    pr_use = world.incident_opens(fake_anthropic)
    worker = site.worker_start()
    world.wait_call(pr_use, "awaiting_approval")

    hold = PushHold(world.base)
    world.approve(pr_use, "sre.approve_patch")
    hold.wait_arrived()  # the remote has the branch; git push has not returned
    site.worker_kill(worker)
    hold.release()
    branch, commit, _, _ = world.patch_of(pr_use)
    assert commit == "" and world.pushes(branch) == 1

    fake_anthropic.push_text("The pull request is open.")
    site.sweep()
    site.worker_start()
    world.wait_run(world.run_of(pr_use), "completed")

    branch, commit, pr_number, _ = world.patch_of(pr_use)
    assert world.pushes(branch) == 1
    assert world.remote_ref(branch) == commit
    assert [p["number"] for p in world.github.pulls if p["head"] == branch] == [pr_number]


def test_a_pull_request_opened_as_the_worker_died_is_opened_once(world, fake_anthropic):
    site = world.site
    pr_use = world.incident_opens(fake_anthropic)
    worker = site.worker_start()
    world.wait_call(pr_use, "awaiting_approval")

    hold = world.github.hold_next()
    world.approve(pr_use, "sre.approve_patch")
    hold.wait_arrived()  # GitHub has the pull request; the worker waits for the answer
    site.worker_kill(worker)
    hold.release()
    branch, _, pr_number, _ = world.patch_of(pr_use)
    assert pr_number is None

    fake_anthropic.push_text("The pull request is open.")
    site.sweep()
    site.worker_start()
    world.wait_run(world.run_of(pr_use), "completed")

    branch, _, pr_number, _ = world.patch_of(pr_use)
    [pull] = [p for p in world.github.pulls if p["head"] == branch]
    assert pull["number"] == pr_number
    assert [r.body["head"] for r in world.github.pull_posts].count(branch) == 1
    assert world.pushes(branch) == 1


def test_a_slack_notice_posted_as_the_worker_died_is_posted_once(world, fake_anthropic):
    site = world.site
    hold = world.slack.hold_next("chat.postMessage")
    ship = ship_proposed(world, fake_anthropic)
    worker = site.worker_start()
    hold.wait_arrived()  # the message is in the channel; the worker waits for its ts
    site.worker_kill(worker)
    hold.release()
    call_id = world.call(ship)[0]
    key = f"proposal:{call_id}:slack"
    assert world.notice(key)[0] == "posting" and len(world.slack_posts(key)) == 1

    fake_anthropic.push_text("Two gears are on their way.")
    site.worker_start()
    world.approve(ship, "toolbox.approve_shipment")  # its notice is brought up to date
    world.wait_run(world.run_of(ship), "completed")
    site.wait_for(
        f"SELECT shown FROM agents_notice WHERE key = '{key}'", lambda s: s.startswith("done")
    )

    [message] = world.slack_posts(key)
    assert world.slack_post_requests(key) == 1  # the retry looked it up by its key
    assert world.notice(key)[0] == "posted"
    [(ts, text)] = site.query(f"SELECT ts, text FROM agents_notice WHERE key = '{key}'")
    assert ts == message["ts"]  # found by its key and recorded
    # What the found message showed was unknown, so it was brought up to date.
    assert message["text"] == text and " — Done · " in text


def test_a_slack_update_sent_as_the_worker_died_leaves_one_message_showing_the_end(
    world, fake_anthropic
):
    site = world.site
    ship = ship_proposed(world, fake_anthropic)
    worker = site.worker_start()
    world.wait_call(ship, "awaiting_approval")
    key = f"proposal:{world.call(ship)[0]}:slack"
    site.wait_for(f"SELECT state FROM agents_notice WHERE key = '{key}'", "posted")

    hold = world.slack.hold_next("chat.update")
    world.approve(ship, "toolbox.approve_shipment")
    hold.wait_arrived()  # the message is edited; the worker waits for the answer
    site.worker_kill(worker)
    hold.release()

    fake_anthropic.push_text("Two gears are on their way.")
    site.sweep()
    site.worker_start()
    world.wait_run(world.run_of(ship), "completed")
    # The held update may have been the last one (the call ran while it was held): the sweep
    # finds the message showing an older state and brings it up to date.
    site.sweep()
    site.wait_for(
        f"SELECT shown FROM agents_notice WHERE key = '{key}'", lambda s: s.startswith("done")
    )

    [message] = world.slack_posts(key)  # an update edits; it never posts a second message
    assert world.slack_post_requests(key) == 1
    [(text,)] = site.query(f"SELECT text FROM agents_notice WHERE key = '{key}'")
    assert message["text"] == text and " — Done · " in text


def reply_proposed(world, fake_anthropic) -> tuple[str, str]:
    """A customer writes and Claude answers at once with a reply, which waits for a person."""
    [reply] = fake_anthropic.push_tool_use(
        ("reply_to_customer", {"body": "Hi Bob, sorry about the widget. A colleague will help."})
    )
    email = world.customer_writes_only()
    return reply, email


def test_a_reply_handed_to_the_mail_server_as_the_worker_died_is_not_sent_again(
    world, fake_anthropic
):
    site = world.site
    reply, email = reply_proposed(world, fake_anthropic)
    worker = site.worker_start()
    world.wait_call(reply, "awaiting_approval")

    hold = world.smtp.fail_next("hold")
    world.approve(reply, "support.send_reply")
    hold.wait_arrived()  # the server has the mail; the worker waits for its 250
    site.worker_kill(worker)
    hold.release()
    assert len(world.smtp.mails_to(email)) == 1

    fake_anthropic.push_text("A colleague will check whether Bob got it.")
    site.sweep()
    site.worker_start()
    world.wait_run(world.run_of(reply), "completed")

    assert len(world.smtp.mails_to(email)) == 1  # at most once: SMTP has no idempotency key
    _, status, result = world.call(reply)
    assert status == "failed" and "may or may not have reached the customer" in result
    assert site.query(
        "SELECT d.status FROM support_replydraft d JOIN agents_toolcall c ON c.id = d.tool_call_id "
        f"WHERE c.tool_use_id = '{reply}'"
    ) == [("sending",)]


def test_a_reply_whose_smtp_answer_was_dropped_is_not_sent_again(world, fake_anthropic):
    site = world.site
    reply, email = reply_proposed(world, fake_anthropic)
    site.worker_start()
    world.wait_call(reply, "awaiting_approval")

    world.smtp.fail_next("drop")  # accepted, then the connection dies before the answer
    fake_anthropic.push_text("A colleague will check whether Bob got it.")
    world.approve(reply, "support.send_reply")
    world.wait_run(world.run_of(reply), "completed")

    assert len(world.smtp.mails_to(email)) == 1
    _, status, result = world.call(reply)
    assert status == "failed" and "may not have been sent" in result
    assert site.query(
        "SELECT kind FROM agents_auditevent WHERE kind = 'reply.send_unknown' "
        f"AND subject_id = '{world.ticket_of(email)}'"
    ) == [("reply.send_unknown",)]


def test_a_notice_mail_interrupted_by_a_kill_is_sent_at_most_once_and_says_so(
    world, fake_anthropic
):
    # Without Slack the approvers are mailed; a mail server has nothing to look a mail up by.
    mailing = world.site.with_env(SLACK_BOT_TOKEN="", AGENTS_NOTICE_EMAIL="true")
    address = "shipping-approver@example.com"
    mailing.python(
        "from django.contrib.auth.models import Permission, User\n"
        "u, _ = User.objects.get_or_create(username='notice-approver', "
        f"defaults={{'is_staff': True, 'email': '{address}'}})\n"
        "u.user_permissions.add(Permission.objects.get(codename='approve_shipment'))"
    )
    hold = world.smtp.fail_next("hold")
    ship = ship_proposed(world, fake_anthropic)
    worker = mailing.worker_start()
    hold.wait_arrived()
    mailing.worker_kill(worker)
    hold.release()
    key = f"proposal:{world.call(ship)[0]}:email"
    assert world.notice(key)[0] == "posting"

    fake_anthropic.push_text("Two gears are on their way.")
    mailing.worker_start()
    world.approve(ship, "toolbox.approve_shipment", site=mailing)
    world.wait_run(world.run_of(ship), "completed")
    mailing.wait_for(f"SELECT state FROM agents_notice WHERE key = '{key}'", "failed")

    assert len(world.smtp.mails_to(address)) == 1
    assert "may or may not have left" in world.notice(key)[2]
