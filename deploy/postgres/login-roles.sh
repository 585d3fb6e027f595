#!/usr/bin/env bash
# Creates (or updates) one login role per ERIOP service, each a member of the
# least-privilege role `eriop_ingest` that `eriop migrate` creates
# (pipeline/store/migrations/0006_ingest_role.sql). Run after the migrations, as the
# database owner; idempotent, so it runs at every `docker compose up`.
#
#   login-roles.sh URL_FILE...
#
# Each URL_FILE holds a service's database URL (postgresql://ROLE:PASSWORD@host/db, the
# file the service itself reads as ERIOP_DATABASE_URL): the role and its password are
# taken from it, so the two cannot disagree. The role must be named eriop_<something>
# and must not be the owner. The owner connects with the libpq variables (PGHOST,
# PGUSER, PGDATABASE) and PGPASSFILE or PGPASSWORD_FILE; no password is ever on a
# command line.
set -euo pipefail

if [ -n "${PGPASSWORD_FILE:-}" ]; then
  PGPASSWORD=$(cat "$PGPASSWORD_FILE")
  export PGPASSWORD
fi
owner=${PGUSER:?set PGUSER to the database owner}

for file in "$@"; do
  url=$(cat "$file")
  userinfo=${url#*://}
  userinfo=${userinfo%%@*}
  role=${userinfo%%:*}
  password=${userinfo#*:}
  if ! [[ "$role" =~ ^eriop_[a-z0-9_]+$ ]] || [ "$role" = "$owner" ] || [ "$role" = eriop_ingest ]; then
    echo "login-roles: $file: role '$role' must be eriop_<name>, not the owner or eriop_ingest" >&2
    exit 2
  fi
  if [ -z "$password" ] || [ "$password" = "$userinfo" ]; then
    echo "login-roles: $file: the URL has no password" >&2
    exit 2
  fi
  # the password reaches psql through its environment, read by \getenv
  ERIOP_ROLE_PASSWORD=$password psql -X -q -v ON_ERROR_STOP=1 -v role="$role" <<'SQL'
SET client_min_messages = warning;
\getenv password ERIOP_ROLE_PASSWORD
SELECT format('CREATE ROLE %I LOGIN', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    NOBYPASSRLS PASSWORD :'password';
GRANT eriop_ingest TO :"role";
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'role') \gexec
SQL
  echo "login-roles: $role ready (member of eriop_ingest)" >&2
done
