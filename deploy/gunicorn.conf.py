"""gunicorn's settings for the console (deploy/systemd/countersign-web.service).

`gunicorn -c deploy/gunicorn.conf.py`; each value can be overridden by GUNICORN_CMD_ARGS or
the GUNICORN_* variables below (set them in the unit, not in the app's env file).
"""

import multiprocessing
import os

wsgi_app = "config.wsgi:application"  # its default settings: config.settings.production
# NGINX on the same host proxies to this address (deploy/nginx/countersign.conf).
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Sync workers: every page is short; calls that leave the process happen in qcluster workers.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then, so slow growth in one never becomes an outage.
max_requests = 2000
max_requests_jitter = 200
# NGINX logs every request (the access log the SRE watchdog reads); gunicorn logs its own
# events and, with capture_output, the app's stderr: the `gunicorn` log kind of docs/sre-logging.md.
accesslog = None
errorlog = os.environ.get("GUNICORN_ERROR_LOG", "/var/log/countersign/gunicorn.log")
capture_output = True
loglevel = "info"
# Trust X-Forwarded-* only from the local NGINX.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
proc_name = "countersign-web"
