#!/usr/bin/env bash
# Set up (scripts/setup.sh) and start the app on the committed assets: http://127.0.0.1:7860
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
exec python -m app "$@"
