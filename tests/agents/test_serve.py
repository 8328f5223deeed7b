"""`manage.py serve` (make run) tells its console and worker the address it serves on."""

from __future__ import annotations

import socket

import pytest
from django.core.management import call_command

from agents.management.commands import serve


@pytest.mark.parametrize(
    ("addrport", "url"),
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("8001", "http://127.0.0.1:8001"),
        ("localhost:9000", "http://localhost:9000"),
        ("[::1]:8000", "http://[::1]:8000"),
        ("0.0.0.0:8000", f"http://{socket.gethostname()}:8000"),
    ],
)
def test_the_console_url_is_the_served_address(addrport, url):
    assert serve.console_url_for(addrport) == url


class _Exited:
    def __init__(self, args, env):
        self.args, self.env, self.returncode = args, env, 0

    def poll(self):
        return 0

    def wait(self, timeout=None):
        return 0


@pytest.fixture
def spawned(monkeypatch):
    started: list[_Exited] = []

    def popen(args, env=None):
        started.append(_Exited(args, env))
        return started[-1]

    monkeypatch.setattr(serve.subprocess, "Popen", popen)
    monkeypatch.setattr(serve.signal, "signal", lambda *args: None)  # keep pytest's Ctrl-C
    return started


@pytest.mark.parametrize(("given", "expected"), [("", "http://0.0.0.0-host:8000"), (None, None)])
def test_both_processes_get_the_served_address_unless_console_url_is_set(
    spawned, monkeypatch, given, expected
):
    monkeypatch.setattr(serve.socket, "gethostname", lambda: "0.0.0.0-host")
    if given is None:
        monkeypatch.setenv("CONSOLE_URL", "https://ops.example")
        expected = "https://ops.example"
    else:
        monkeypatch.delenv("CONSOLE_URL", raising=False)
    call_command("serve", "0.0.0.0:8000")
    assert [p.args[2] for p in spawned] == ["qcluster", "runserver"]
    assert {p.env["CONSOLE_URL"] for p in spawned} == {expected}
