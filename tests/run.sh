#!/usr/bin/env bash
# One command from a fresh clone to a passing suite: install the locked dependencies, run pytest.
# Runs on the embedded SQLite by default; set DATABASE_URL=postgres://... for PostgreSQL.
# Extra arguments go to pytest (e.g. tests/run.sh -k audit).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install.sh
exec .venv/bin/python -m pytest "$@"
