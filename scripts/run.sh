#!/usr/bin/env bash
# Install what is missing, build and install omendb (release) into the system
# PostgreSQL 15, (re)start the demo cluster with omendb preloaded, create the
# extension in the demo database and print how to connect. Idempotent.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEMO_DIR="${OMENDB_DEMO_DIR:-/var/lib/omendb/demo}"
DEMO_PORT="${OMENDB_PORT:-5499}"
DEMO_DB=omendb_demo
# Benchmarks want the data cached: OMENDB_SHARED_BUFFERS=2GB scripts/run.sh
SHARED_BUFFERS="${OMENDB_SHARED_BUFFERS:-256MB}"
# omendb's shared cache of decoded data (omendb.cache_size; default 128MB).
CACHE_SIZE="${OMENDB_CACHE_SIZE:-128MB}"

ensure_deps
install_extension release

if [ ! -f "$DEMO_DIR/PG_VERSION" ]; then
    log "creating the demo cluster in $DEMO_DIR"
    fresh_postgres_dir "$DEMO_DIR"
    as_postgres "$PG_BIN/initdb" -D "$DEMO_DIR" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
fi
# Our settings live in one file that each run rewrites, so a rerun with new
# settings does not need a new cluster.
cat > "$DEMO_DIR/omendb.conf" <<CONF
port = $DEMO_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '/tmp'
shared_preload_libraries = 'omendb'
shared_buffers = '$SHARED_BUFFERS'
omendb.cache_size = '$CACHE_SIZE'
CONF
chown postgres:postgres "$DEMO_DIR/omendb.conf"
grep -q "^include_if_exists = 'omendb.conf'" "$DEMO_DIR/postgresql.conf" ||
    echo "include_if_exists = 'omendb.conf'" >> "$DEMO_DIR/postgresql.conf"

# Restart so the server loads the library just installed.
if as_postgres "$PG_BIN/pg_ctl" -D "$DEMO_DIR" status >/dev/null 2>&1; then
    log "restarting the demo cluster"
    as_postgres "$PG_BIN/pg_ctl" -D "$DEMO_DIR" -w -m fast stop >/dev/null
fi
as_postgres "$PG_BIN/pg_ctl" -D "$DEMO_DIR" -l "$DEMO_DIR/server.log" -w -t 60 start >/dev/null ||
    { tail -20 "$DEMO_DIR/server.log" >&2; die "the demo cluster did not start (log above)"; }

PSQL=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$DEMO_PORT" -U postgres)
"${PSQL[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DEMO_DB'" | grep -q 1 ||
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE $DEMO_DB"
"${PSQL[@]}" -d "$DEMO_DB" -f "$REPO_DIR/scripts/demo.sql"

cat <<MSG

omendb is running: $("${PSQL[@]}" -d "$DEMO_DB" -tAc "SELECT omendb.version()")
  data directory : $DEMO_DIR (log: $DEMO_DIR/server.log)
  connect        : psql -h 127.0.0.1 -p $DEMO_PORT -U postgres $DEMO_DB
  connection URI : postgresql://postgres@127.0.0.1:$DEMO_PORT/$DEMO_DB
  stop           : runuser -u postgres -- $PG_BIN/pg_ctl -D $DEMO_DIR stop
MSG
