#!/usr/bin/env bash
# One command from a fresh clone to a running service on http://127.0.0.1:8000:
# install the locked dependencies, migrate the embedded SQLite database, load the demo, serve.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install.sh
.venv/bin/python manage.py migrate --no-input -v 0
.venv/bin/python manage.py load_demo
.venv/bin/python manage.py audit_checkpoint > /dev/null
echo "Serving the portal at http://127.0.0.1:8000/admin/ and the API at http://127.0.0.1:8000/api/docs/"
exec .venv/bin/gunicorn governance.wsgi --bind 127.0.0.1:8000 --workers 2 --access-logfile -
