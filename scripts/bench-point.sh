#!/usr/bin/env bash
# Point lookups by key through a btree index: heap vs omen_columnar with both
# caches (default), with the shared one only (omendb.local_cache_size = 0:
# every fetch copies its page out of shared memory) and with none
# (omendb.enable_cache = off), at ${POINT_CLIENTS:-1 2 8} clients.
# Starts the demo cluster (scripts/run.sh, release build), loads the design's
# sensors readings (${POINT_ROWS:-1000000} rows, one compacted omen_columnar
# copy and one heap copy, a btree on ts each) and runs pgbench, one client,
# prepared statements, ${POINT_SECONDS:-20} s per run, the kinds
# interleaved, ${BENCH_RUNS:-3} rounds; prints tps and latency per run and
# the medians.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ROWS="${POINT_ROWS:-1000000}"
SECONDS_PER_RUN="${POINT_SECONDS:-20}"
RUNS="${BENCH_RUNS:-3}"
CLIENTS="${POINT_CLIENTS:-1 2 8}"
"$REPO_DIR/scripts/run.sh" >/dev/null
PORT="${OMENDB_PORT:-5499}"
DB=omendb_demo
sql() { as_postgres psql -X -q -h 127.0.0.1 -p "$PORT" -d "$DB" -v ON_ERROR_STOP=1 "$@"; }

log "loading $ROWS readings into point_c (omen_columnar) and point_h (heap)"
sql -c "DROP TABLE IF EXISTS point_c, point_h"
sql -c "CREATE TABLE point_c (ts bigint NOT NULL, sensor_id bigint, temperature float8, status text) USING omen_columnar"
sql -c "INSERT INTO point_c SELECT g, g % 100, 20 + (g % 1000) / 100.0, CASE WHEN g % 97 = 0 THEN 'alert' ELSE 'ok' END FROM generate_series(1, $ROWS) g"
sql -c "CREATE TABLE point_h AS SELECT * FROM point_c"
sql -c "CREATE INDEX ON point_c (ts)" -c "CREATE INDEX ON point_h (ts)"
sql -c "SELECT * FROM omendb.columnar_compact('point_c')" >/dev/null
sql -c "VACUUM ANALYZE point_h" -c "VACUUM ANALYZE point_c"

work="$(mktemp -d)"
chmod 755 "$work"
for t in c h; do
    printf '\\set k random(1, %s)\nSELECT * FROM point_%s WHERE ts = :k;\n' "$ROWS" "$t" > "$work/$t.sql"
done
chmod 644 "$work"/*.sql
run() { # kind clients script options
    as_postgres env PGOPTIONS="$4" "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PORT" -n -M prepared \
        -T "$SECONDS_PER_RUN" -c "$2" -j "$2" -f "$work/$3.sql" "$DB" 2>&1 | awk -v kind="$1" -v c="$2" '
        /^latency average/ { lat = $4 } /^tps/ { tps = $3 }
        END { printf "%s %s %.1f %.3f\n", kind, c, tps, lat }'
}
results="$work/results"
# (run.sh restarted the server: the shared cache starts empty.)
for i in $(seq "$RUNS"); do
    for c in $CLIENTS; do
        run heap "$c" h "" | tee -a "$results"
        run columnar_cache "$c" c "" | tee -a "$results"
        run columnar_shared_only "$c" c "-c omendb.local_cache_size=0" | tee -a "$results"
        run columnar_no_cache "$c" c "-c omendb.enable_cache=off" | tee -a "$results"
    done
done
sql -c "SELECT * FROM omendb.cache_stats" || true
echo
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
kinds = ["heap", "columnar_cache", "columnar_shared_only", "columnar_no_cache"]
clients = sorted({int(r[1]) for r in rows})
print("| kind | clients | tps (median) | latency ms (median) | tps / heap |")
print("|---|---:|---:|---:|---:|")
for c in clients:
    med = lambda k, i: statistics.median(float(r[i]) for r in rows if r[0] == k and int(r[1]) == c)
    for k in kinds:
        print(f"| {k} | {c} | {med(k, 2):.0f} | {med(k, 3):.3f} | {med(k, 2) / med('heap', 2):.2f} |")
PY
rm -rf "$work"
