#!/usr/bin/env bash
# Set up what is missing, then run the whole pipeline locally (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/eriop dev "$@"
