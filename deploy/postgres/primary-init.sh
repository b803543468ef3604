#!/usr/bin/env bash
# The compose primary's first start (docker-compose.yml mounts this in
# /docker-entrypoint-initdb.d/; the postgres image runs it once, on an empty data folder,
# against its temporary server on the Unix socket, as the superuser):
#
# - role vledger: LOGIN, no superuser, no CREATEDB, no CREATEROLE; it owns database vledger
#   (and so its public schema), where migrations, the API and the worker run as it;
# - role $REPLICATION_USER: LOGIN REPLICATION only, and the physical slot $REPLICATION_SLOT
#   the replica streams through (made here, before any replica, so that a replica made
#   again later finds it);
# - one pg_hba.conf line: that role may replicate with a password (scram-sha-256).
#
# The passwords come from the environment (compose: .env), never from this file. A value
# still as .env.example has it (change-me...), shorter than PASSWORD_LENGTH_MIN, or (for
# the application role, whose password goes into URLs unescaped) with characters outside
# A-Z a-z 0-9 . _ ~ - is refused, and the first start fails saying which.
set -euo pipefail

PASSWORD_LENGTH_MIN=16
APP_ROLE=vledger
APP_DATABASE=vledger

refuse() {
    echo "primary-init.sh: $*" >&2
    exit 1
}

check_password() {
    local name="$1" value="$2"
    [[ -n "$value" ]] || refuse "$name is not set (copy .env.example to .env and fill it in)"
    [[ "$value" != change-me* ]] || refuse "$name is still the .env.example placeholder"
    ((${#value} >= PASSWORD_LENGTH_MIN)) ||
        refuse "$name is shorter than $PASSWORD_LENGTH_MIN characters"
}

check_password POSTGRES_PASSWORD "${POSTGRES_PASSWORD:-}"
check_password VLEDGER_DB_PASSWORD "${VLEDGER_DB_PASSWORD:-}"
check_password VLEDGER_REPLICATION_PASSWORD "${VLEDGER_REPLICATION_PASSWORD:-}"
[[ "$VLEDGER_DB_PASSWORD" =~ ^[A-Za-z0-9._~-]+$ ]] ||
    refuse "VLEDGER_DB_PASSWORD may hold only A-Z a-z 0-9 . _ ~ - (it goes into URLs)"
: "${REPLICATION_USER:?}" "${REPLICATION_SLOT:?}" "${PGDATA:?}"

# psql's :"name" and :'value' quote what the environment gave (an identifier, a literal).
psql -v ON_ERROR_STOP=1 -X --no-password --username "${POSTGRES_USER:-postgres}" \
    --dbname postgres \
    -v app_role="$APP_ROLE" -v app_database="$APP_DATABASE" \
    -v app_password="$VLEDGER_DB_PASSWORD" \
    -v replication_role="$REPLICATION_USER" \
    -v replication_password="$VLEDGER_REPLICATION_PASSWORD" \
    -v replication_slot="$REPLICATION_SLOT" <<'SQL'
CREATE ROLE :"app_role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    PASSWORD :'app_password';
CREATE DATABASE :"app_database" OWNER :"app_role";
REVOKE ALL ON DATABASE :"app_database" FROM PUBLIC;
CREATE ROLE :"replication_role" LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE
    PASSWORD :'replication_password';
SELECT pg_create_physical_replication_slot(:'replication_slot');
SQL

echo "host replication $REPLICATION_USER all scram-sha-256" >>"$PGDATA/pg_hba.conf"
echo "primary-init.sh: roles $APP_ROLE and $REPLICATION_USER, database $APP_DATABASE," \
    "slot $REPLICATION_SLOT made"
