#!/usr/bin/env bash
# Writes deploy/requirements.lock: every runtime dependency of pyproject.toml and
# theirs, pinned with their hashes, for the image built by deploy/Dockerfile
# (pip install --require-hashes). Versions are those installed in .venv, so the
# image runs what the tests ran; run it again after changing the dependencies
# (tests/unit/test_compose.py fails while the lock misses one).
set -euo pipefail
cd "$(dirname "$0")/.."

UV=${UV:-}
if [ -z "$UV" ]; then
  if command -v uv >/dev/null; then
    UV=uv
  else
    tools=$(mktemp -d)
    trap 'rm -rf "$tools"' EXIT
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install -q uv
    UV="$tools/venv/bin/uv"
  fi
fi

constraints=$(mktemp)
trap 'rm -f "$constraints"; [ -n "${tools:-}" ] && rm -rf "$tools"' EXIT
.venv/bin/pip freeze --exclude-editable | grep -v '^-e ' > "$constraints"

"$UV" pip compile pyproject.toml \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
  --constraint "$constraints" --generate-hashes --quiet \
  --custom-compile-command "scripts/lock-deps.sh" \
  --output-file deploy/requirements.lock
echo "wrote deploy/requirements.lock" >&2
