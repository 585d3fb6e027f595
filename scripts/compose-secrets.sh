#!/usr/bin/env bash
# Writes the secret files docker-compose.yml mounts (compose `secrets:`) into ./secrets/,
# with fresh random passwords. Idempotent: a file that exists is kept, so the script
# can run again after a new one is added. docs/operations.md, "Compose secrets and
# database roles", lists what each file is for.
#
#   scripts/compose-secrets.sh [DIR]      (default: secrets)
#
# Passwords are 32 hex characters, so they need no escaping in a URL. The directory is
# 0700 (only the deploying user reads it on the host); the files are 0444 because each
# container reads its own as a non-root user (compose bind-mounts them).
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${1:-secrets}
POSTGRES_USER=${POSTGRES_USER:-eriop}
POSTGRES_DB=${POSTGRES_DB:-eriop}
umask 077
mkdir -p "$DIR"
chmod 0700 "$DIR"

password() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
sha256() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# put NAME VALUE: writes $DIR/NAME unless it exists
put() {
  if [ -e "$DIR/$1" ]; then
    return
  fi
  printf '%s' "$2" > "$DIR/$1"
  chmod 0444 "$DIR/$1"
  printf 'wrote %s/%s\n' "$DIR" "$1" >&2
}
# get NAME: the content of $DIR/NAME
get() { cat "$DIR/$1"; }

# --- PostgreSQL: the owner (migrations) and one login role per service ----------
put postgres_password "$(password)"
put migrate_database_url \
  "postgresql://$POSTGRES_USER:$(get postgres_password)@db:5432/$POSTGRES_DB"
for role in worker dc09_receiver cap_poller; do
  put "${role}_database_url" "postgresql://eriop_${role}:$(password)@db:5432/$POSTGRES_DB"
done

# --- Redis: ACL users, no default user -------------------------------------------
put redis_password "$(password)"
put redis_console_password "$(password)"
put redis_health_password "$(password)"
put redis_url "redis://eriop:$(get redis_password)@redis:6379/0"
# eriop: the ingest services (no administration commands); console: dispatcher consoles
# and eriop watch (read the live state and the alert stream, subscribe); healthcheck: PING
put redis_acl "user default off
user eriop on #$(sha256 "$(get redis_password)") ~* &* +@all -@admin
user console on #$(sha256 "$(get redis_console_password)") ~eriop:* &eriop.* -@all +@read +subscribe +psubscribe +unsubscribe +punsubscribe +ping +hello
user healthcheck on #$(sha256 "$(get redis_health_password)") -@all +ping
"

# --- MQTT, Grafana, Alertmanager ----------------------------------------------------
put mqtt_password "$(password)"
put grafana_admin_password "$(password)"
# replace with the webhook URLs of the paging service and the ticket system
put alertmanager_pager_url "https://pager.example.invalid/hooks/eriop-page"
put alertmanager_ticket_url "https://tickets.example.invalid/hooks/eriop-ticket"
