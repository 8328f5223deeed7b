#!/usr/bin/env bash
# One release, on one machine, once the new commit and its lock are installed at
# /srv/countersign on every machine: check the deploy settings, migrate and grant the app role
# as the owner, write the schedules. Then restart the units on every machine (docs/DEPLOY.md,
# "Every release").
#
#   sudo /srv/countersign/deploy/release.sh
#
# As root, not as the app's user: /etc/countersign/owner.env (mode 0600, root) holds
# OWNER_DATABASE_URL, the countersign_owner role's, which the app must never be able to read.
set -euo pipefail
cd "$(dirname "$0")/.."

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
echo "Released. Now collectstatic and reload on each web machine, restart each qcluster."
