#!/usr/bin/env bash
# The whole test suite on a fresh machine: set up what is missing, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
