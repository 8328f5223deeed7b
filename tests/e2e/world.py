"""One deployment with every vendor a local fake: Stripe, Slack, GitHub, SMTP and a git remote.

`World` owns a Site whose processes talk to the fakes (module-scoped: the migrations and fakes
are shared by a module's tests, each of which makes its own customer, ticket or incident), and
the steps the tests share: Bob asks for a refund, an incident gets a patch, a person approves.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.conftest import Site
from tests.fakes.github import FakeGitHub
from tests.fakes.slack import FakeSlack
from tests.fakes.smtp import FakeSmtp
from tests.fakes.stripe import FakeStripe

API = """import json


def handler(request):
    payload = json.loads(request.body)
    profile = payload["user_profile"]
    return {"name": profile["name"]}
"""
FIX = {
    "path": "app/api.py",
    "search": 'profile = payload["user_profile"]',
    "replace": 'profile = payload.get("user_profile", {})',
}
PR = {
    "title": "Fix KeyError: 'user_profile' in app/api.py",
    "root_cause": "The upstream reply no longer always carries user_profile; read it with .get.",
}
# After the ref is updated, the remote's hook logs the push and, when armed, holds the pusher.
HOOK = """#!/bin/sh
cat >> "{log}"
if [ -e "{hold}" ]; then
  rm -f "{hold}"; touch "{held}"; i=0
  while [ ! -e "{release}" ] && [ $i -lt 1800 ]; do sleep 0.1; i=$((i+1)); done
fi
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True
    ).stdout


class RemoteBranches(set):
    """GitHub knows a branch once it is in the remote, as it would after a push."""

    def __init__(self, remote: Path) -> None:
        super().__init__({"main"})
        self.remote = remote

    def __contains__(self, branch: object) -> bool:
        refs = git(self.remote, "for-each-ref", "--format=%(refname:short)", "refs/heads")
        return branch in refs.split()


class PushHold:
    """Hold the next push to the remote after its ref is updated, until released."""

    def __init__(self, base: Path) -> None:
        self.base = base
        for name in ("push.held", "push.release"):
            (base / name).unlink(missing_ok=True)
        (base / "push.hold").touch()

    def wait_arrived(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not (self.base / "push.held").exists():
            assert time.monotonic() < deadline, "the held push never arrived"
            time.sleep(0.1)

    def release(self) -> None:
        (self.base / "push.release").touch()


@dataclass
class World:
    site: Site
    stripe: FakeStripe
    slack: FakeSlack
    github: FakeGitHub
    smtp: FakeSmtp
    base: Path
    remote: Path
    channel: str

    @classmethod
    def build(cls, base: Path) -> tuple[World, dict[str, str]]:
        """The fakes, the service's repository and its remote; the env that points at them."""
        repo, remote = base / "service", base / "remote.git"
        (repo / "app").mkdir(parents=True)
        (repo / "app" / "api.py").write_text(API)
        git(base, "init", "-q", "-b", "main", str(repo))
        git(repo, "-c", "user.email=dev@example.com", "-c", "user.name=Dev", "add", "app")
        git(repo, "-c", "user.email=dev@example.com", "-c", "user.name=Dev", "commit", "-qm", "s")
        git(base, "init", "-q", "--bare", str(remote))
        git(repo, "push", "-q", str(remote), "main")
        hook = remote / "hooks" / "post-receive"
        hook.write_text(
            HOOK.format(
                log=base / "pushes.log",
                hold=base / "push.hold",
                held=base / "push.held",
                release=base / "push.release",
            )
        )
        hook.chmod(0o755)
        stripe, slack = FakeStripe().start(), FakeSlack().start()
        github, smtp = FakeGitHub().start(), FakeSmtp().start()
        github.branches = RemoteBranches(remote)
        channel = slack.channel_id("ops")
        env = {
            "DJANGO_SETTINGS_MODULE": "tests.e2e.settings",
            "STRIPE_API_KEY": stripe.api_key,
            "STRIPE_API_BASE": stripe.url,
            "STRIPE_MAX_NETWORK_RETRIES": "1",
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_API_URL": slack.url,
            "SLACK_CHANNEL": channel,
            "GITHUB_TOKEN": github.token,
            "GITHUB_REPOSITORY": github.repository,
            "GITHUB_API_URL": github.url,
            "SRE_REPO_ROOT": str(repo),
            "SRE_SCRATCH_DIR": str(base / "scratch"),
            "SRE_GIT_REMOTE": str(remote),
            "SRE_DENY_PATHS": "",
            "SRE_CHECK_COMMAND": "",
            "SRE_AGENT_RUNS_PER_HOUR": "1000",
            "EMAIL_URL": smtp.url,
            # A killed worker's claim on a run is stale after a few seconds, not ten minutes;
            # transient failures are tried again within a second or two.
            "AGENTS_STALE_CLAIM_SECONDS": "5",
            "AGENTS_RETRY_BASE_SECONDS": "0.5",
            "AGENTS_RETRY_MAX_SECONDS": "2",
        }
        world = cls(None, stripe, slack, github, smtp, base, remote, channel)  # type: ignore[arg-type]
        return world, env

    def stop(self) -> None:
        for fake in (self.stripe, self.slack, self.github, self.smtp):
            fake.stop()

    # --- what the fakes saw ---------------------------------------------------------------

    def pushes(self, branch: str) -> int:
        log = self.base / "pushes.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return sum(1 for line in lines if line.endswith(f"refs/heads/{branch}"))

    def slack_posts(self, key: str) -> list[dict]:
        return [
            m
            for m in self.slack.messages
            if ((m.get("metadata") or {}).get("event_payload") or {}).get("key") == key
        ]

    def slack_post_requests(self, key: str) -> int:
        return sum(
            1
            for body in self.slack.requests_of("chat.postMessage")
            if ((body.get("metadata") or {}).get("event_payload") or {}).get("key") == key
        )

    # --- the database -----------------------------------------------------------------------

    def call(self, tool_use_id: str) -> tuple[int, str, str]:
        """(id, status, result) of the tool call."""
        [row] = self.site.query(
            f"SELECT id, status, result FROM agents_toolcall WHERE tool_use_id = '{tool_use_id}'"
        )
        return row

    def wait_call(self, tool_use_id: str, status: str, timeout: float = 120) -> None:
        self.site.wait_for(
            f"SELECT status FROM agents_toolcall WHERE tool_use_id = '{tool_use_id}'",
            status,
            timeout,
        )

    def run_of(self, tool_use_id: str) -> int:
        [(run_id,)] = self.site.query(
            f"SELECT run_id FROM agents_toolcall WHERE tool_use_id = '{tool_use_id}'"
        )
        return run_id

    def wait_run(self, run_id: int, status: str, timeout: float = 120) -> None:
        self.site.wait_for(
            f"SELECT status FROM agents_agentrun WHERE id = {run_id}", status, timeout
        )

    def run_row(self, run_id: int) -> tuple[str, str]:
        [row] = self.site.query(
            f"SELECT status, status_reason FROM agents_agentrun WHERE id = {run_id}"
        )
        return row

    def notice(self, key: str) -> tuple[str, str, str]:
        """(state, shown, error) of the notice."""
        rows = self.site.query(f"SELECT state, shown, error FROM agents_notice WHERE key = '{key}'")
        return rows[0] if rows else ("", "", "")

    # --- people and the world -------------------------------------------------------------

    def approve(self, tool_use_id: str, permission: str, *, site: Site | None = None) -> None:
        """A person with `permission` approves the call, from a process of its own."""
        app, codename = permission.split(".")
        (site or self.site).python(
            "from django.contrib.auth.models import Permission, User\n"
            "from agents.models import ToolCall\n"
            "from agents.services import proposal_approve\n"
            f"u, _ = User.objects.get_or_create(username='approver-{codename}', "
            "defaults={'is_staff': True})\n"
            "u.user_permissions.add(Permission.objects.get("
            f"codename='{codename}', content_type__app_label='{app}'))\n"
            "u = User.objects.get(pk=u.pk)\n"
            f"proposal_approve(tool_call_id=ToolCall.objects.get(tool_use_id='{tool_use_id}').pk,"
            " user=u)"
        )

    def customer_writes(self, fake_anthropic, *, amount: int = 4000) -> Refunding:
        """A new customer with a $40 charge asks for it back; Claude is scripted to propose it."""
        email = f"bob-{uuid.uuid4().hex[:8]}@test.com"
        customer = self.stripe.customer_add(email, name="Bob")
        charge = self.stripe.charge_add(customer["id"], 4000, description="Widget")
        fake_anthropic.push_tool_use(("find_customer", {"email": email}))
        fake_anthropic.push_tool_use(("list_payments", {"customer_email": email}))
        [refund_use] = fake_anthropic.push_tool_use(
            (
                "process_refund",
                {"customer_email": email, "amount": amount, "reason": "widget broke on day 2"},
            ),
            text="<scratchpad>Defective on day 2; $40 is 4000 cents.</scratchpad>",
        )
        body = f"My widget broke on day 2. My email is {email}. I want my $40 back."
        ticket_id = self.site.python(
            "from support.services import ticket_ingest_email\n"
            "from tests.support import mails\n"
            f"raw = mails.plain(message_id='<{uuid.uuid4().hex}@test.com>', "
            f"sender='Bob <{email}>', subject='Broken widget', body={body!r})\n"
            "print(ticket_ingest_email(raw=raw, source='webhook').ticket_id)"
        )
        return Refunding(
            email=email, charge=charge["id"], tool_use=refund_use, ticket=int(ticket_id)
        )

    def customer_writes_only(self) -> str:
        """A new customer writes (Claude's replies are scripted by the caller); their address."""
        email = f"ann-{uuid.uuid4().hex[:8]}@test.com"
        self.site.python(
            "from support.services import ticket_ingest_email\n"
            "from tests.support import mails\n"
            f"raw = mails.plain(message_id='<{uuid.uuid4().hex}@test.com>', "
            f"sender='Ann <{email}>', subject='Broken widget', body='My widget broke.')\n"
            "ticket_ingest_email(raw=raw, source='webhook')"
        )
        return email

    def ticket_of(self, email: str) -> int:
        [(ticket_id,)] = self.site.query(
            f"SELECT id FROM support_ticket WHERE customer_email = '{email}'"
        )
        return ticket_id

    def remote_ref(self, branch: str) -> str:
        return git(self.remote, "rev-parse", f"refs/heads/{branch}").strip()

    def incident_opens(self, fake_anthropic) -> str:
        """A code incident starts the SRE agent, scripted to propose the fix; its tool_use id."""
        fake_anthropic.push_tool_use(
            ("read_file", {"path": "app/api.py"}),
            text="<scratchpad>The traceback points at app/api.py line 6.</scratchpad>",
        )
        fake_anthropic.push_tool_use(("edit_file", FIX))
        [pr_use] = fake_anthropic.push_tool_use(
            ("create_pull_request", PR),
            text="<scratchpad>Hypothesis: upstream omits user_profile; .get fixes it.</scratchpad>",
        )
        self.site.python(
            "from sre.agent import incident_agent_start\n"
            "from tests.sre.agent_steps import code_incident\n"
            "incident = code_incident()\n"
            "incident_agent_start(incident.pk)"
        )
        return pr_use

    def patch_of(self, tool_use_id: str) -> tuple[str, str, int | None, str]:
        """(branch, commit, pr_number, notes) of the call's patch."""
        [row] = self.site.query(
            'SELECT p.branch, p."commit", p.pr_number, p.notes FROM sre_patchproposal p '
            f"JOIN agents_toolcall c ON c.id = p.tool_call_id WHERE c.tool_use_id = '{tool_use_id}'"
        )
        return row


@dataclass
class Refunding:
    email: str
    charge: str
    tool_use: str
    ticket: int
