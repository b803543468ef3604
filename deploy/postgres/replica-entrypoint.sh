#!/usr/bin/env bash
# The compose replica's entrypoint, run as the postgres user: on an empty data folder, a
# base backup of the primary through the slot its first start made (pg_basebackup -R
# writes standby.signal and primary_conninfo, so the server comes up as a hot standby that
# streams from the primary); then the server itself, in recovery for good. Its arguments
# go to postgres.
#
# Environment: PGDATA, PRIMARY_HOST, PRIMARY_PORT (5432), REPLICATION_USER,
# REPLICATION_SLOT, PGPASSWORD (the replication role's), PRIMARY_WAIT_S (how long to wait
# for the primary to answer before giving up, default 120).
set -euo pipefail

: "${PGDATA:?}" "${PRIMARY_HOST:?}" "${REPLICATION_USER:?}" "${REPLICATION_SLOT:?}"
: "${PGPASSWORD:?the password of the replication role}"
PRIMARY_PORT="${PRIMARY_PORT:-5432}"
PRIMARY_WAIT_S="${PRIMARY_WAIT_S:-120}"

say() {
    echo "replica-entrypoint.sh: $*" >&2
}

wait_for_primary() {
    local waited_s=0
    until pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT"; do
        if ((waited_s >= PRIMARY_WAIT_S)); then
            say "the primary $PRIMARY_HOST:$PRIMARY_PORT did not answer in ${PRIMARY_WAIT_S}s"
            exit 1
        fi
        sleep 1
        waited_s=$((waited_s + 1))
    done
}

make_standby() {
    mkdir -p "$PGDATA"
    if [[ -n "$(ls -A "$PGDATA")" ]]; then
        say "$PGDATA is neither empty nor a PostgreSQL data folder: refusing to overwrite it"
        exit 1
    fi
    chmod 0700 "$PGDATA"
    wait_for_primary
    say "base backup of $PRIMARY_HOST:$PRIMARY_PORT through slot $REPLICATION_SLOT"
    pg_basebackup --host="$PRIMARY_HOST" --port="$PRIMARY_PORT" \
        --username="$REPLICATION_USER" --no-password --pgdata="$PGDATA" \
        --wal-method=stream --slot="$REPLICATION_SLOT" --write-recovery-conf \
        --checkpoint=fast
}

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    make_standby
fi
# A volume may come with a wider mode than the server accepts.
chmod 0700 "$PGDATA"
exec postgres -D "$PGDATA" "$@"
