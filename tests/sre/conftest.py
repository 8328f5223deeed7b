"""Fixtures for the SRE tests: a small service in a real git repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

API = """import json


def handler(request):
    payload = json.loads(request.body)
    profile = payload["user_profile"]
    return {"name": profile["name"]}
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "service"
    (root / "app").mkdir(parents=True)
    (root / "app" / "api.py").write_text(API)
    (root / "app" / "util.py").write_text(
        "def twice(x):\n    return x * 2\n\n\ndef twice_again(x):\n    return x * 2\n"
    )
    (root / ".env").write_text("DATABASE_PASSWORD=hunter2-very-secret\n")
    (root / "deploy.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n"
    )
    (root / "logo.png").write_bytes(b"\x89PNG\x00\x00binary")
    git(tmp_path, "init", "-q", "-b", "main", str(root))
    git(root, "config", "user.email", "dev@example.com")
    git(root, "config", "user.name", "Dev")
    git(root, "add", "app", "logo.png", "deploy.pem")
    git(root, "commit", "-qm", "service")
    return root


# Log files, log sources and the seed's logs (the log-reading tests).
# The SRE agent tests: settings pointing at the repo, a bare remote, GitHub and Slack fakes.
from tests.sre.agent_steps import (  # noqa: E402, F401
    github_fake,
    remote,
    slack_fake,
    sre_settings,
    wired,
)
from tests.sre.logfiles import (  # noqa: E402, F401
    _sre_settings,
    logs,
    seed_files,
    source,
)
