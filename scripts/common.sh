# Shared by scripts/run.sh and scripts/test.sh. Source it; do not run it.
# Everything here is idempotent: it installs only what is missing.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_MAJOR=15
PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
PG_CONFIG="${PG_BIN}/pg_config"
PGRX_VERSION=0.18.0
# A warm target dir outside the clone: CI clones afresh each run, and a cold
# build (pgrx + dependencies) takes minutes on 2 cores.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/omendb/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# as_postgres CMD...: PostgreSQL refuses to run as root.
as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ensure_apt_packages() {
    local pkgs=(postgresql-15 postgresql-server-dev-15 libclang-dev clang pkg-config sudo)
    local missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        [ "$(id -u)" = 0 ] || die "missing packages ${missing[*]}; run as root to install them"
        log "installing apt packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # Debian's package starts a "main" cluster on 5432; we never use it.
}

ensure_cargo_pgrx() {
    export PATH="$HOME/.cargo/bin:$PATH"
    if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
        log "installing cargo-pgrx $PGRX_VERSION"
        cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
    fi
    # `pgrx init` is offline when pointed at an existing pg_config.
    local cfg="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
    if ! grep -qs "pg15 = \"$PG_CONFIG\"" "$cfg"; then
        log "cargo pgrx init --pg15 $PG_CONFIG"
        cargo pgrx init --pg15 "$PG_CONFIG"
    fi
}

# tpchgen-cli (PyPI) generates the TPC-H data of the tests and benchmarks.
ensure_tpchgen() {
    if ! command -v tpchgen-cli >/dev/null; then
        log "installing tpchgen-cli from PyPI"
        python3 -m pip install --quiet tpchgen-cli==4.0.0
    fi
}

# TPC-H lineitem at scale factor $1 as CSV, generated once; prints its path.
tpch_lineitem_csv() {
    local dir="${OMENDB_TPCH_DIR:-/var/lib/omendb/tpch}/sf$1"
    ensure_tpchgen
    if [ ! -s "$dir/lineitem.csv" ]; then
        log "generating TPC-H lineitem at scale factor $1 into $dir"
        mkdir -p "$dir"
        tpchgen-cli csv -s "$1" --tables lineitem --output-dir "$dir" >&2
    fi
    chown -R postgres:postgres "$(dirname "$dir")"
    echo "$dir/lineitem.csv"
}

# psql on the demo database (scripts/run.sh's server), as postgres.
demo_sql() {
    as_postgres psql -X -q -h 127.0.0.1 -p "${OMENDB_PORT:-5499}" -d omendb_demo -v ON_ERROR_STOP=1 "$@"
}

# The design's sensor readings, $1 rows, in the demo database: point_c
# (omen_columnar, compacted into one segment) and point_h (heap), a btree on
# ts each (the point-lookup and memory benchmarks).
load_point_tables() {
    local rows="$1"
    log "loading $rows readings into point_c (omen_columnar) and point_h (heap)"
    demo_sql -c "DROP TABLE IF EXISTS point_c, point_h"
    demo_sql -c "CREATE TABLE point_c (ts bigint NOT NULL, sensor_id bigint, temperature float8, status text) USING omen_columnar"
    demo_sql -c "INSERT INTO point_c SELECT g, g % 100, 20 + (g % 1000) / 100.0, CASE WHEN g % 97 = 0 THEN 'alert' ELSE 'ok' END FROM generate_series(1, $rows) g"
    demo_sql -c "CREATE TABLE point_h AS SELECT * FROM point_c"
    demo_sql -c "CREATE INDEX ON point_c (ts)" -c "CREATE INDEX ON point_h (ts)"
    demo_sql -c "SELECT * FROM omendb.columnar_compact('point_c')" >/dev/null
    demo_sql -c "VACUUM ANALYZE point_h" -c "VACUUM ANALYZE point_c"
}

ensure_deps() {
    ensure_apt_packages
    ensure_cargo_pgrx
    ensure_tpchgen
    mkdir -p "$CARGO_TARGET_DIR"
}

# Build and install the extension into the system PostgreSQL 15.
# $1: "release" or "debug".
install_extension() {
    local profile_flag=()
    [ "${1:-release}" = release ] && profile_flag=(--release)
    log "building and installing omendb (${1:-release}) into $("$PG_CONFIG" --pkglibdir)"
    (cd "$REPO_DIR" && cargo pgrx install "${profile_flag[@]}" --pg-config "$PG_CONFIG")
    # Earlier versions' scripts, as an installation that was upgraded keeps
    # them: CREATE EXTENSION omendb VERSION '0.1.0' then UPDATE (the
    # upgrade test). pgrx copies only the upgrade scripts (a--b--c.sql).
    cp "$REPO_DIR"/sql/omendb--0.1.0.sql "$("$PG_CONFIG" --sharedir)/extension/"
}

# A directory the postgres user owns, recreated empty.
fresh_postgres_dir() {
    rm -rf "$1"
    mkdir -p "$1"
    chown postgres:postgres "$1"
}
