#!/usr/bin/env bash
# Prepares this machine for ERIOP ingest development and tests. Idempotent:
# installs only what is missing (apt-get, pip) and starts only what is down.
#   - PostgreSQL with PostGIS, Redis, Mosquitto, promtool, amtool (Debian packages)
#   - a virtual environment in .venv with the project and its test/dev extras
#   - PostgreSQL and Redis running on 127.0.0.1, reachable by the current user
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    log "apt-get update"
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# --- system packages -------------------------------------------------------
if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  apt_install postgresql
fi
PGVER=$(ls /etc/postgresql | sort -n | tail -1)
if [ ! -f "/usr/share/postgresql/$PGVER/extension/postgis.control" ]; then
  apt_install "postgresql-$PGVER-postgis-3"
fi
command -v redis-server >/dev/null || apt_install redis-server
command -v promtool >/dev/null || apt_install prometheus
command -v amtool >/dev/null || apt_install prometheus-alertmanager
# MQTT broker for eriop dev and the mqtt-bridge tests (they start their own instance;
# the package's system service is not needed)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || apt_install mosquitto mosquitto-clients

# --- services --------------------------------------------------------------
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  log "starting PostgreSQL $PGVER"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$PGVER" main start || true
  for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
fi
ME=$(id -un)
if ! psql -h 127.0.0.1 -U "$ME" -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
  log "granting $ME a local PostgreSQL superuser role (development machine)"
  HBA="/etc/postgresql/$PGVER/main/pg_hba.conf"
  if ! grep -q '# eriop-dev' "$HBA"; then
    $SUDO sed -i "1i host all all 127.0.0.1/32 trust # eriop-dev\nhost all all ::1/128 trust # eriop-dev" "$HBA"
  fi
  $SUDO runuser -u postgres -- psql -qc "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ME') THEN CREATE ROLE \"$ME\" SUPERUSER LOGIN; END IF; END\$\$" || true
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$PGVER" main reload || true
  sleep 1
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting Redis"
  mkdir -p /tmp/eriop-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/eriop-redis --logfile /tmp/eriop-redis/redis.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.2; done
fi

# --- Python ----------------------------------------------------------------
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=".venv/.eriop-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  log "installing Python dependencies into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test,dev]'
  touch "$stamp"
fi
# The volume path's modules run compiled (setup.py, Cython); an edited source runs
# as Python until it is compiled again, here.
fresh() { .venv/bin/python -c 'import sys, pipeline.compiled as c; sys.exit(not c.fresh())'; }
if [ "${ERIOP_PURE_PYTHON:-0}" = 0 ] && ! fresh; then
  log "compiling the volume path's modules (Cython; a minute or two)"
  .venv/bin/pip install -q --no-deps -e .
  fresh || log "WARNING: the volume path's modules could not be compiled (a C compiler?); they run as Python"
fi
log "ready"
