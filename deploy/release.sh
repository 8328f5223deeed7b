#!/usr/bin/env bash
# One release, on one machine, after the new code is at /srv/countersign on every machine:
# install, migrate as the owner, grant the app role, write the schedules. Then restart the units
# on every machine (docs/DEPLOY.md, "Every release").
#
#   sudo -u countersign deploy/release.sh
#
# /etc/countersign/owner.env holds OWNER_DATABASE_URL (the countersign_owner role), readable only
# by whoever releases; the app's own env file never holds the owner's password.
set -euo pipefail
cd "$(dirname "$0")/.."

test -x .venv/bin/python || python3 -m venv .venv
.venv/bin/pip install --quiet --requirement requirements.lock

set -a
. /etc/countersign/countersign.env
. /etc/countersign/owner.env
set +a
export DJANGO_SETTINGS_MODULE=config.settings.production
: "${OWNER_DATABASE_URL:?set OWNER_DATABASE_URL in /etc/countersign/owner.env}"
APP_ROLE="${APP_ROLE:-countersign_app}"

.venv/bin/python manage.py check --deploy --fail-level ERROR
DATABASE_URL="$OWNER_DATABASE_URL" .venv/bin/python manage.py migrate --noinput
DATABASE_URL="$OWNER_DATABASE_URL" .venv/bin/python manage.py db_grant_app "$APP_ROLE"
.venv/bin/python manage.py setup_schedules
echo "released; now on each web machine: manage.py collectstatic --noinput, then restart the units"
