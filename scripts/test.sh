#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh -r requirements-test.txt
. .venv/bin/activate
ruff check --no-cache .  # lint (pyproject.toml [tool.ruff])
lint-imports  # the layers of ARCHITECTURE.md (pyproject.toml [tool.importlinter])
python -m pytest -q -p no:cacheprovider "$@"
