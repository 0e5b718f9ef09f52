#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install exactly the locked versions (hash-checked) plus the project.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is required"'
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check "uv==0.13.9"
.venv/bin/uv pip install -q --python .venv/bin/python --require-hashes -r requirements.lock
.venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
