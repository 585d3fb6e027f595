#!/usr/bin/env bash
# Restores an archive made by scripts/backup.sh into a new database: creates the
# database, loads the archive with `pg_restore --no-owner` (objects belong to the
# restoring user), and analyzes it. It never writes into an existing database.
# A database with TimescaleDB is restored the way TimescaleDB requires (extension
# first, timescaledb_pre_restore(), one job, timescaledb_post_restore()).
# See docs/operations.md ("Backup and restore").
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/restore.sh [-j JOBS] [-m MAINTENANCE_DB] [--no-privileges] [--keep-failed]
                          DUMP_FILE TARGET_DSN

Creates the database named in TARGET_DSN (it must not exist yet) and restores
DUMP_FILE into it.

  DUMP_FILE        an archive written by scripts/backup.sh (pg_dump -Fc)
  TARGET_DSN       postgresql://user[:password]@host[:port]/new_database
  -j JOBS          parallel restore jobs (default 2; always 1 with TimescaleDB)
  -m DB            database to connect to for CREATE DATABASE (default: postgres)
  --no-privileges  skip the archive's GRANTs (when its roles do not exist on the
                   target server and will not be created)
  --keep-failed    keep a half-restored database for inspection (default: drop it)
  -h, --help       this help

Exit status: 0 restored, 1 the restore failed, 2 wrong usage.
EOF
}

log() { printf '[restore] %s\n' "$*" >&2; }
die() { printf '[restore] error: %s\n' "$*" >&2; exit 1; }
usage_error() { printf '%s\n\n' "$*" >&2; usage >&2; exit 2; }

JOBS=2
MAINT_DB=postgres
NO_PRIV=""
KEEP_FAILED=""
ARGS=()
while [ $# -gt 0 ]; do
  case $1 in
    -j) [ $# -ge 2 ] || usage_error "-j needs a value"; JOBS=$2; shift 2 ;;
    -m) [ $# -ge 2 ] || usage_error "-m needs a value"; MAINT_DB=$2; shift 2 ;;
    --no-privileges) NO_PRIV=1; shift ;;
    --keep-failed) KEEP_FAILED=1; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) usage_error "unknown option $1" ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
[ ${#ARGS[@]} -eq 2 ] || usage_error "expected DUMP_FILE and TARGET_DSN"
FILE=${ARGS[0]}
TARGET=${ARGS[1]}
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || usage_error "-j takes a positive number"

for tool in pg_restore psql; do
  command -v "$tool" >/dev/null || die "$tool not found: install the PostgreSQL client (apt-get install postgresql-client)"
done
[ -f "$FILE" ] && [ -r "$FILE" ] || die "$FILE is not a readable file"

# postgresql://[user[:password]@]host[:port]/database[?options]
url_re='^(postgres(ql)?://)(([^:@/?]*)(:([^@/?]*))?@)?([^/?]*)/([^?]+)(\?.*)?$'
[[ $TARGET =~ $url_re ]] || usage_error "TARGET_DSN must be a postgresql:// URL that names the new database"
scheme=${BASH_REMATCH[1]} user=${BASH_REMATCH[4]} password=${BASH_REMATCH[6]}
hostport=${BASH_REMATCH[7]} encoded_db=${BASH_REMATCH[8]} options=${BASH_REMATCH[9]}
DB=$(printf '%b' "${encoded_db//%/\\x}")
if [ -n "$password" ]; then
  # to libpq through the environment, never on a command line
  PGPASSWORD=$(printf '%b' "${password//%/\\x}")
  export PGPASSWORD
fi
auth=${user:+$user@}
TARGET_DSN="${scheme}${auth}${hostport}/${encoded_db}${options}"
ADMIN_DSN="${scheme}${auth}${hostport}/${MAINT_DB}${options}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

admin_sql() { psql "$ADMIN_DSN" -X -A -t -q -v ON_ERROR_STOP=1 -v db="$DB" "$@"; }
target_sql() { psql "$TARGET_DSN" -X -A -t -q -v ON_ERROR_STOP=1 "$@"; }

# --- check the archive and the target ----------------------------------------
pg_restore --list "$FILE" >"$WORK/all.list" 2>"$WORK/err" \
  || die "$FILE is not a pg_dump custom-format archive: $(head -c 300 "$WORK/err")"
TABLES=$(grep -c ' TABLE DATA ' "$WORK/all.list" || true)
OBJECTS=$(grep -vc '^;' "$WORK/all.list" || true)
TIMESCALE=""
if grep -q ' EXTENSION - timescaledb' "$WORK/all.list"; then TIMESCALE=1; fi
source_db=$(sed -n 's/^;[[:space:]]*dbname: //p' "$WORK/all.list" | head -1)
log "archive $FILE: database ${source_db:-?}, $OBJECTS objects, $TABLES tables with data${TIMESCALE:+, TimescaleDB}"

exists=$(admin_sql <<<"SELECT count(*) FROM pg_database WHERE datname = :'db';" 2>"$WORK/err") \
  || die "cannot connect to $hostport/$MAINT_DB: $(head -c 300 "$WORK/err")"
[ "$exists" = "0" ] || die "database $DB already exists on $hostport: restore only into a new database (pick another name, or drop it first)"

if [ -z "$NO_PRIV" ]; then
  grep ' ACL ' "$WORK/all.list" >"$WORK/acl.list" || true
  if [ -s "$WORK/acl.list" ]; then
    missing=""
    for role in $(pg_restore -L "$WORK/acl.list" -f - "$FILE" \
        | sed -n 's/^GRANT .* TO \(.*\);$/\1/p' | sed 's/ WITH GRANT OPTION//; s/ GRANTED BY .*//' \
        | tr ',' '\n' | tr -d ' "' | sort -u); do
      [ "$role" = "PUBLIC" ] && continue
      found=$(admin_sql -v role="$role" <<<"SELECT count(*) FROM pg_roles WHERE rolname = :'role';")
      [ "$found" = "1" ] || missing="$missing $role"
    done
    [ -z "$missing" ] || die "the archive grants rights to role(s)${missing}, which do not exist on $hostport; create them first (e.g. CREATE ROLE eriop_ingest NOLOGIN) or pass --no-privileges"
  fi
fi

# --- restore ------------------------------------------------------------------
started=$(date +%s)
log "creating database $DB on $hostport"
admin_sql <<<'CREATE DATABASE :"db";' || die "CREATE DATABASE $DB failed"
created=1
cleanup_failed() {
  if [ -n "${created:-}" ] && [ -z "$KEEP_FAILED" ]; then
    log "dropping the half-restored database $DB"
    admin_sql <<<'DROP DATABASE IF EXISTS :"db" WITH (FORCE);' || log "could not drop $DB; drop it by hand"
  elif [ -n "${created:-}" ]; then
    log "the half-restored database $DB was kept (--keep-failed); drop it when done"
  fi
  rm -rf "$WORK"
}
trap cleanup_failed EXIT

restore_opts=(--no-owner --exit-on-error --verbose --dbname="$TARGET_DSN")
[ -z "$NO_PRIV" ] || restore_opts+=(--no-privileges)
if [ -n "$TIMESCALE" ]; then
  # the extension must exist, at the archive's version, before anything else
  log "TimescaleDB: creating the extension and entering restore mode"
  target_sql <<<'CREATE EXTENSION IF NOT EXISTS timescaledb; SELECT timescaledb_pre_restore();' >/dev/null \
    || die "TimescaleDB is not available on $hostport (it must match the version the backup came from)"
  grep -v -e ' EXTENSION - timescaledb' -e ' COMMENT - EXTENSION timescaledb' "$WORK/all.list" >"$WORK/restore.list"
  restore_opts+=(--use-list="$WORK/restore.list")
  JOBS=1
fi
restore_opts+=(--jobs="$JOBS")

log "restoring with $JOBS job(s)"
n=0
set +e
pg_restore "${restore_opts[@]}" "$FILE" 2>&1 | while IFS= read -r line; do
  case $line in
    *"processing data for table"*)
      n=$((n + 1))
      table=${line##*table }
      log "table data $n/$TABLES: ${table//\"/}" ;;
    *"pg_restore: error"* | *"pg_restore: warning"* | *"pg_restore: detail"* | *"pg_restore: hint"* | *"Command was"*)
      printf '%s\n' "$line" >&2 ;;
  esac
done
status=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] || die "pg_restore failed (exit $status)"

if [ -n "$TIMESCALE" ]; then
  target_sql <<<'SELECT timescaledb_post_restore();' >/dev/null || die "timescaledb_post_restore() failed"
fi
log "analyzing"
target_sql <<<'ANALYZE;' || die "ANALYZE failed"
created=""
trap 'rm -rf "$WORK"' EXIT

version=$(target_sql <<<'SELECT coalesce(max(version)::text, $$none$$) FROM eriop_schema_migrations;' 2>/dev/null || echo unknown)
log "done in $(( $(date +%s) - started ))s: database $DB restored (schema version $version)"
log "point the worker at it with ERIOP_DATABASE_URL, then run: eriop migrate"
