# Two commands on a fresh machine: `make run` (console + worker, embedded defaults)
# and `make test` (the whole suite). Everything installs from requirements.lock.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
ADDR ?= 127.0.0.1:8000

.PHONY: install run test lint lock bench chromium nginx

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --requirement requirements.lock
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py setup_schedules
	$(PY) manage.py demo_support
	$(PY) manage.py demo_sre
	$(PY) manage.py demo_setup
	$(PY) manage.py serve $(ADDR)

# The browser tests drive Debian's Chromium; Playwright never downloads a browser.
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# The deployment test runs the shipped NGINX site in front of gunicorn (tests/test_deploy.py).
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || (apt-get update -qq && apt-get install -y -qq nginx)

test: install chromium nginx
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Every benchmark in bench/, once, on PostgreSQL and Redis at their local defaults (about five
# minutes); each prints its table, and docs/BENCHMARKS.md gets the machine and all of them.
# BENCH_ARGS is passed on to bench/report.py, e.g. BENCH_ARGS='--note "..."'.
bench: install
	$(PY) bench/report.py $(BENCH_ARGS)

# Re-pin every dependency (direct and transitive) from pyproject.toml into requirements.lock.
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet --upgrade pip
	.lockenv/bin/pip install --quiet ".[dev]"
	.lockenv/bin/pip freeze --exclude-editable | grep -v '^countersign' > requirements.lock
	rm -rf .lockenv
