#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh -r requirements-test.txt
. .venv/bin/activate
ruff check --no-cache .  # lint (pyproject.toml [tool.ruff])
python -m pytest -q -p no:cacheprovider "$@"
