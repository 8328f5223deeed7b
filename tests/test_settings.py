"""Production settings refuse to start on a demo's defaults: secret, DEBUG, model, payments."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def check(env: dict[str, str]) -> subprocess.CompletedProcess:
    ours = ("DJANGO_", "ANTHROPIC_", "AGENTS_", "STRIPE_", "SUPPORT_")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings.production", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


REAL = {
    "DJANGO_SECRET_KEY": "k" * 50,
    "DJANGO_ALLOWED_HOSTS": "ops.example.com",
    "ANTHROPIC_API_KEY": "sk-ant-x",
    "ANTHROPIC_MODEL": "claude-sonnet-4-5",
    "STRIPE_API_KEY": "sk_test_x",
}


def without(*names: str) -> dict[str, str]:
    return {k: v for k, v in REAL.items() if k not in names}


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": "x" * 50, "DJANGO_DEBUG": "true"}, "DJANGO_DEBUG"),
        (without("ANTHROPIC_MODEL"), "ANTHROPIC_MODEL is unset"),
        (without("ANTHROPIC_API_KEY", "ANTHROPIC_MODEL"), "replay model"),
        (without("STRIPE_API_KEY"), "STRIPE_API_KEY is unset"),
    ],
)
def test_production_refuses_defaults(env, complaint):
    result = check(env)
    assert result.returncode != 0
    assert complaint in result.stderr


def test_production_starts_with_a_real_secret_a_pinned_model_and_real_payments():
    result = check(REAL)
    assert result.returncode == 0, result.stderr


def test_production_runs_the_replay_model_and_the_sandbox_only_when_asked_by_name():
    env = {
        **without("ANTHROPIC_API_KEY", "ANTHROPIC_MODEL", "STRIPE_API_KEY"),
        "AGENTS_LLM_BACKEND": "replay",
        "SUPPORT_ALLOW_SANDBOX_PAYMENTS": "true",
    }
    result = check(env)
    assert result.returncode == 0, result.stderr
