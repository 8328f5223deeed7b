"""Run the console and a task worker together; Ctrl-C stops both."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from django.core.management.base import BaseCommand


def console_url_for(addrport: str) -> str:
    """The address `serve` answers on, as a URL: for links while CONSOLE_URL is not set."""
    host, _, port = addrport.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"  # "8000" alone: runserver's own default host
    if host in ("0.0.0.0", "::"):
        host = socket.gethostname() or "localhost"  # every interface: the machine's name
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class Command(BaseCommand):
    help = "Run the web console (runserver) and a django-q2 worker (qcluster) together."

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")

    def handle(self, *args, **options):
        manage = [sys.executable, "manage.py"]
        env = dict(os.environ)
        # Links in notices and commit messages point where this console answers, unless
        # CONSOLE_URL (the environment or .env, which settings loaded into os.environ) says.
        if not env.get("CONSOLE_URL"):
            env["CONSOLE_URL"] = console_url_for(options["addrport"])
        processes = {
            "worker": subprocess.Popen([*manage, "qcluster"], env=env),
            "console": subprocess.Popen(
                [*manage, "runserver", options["addrport"], "--noreload"], env=env
            ),
        }
        self.stdout.write(
            f"Console on http://{options['addrport']}/ with a worker; links point at "
            f"{env['CONSOLE_URL']}. Ctrl-C stops both."
        )
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping and all(p.poll() is None for p in processes.values()):
                time.sleep(0.5)
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for name, process in processes.items():
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.stderr.write(f"{name} did not stop in time; killing it.")
                    process.kill()
        exited = [n for n, p in processes.items() if p.returncode not in (0, -15, None)]
        if exited and not stopping:
            raise SystemExit(f"{', '.join(exited)} exited unexpectedly.")
