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
load_point_tables "$ROWS"

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
demo_sql -c "SELECT * FROM omendb.cache_stats" || true
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
