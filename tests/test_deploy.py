"""deploy/: the units and configs of docs/DEPLOY.md load, and NGINX + gunicorn serve the console.

The NGINX test runs the site config as shipped (ports, certificate and paths swapped for a
scratch directory's) in front of gunicorn with deploy/gunicorn.conf.py: static files come from
collectstatic's output through NGINX, everything else from gunicorn. It is skipped where NGINX
or openssl is not installed.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
GUNICORN = Path(sys.executable).with_name("gunicorn")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listened on {port} within {timeout}s")


def get(url: str, *, host: str = "ops.example.com", headers: dict | None = None):
    """(status, headers, body) without following redirects or checking the certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=context))
    request = urllib.request.Request(url, headers={"Host": host, **(headers or {})})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def gunicorn_env(tmp: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DJANGO_ALLOWED_HOSTS": "ops.example.com",
        # A database of its own that it never needs: these pages and probes run no query.
        "DATABASE_URL": f"sqlite:///{tmp / 'unused.sqlite3'}",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_ERROR_LOG": str(tmp / "gunicorn.log"),
    }


def test_the_gunicorn_config_loads_the_console():
    env = gunicorn_env(Path("/tmp"), 0)
    env["GUNICORN_ERROR_LOG"] = "-"
    result = subprocess.run(
        [str(GUNICORN), "-c", "deploy/gunicorn.conf.py", "--check-config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_units_run_the_production_settings_and_files_that_exist():
    for name in ("countersign-web.service", "countersign-qcluster.service"):
        unit = (DEPLOY / "systemd" / name).read_text()
        assert "Environment=DJANGO_SETTINGS_MODULE=config.settings.production" in unit
        assert "EnvironmentFile=/etc/countersign/countersign.env" in unit
        [command] = re.findall(r"^ExecStart=(.*)$", unit, flags=re.M)
        for word in command.split():
            if word.startswith("/srv/countersign/"):
                continue  # the virtualenv, on the machine
            if "/" in word or word.endswith(".py"):
                assert (ROOT / word).exists(), word
    assert "manage.py qcluster" in (DEPLOY / "systemd" / "countersign-qcluster.service").read_text()


def test_systemd_accepts_the_units(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("needs systemd-analyze")
    for name in ("countersign-web.service", "countersign-qcluster.service"):
        unit = (DEPLOY / "systemd" / name).read_text()
        # This checkout, this user, and no env file needed: systemd checks what it would run.
        unit = unit.replace("/srv/countersign", str(ROOT))
        unit = re.sub(r"^(User|Group)=countersign$", r"\1=root", unit, flags=re.M)
        unit = unit.replace("EnvironmentFile=/etc", "EnvironmentFile=-/etc")
        (tmp_path / name).write_text(unit)
    if not Path(GUNICORN).exists():
        pytest.skip("needs gunicorn in this virtualenv")
    venv = ROOT / ".venv" / "bin"
    if Path(sys.executable).parent != venv:
        for name in ("countersign-web.service", "countersign-qcluster.service"):
            path = tmp_path / name
            path.write_text(path.read_text().replace(str(venv), str(Path(sys.executable).parent)))
    result = subprocess.run(
        [analyze, "verify", *(str(tmp_path / n) for n in sorted(os.listdir(tmp_path)))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_nginx_serves_collected_static_files_and_proxies_the_rest(tmp_path):
    nginx, openssl = shutil.which("nginx"), shutil.which("openssl")
    if not (nginx and openssl):
        pytest.skip("needs nginx and openssl installed")
    static = tmp_path / "static"
    with override_settings(STATIC_ROOT=str(static)):
        call_command("collectstatic", interactive=False, verbosity=0)
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=ops.example.com", "-keyout", str(tmp_path / "key.pem"),
         "-out", str(tmp_path / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    web, http, https = free_port(), free_port(), free_port()
    site = (DEPLOY / "nginx" / "countersign.conf").read_text()
    # The site as shipped, with this test's ports, certificate and directories.
    for shipped, here in (
        ("listen 80;", f"listen 127.0.0.1:{http};"),
        ("listen [::]:80;", ""),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https} ssl http2;"),
        ("listen [::]:443 ssl http2;", ""),
        ("server 127.0.0.1:8000", f"server 127.0.0.1:{web}"),
        ("/etc/ssl/certs/ops.example.com.pem", str(tmp_path / "cert.pem")),
        ("/etc/ssl/private/ops.example.com.key", str(tmp_path / "key.pem")),
        ("/var/log/nginx/", f"{tmp_path}/"),
        ("/etc/nginx/countersign_proxy.conf", str(DEPLOY / "nginx" / "countersign_proxy.conf")),
        ("/srv/countersign/staticfiles/", f"{static}/"),
    ):
        assert shipped in site, shipped
        site = site.replace(shipped, here)
    (tmp_path / "site.conf").write_text(site)
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers read the scratch directory
    (tmp_path / "nginx.conf").write_text(
        f"{user}pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        "events {}\n"
        f"http {{\n  include /etc/nginx/mime.types;\n  include {tmp_path}/site.conf;\n}}\n"
    )
    nginx_command = [nginx, "-p", f"{tmp_path}/", "-c", str(tmp_path / "nginx.conf")]
    checked = subprocess.run([*nginx_command, "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr

    processes = [
        subprocess.Popen(
            [str(GUNICORN), "-c", "deploy/gunicorn.conf.py"],
            cwd=ROOT,
            env=gunicorn_env(tmp_path, web),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [*nginx_command, "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_port(web, processes[0])
        wait_port(https, processes[1])
        base = f"https://127.0.0.1:{https}"

        css = static / "admin" / "css" / "base.css"
        status, headers, body = get(f"{base}/{settings.STATIC_URL}admin/css/base.css")
        assert status == 200 and body == css.read_bytes()
        assert headers["Content-Type"] == "text/css"
        assert headers.get_all("Cache-Control") == ["public, max-age=86400"]
        assert get(f"{base}/static/no-such-file.css")[0] == 404  # NGINX's, not Django's

        status, headers, body = get(f"{base}/healthz")
        assert status == 200 and body == b'{"status": "ok"}'
        assert headers["Strict-Transport-Security"].startswith("max-age=")
        status, headers, _ = get(f"{base}/metrics")  # from an allowed address, without the token
        assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
        status, headers, _ = get(f"http://127.0.0.1:{http}/admin/")
        assert status == 301 and headers["Location"] == "https://ops.example.com/admin/"
        # The console itself, through the proxy: the login page, with the admin's styles.
        status, _, body = get(f"{base}/admin/login/")
        assert status == 200 and b"/static/admin/css/base.css" in body
        # NGINX writes the line after the answer: wait for it.
        deadline, line = time.monotonic() + 10, ""
        while not line and time.monotonic() < deadline:
            lines = (tmp_path / "countersign.access.log").read_text().splitlines()
            line = next((x for x in lines if '"uri":"/admin/login/"' in x), "")
            time.sleep(0.05)
        assert '"status":200' in line and '"upstream_status":"200"' in line, lines
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
