"""Production settings refuse to start with a default secret or DEBUG on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def check(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings.production", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": "x" * 50, "DJANGO_DEBUG": "true"}, "DJANGO_DEBUG"),
    ],
)
def test_production_refuses_defaults(env, complaint):
    result = check(env)
    assert result.returncode != 0
    assert complaint in result.stderr


def test_production_starts_with_a_real_secret():
    result = check({"DJANGO_SECRET_KEY": "k" * 50, "DJANGO_ALLOWED_HOSTS": "ops.example.com"})
    assert result.returncode == 0, result.stderr
