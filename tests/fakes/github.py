"""A local HTTP server speaking the part of GitHub's REST API that PyGithub uses here.

Faults: `fail_next` answers the next requests with a status before acting; `fail_after_next`
acts on the next POST and then answers with a status (a 502 from a proxy whose upstream made
the pull request); `hold_next` acts on the next POST and holds its answer until released, then
drops it (kill the worker meanwhile).
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.hold import Hold
from tests.fakes.server import LocalServer


@dataclass
class Recorded:
    method: str
    path: str
    body: dict[str, Any]


class FakeGitHub(LocalServer):
    def __init__(self, *, repository: str = "acme/service", token: str = "ghp_test") -> None:
        self.repository = repository
        self.token = token
        self.pulls: list[dict[str, Any]] = []
        self.branches: set[str] = {"main"}
        self.requests: list[Recorded] = []
        self.fail_next: list[int] = []
        self.fail_after_next: list[int] = []
        self.holds: list[Hold] = []
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._serve(ThreadingHTTPServer(("127.0.0.1", 0), self._handler()))

    @property
    def url(self) -> str:
        return self.base

    @property
    def pull_posts(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/pulls")]

    def hold_next(self) -> Hold:
        """Act on the next POST, then hold its answer until released, then drop it."""
        hold = Hold()
        with self._lock:
            self.holds.append(hold)
        return hold

    def _repo_json(self) -> dict[str, Any]:
        owner, name = self.repository.split("/")
        api = f"{self.url}/repos/{self.repository}"
        return {
            "id": 1,
            "name": name,
            "full_name": self.repository,
            "owner": {"login": owner, "id": 2, "type": "Organization"},
            "url": api,
            "html_url": f"https://github.example/{self.repository}",
            "default_branch": "main",
            "private": True,
        }

    def _pull_json(self, pull: dict[str, Any]) -> dict[str, Any]:
        api = f"{self.url}/repos/{self.repository}/pulls/{pull['number']}"
        return {
            "id": 1000 + pull["number"],
            "number": pull["number"],
            "state": pull["state"],
            "merged": pull["merged"],
            "title": pull["title"],
            "body": pull["body"],
            "url": api,
            "html_url": f"https://github.example/{self.repository}/pull/{pull['number']}",
            "head": {
                "ref": pull["head"],
                "label": f"{self.repository.split('/')[0]}:{pull['head']}",
            },
            "base": {"ref": pull["base"]},
        }

    def _route(
        self, method: str, raw_path: str, body: dict[str, Any], auth: str
    ) -> tuple[int, Any]:
        if auth != f"token {self.token}" and auth != f"Bearer {self.token}":
            return 401, {"message": "Bad credentials"}
        if self.fail_next:
            return self.fail_next.pop(0), {"message": "Server Error"}
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query)
        base = f"/repos/{self.repository}"
        if parts.path == base and method == "GET":
            return 200, self._repo_json()
        if parts.path == f"{base}/pulls" and method == "GET":
            head = query.get("head", [""])[0].split(":", 1)[-1]
            state = query.get("state", ["open"])[0]
            found = [
                self._pull_json(p)
                for p in self.pulls
                if (not head or p["head"] == head) and (state == "all" or p["state"] == state)
            ]
            return 200, found
        if parts.path == f"{base}/pulls" and method == "POST":
            missing = [k for k in ("title", "head", "base") if not body.get(k)]
            if missing:
                return 422, {"message": "Validation Failed", "errors": missing}
            if body["head"] not in self.branches:
                return 422, {
                    "message": "Validation Failed",
                    "errors": [{"field": "head", "code": "invalid"}],
                }
            if any(p["head"] == body["head"] and p["state"] == "open" for p in self.pulls):
                return 422, {
                    "message": "Validation Failed",
                    "errors": [{"message": "A pull request already exists"}],
                }
            with self._lock:
                pull = {
                    "number": next(self._numbers),
                    "state": "open",
                    "merged": False,
                    "title": body["title"],
                    "body": body.get("body", ""),
                    "head": body["head"],
                    "base": body["base"],
                }
                self.pulls.append(pull)
            return 201, self._pull_json(pull)
        return 404, {"message": "Not Found"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            # Headers and body go out in separate writes: without this each answer waits for the
            # client's delayed ACK (about 40 ms), which no real API server adds.
            disable_nagle_algorithm = True
            protocol_version = "HTTP/1.1"

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else {}
                fake.requests.append(Recorded(method, self.path, body))
                status, payload = fake._route(
                    method, self.path, body, self.headers.get("Authorization", "")
                )
                if method == "POST":
                    with fake._lock:
                        hold = fake.holds.pop(0) if fake.holds else None
                        after = fake.fail_after_next.pop(0) if fake.fail_after_next else None
                    if hold is not None:
                        hold.hold()
                        self.close_connection = True
                        return
                    if after is not None:
                        status, payload = after, {"message": "Bad Gateway"}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json; charset=utf-8")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
