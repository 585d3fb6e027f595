#!/usr/bin/env bash
# Full logical backup of the ERIOP database: one pg_dump custom-format archive
# (`pg_dump -Fc`), named after the database and the UTC time, checked readable
# before it is given its final name. Restore it with scripts/restore.sh.
# See docs/operations.md ("Backup and restore") for the schedule and for
# point-in-time recovery, which uses the WAL archive instead.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/backup.sh [-o DIR] [-q] [DSN]

Writes a pg_dump custom-format archive of the database to
DIR/<database>_backup_<YYYYmmddTHHMMSSZ>.dump and prints its path on stdout.

  DSN     postgresql://user[:password]@host[:port]/database
          (default: $ERIOP_DATABASE_URL)
  -o DIR  where to write the archive (default: $ERIOP_BACKUP_DIR, else ./backups)
  -q      no progress on stderr, only errors
  -h      this help

A password in the DSN is handed to pg_dump through PGPASSWORD, never on its
command line; ~/.pgpass works too. The archive is readable by its owner only.
Exit status: 0 done, 1 the backup failed, 2 wrong usage.
EOF
}

log() { [ -n "$QUIET" ] || printf '[backup] %s\n' "$*" >&2; }
die() { printf '[backup] error: %s\n' "$*" >&2; exit 1; }

# Moves a password out of a postgresql:// URL into PGPASSWORD (percent-decoded).
DSN_NOPW=""
split_password() {
  local re='^(postgres(ql)?://)([^:@/?]*):([^@/?]*)@(.*)$'
  if [[ $1 =~ $re ]]; then
    local encoded=${BASH_REMATCH[4]}
    PGPASSWORD=$(printf '%b' "${encoded//%/\\x}")
    export PGPASSWORD
    DSN_NOPW="${BASH_REMATCH[1]}${BASH_REMATCH[3]}@${BASH_REMATCH[5]}"
  else
    DSN_NOPW=$1
  fi
}

OUT_DIR=${ERIOP_BACKUP_DIR:-./backups}
QUIET=""
while getopts ":o:qh" opt; do
  case $opt in
    o) OUT_DIR=$OPTARG ;;
    q) QUIET=1 ;;
    h) usage; exit 0 ;;
    :) printf 'option -%s needs a value\n\n' "$OPTARG" >&2; usage >&2; exit 2 ;;
    *) printf 'unknown option -%s\n\n' "$OPTARG" >&2; usage >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -le 1 ] || { usage >&2; exit 2; }
DSN=${1:-${ERIOP_DATABASE_URL:-}}
[ -n "$DSN" ] || { printf 'no database: pass a DSN or set ERIOP_DATABASE_URL\n\n' >&2; usage >&2; exit 2; }

for tool in pg_dump pg_restore psql; do
  command -v "$tool" >/dev/null || die "$tool not found: install the PostgreSQL client (apt-get install postgresql-client)"
done
split_password "$DSN"

info=$(psql "$DSN_NOPW" -X -A -t -q -v ON_ERROR_STOP=1 -F '|' -c \
  "SELECT current_database(), coalesce(inet_server_addr()::text, 'local socket'),
          current_setting('server_version'),
          (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             AND n.nspname NOT LIKE 'pg_toast%')" 2>&1) \
  || die "cannot connect: ${info}"
IFS='|' read -r DB SERVER VERSION TABLES <<<"$info"

mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"
umask 077
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
FILE="$OUT_DIR/${DB}_backup_${STAMP}.dump"
TMP="$FILE.partial"
trap 'rm -f "$TMP"' EXIT
[ ! -e "$FILE" ] || die "$FILE already exists"

log "dumping database $DB on $SERVER (PostgreSQL $VERSION, $TABLES tables) to $FILE"
started=$(date +%s)
n=0
set +e
pg_dump --format=custom --verbose --file="$TMP" "$DSN_NOPW" 2>&1 | while IFS= read -r line; do
  case $line in
    *"dumping contents of table"*)
      n=$((n + 1))
      table=${line##*table }
      log "table $n/$TABLES: ${table//\"/}" ;;
    *"pg_dump: error"* | *"pg_dump: warning"* | *"pg_dump: detail"* | *"pg_dump: hint"*)
      printf '%s\n' "$line" >&2 ;;
  esac
done
status=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] || die "pg_dump failed (exit $status); no backup was written"

pg_restore --list "$TMP" >/dev/null 2>&1 || die "the archive written is not readable by pg_restore"
mv "$TMP" "$FILE"
trap - EXIT
size=$(du -h "$FILE" | cut -f1)
log "done in $(( $(date +%s) - started ))s: $FILE ($size)"
printf '%s\n' "$FILE"
