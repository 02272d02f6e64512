#!/usr/bin/env bash
# Backend memory with ${MEM_CLIENTS:-50} connections. Each workload runs
# under pgbench with that many clients (prepared statements, 2 threads) for
# ${MEM_SECONDS:-20} s; 4 s before its end, every pgbench backend's private
# memory is read: RssAnon in /proc/<pid>/status, its anonymous resident pages
# (what the backend itself allocated or wrote; shared buffers and omendb's
# shared cache are shared memory and not counted). Workloads, on the sensor
# readings of scripts/bench-point.sh (${POINT_ROWS:-1000000} rows, loaded if
# missing): point lookups by key on heap and on omen_columnar with both
# caches (the default), the shared one only, and none; and whole-table
# aggregates on heap, on omen_columnar in PostgreSQL's executor and through
# DataFusion. Starts the demo cluster (scripts/run.sh: release build,
# preloaded, default cache sizes). Prints one markdown table.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ROWS="${POINT_ROWS:-1000000}"
CLIENTS="${MEM_CLIENTS:-50}"
SECONDS_PER_RUN="${MEM_SECONDS:-20}"
[ "$SECONDS_PER_RUN" -ge 6 ] || die "MEM_SECONDS must be at least 6"
"$REPO_DIR/scripts/run.sh" >/dev/null
PORT="${OMENDB_PORT:-5499}"
have="$(demo_sql -Atc "SELECT count(*) FROM point_c" 2>/dev/null || true)"
[ "$have" = "$ROWS" ] || load_point_tables "$ROWS"

work="$(mktemp -d)"
chmod 755 "$work"
point='\set k random(1, %s)\nSELECT * FROM point_%s WHERE ts = :k;\n'
printf "$point" "$ROWS" h > "$work/point_h.sql"
printf "$point" "$ROWS" c > "$work/point_c.sql"
for t in h c; do
    echo "SELECT sensor_id, avg(temperature), count(status) FROM point_$t GROUP BY sensor_id;" \
        > "$work/scan_$t.sql"
done
chmod 644 "$work"/*.sql

run() { # label script PGOPTIONS
    local log="$work/pgbench.log"
    as_postgres env PGOPTIONS="$3" "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PORT" -n -M prepared \
        -T "$SECONDS_PER_RUN" -c "$CLIENTS" -j 2 -f "$work/$2.sql" omendb_demo > "$log" 2>&1 &
    local bench=$!
    sleep $((SECONDS_PER_RUN - 4))
    local pids kb=()
    pids="$(demo_sql -Atc "SELECT pid FROM pg_stat_activity
        WHERE application_name = 'pgbench' AND backend_type = 'client backend'")"
    # One reader for all (under this load a process per backend takes
    # seconds to schedule).
    read -r -a kb <<< "$(cd /proc && awk '/^RssAnon:/ { printf "%s ", $2 }' \
        $(printf '%s/status ' $pids) 2>/dev/null)"
    wait "$bench" || { cat "$log" >&2; die "pgbench failed for $1"; }
    [ "${#kb[@]}" -eq "$CLIENTS" ] || die "$1: read ${#kb[@]} of $CLIENTS backends"
    # The next workload's sample must not find these backends still exiting.
    while [ "$(demo_sql -Atc "SELECT count(*) FROM pg_stat_activity
        WHERE application_name = 'pgbench'")" != 0 ]; do sleep 0.2; done
    printf '%s\t%s\t%s\n' "$1" "$(awk '/^tps/ { print $3 }' "$log")" "${kb[*]}" >> "$work/results"
}

log "$CLIENTS clients, $SECONDS_PER_RUN s per workload"
run "point lookups, heap" point_h ""
run "point lookups, omen_columnar, both caches" point_c ""
run "point lookups, omen_columnar, shared cache only" point_c "-c omendb.local_cache_size=0"
run "point lookups, omen_columnar, no cache" point_c "-c omendb.enable_cache=off"
run "GROUP BY sensor_id, heap" scan_h "-c max_parallel_workers_per_gather=0"
run "GROUP BY sensor_id, omen_columnar, PostgreSQL executor" scan_c \
    "-c max_parallel_workers_per_gather=0 -c omendb.datafusion=off"
run "GROUP BY sensor_id, omen_columnar, DataFusion" scan_c "-c omendb.datafusion=force"

settings="$(demo_sql -Atc "SELECT string_agg(name || ' = ' || current_setting(name), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('omendb.cache_size', 'omendb.local_cache_size', 'shared_buffers', 'work_mem', 'omendb.datafusion_threads', 'omendb.datafusion_memory_limit')")"
python3 - "$work/results" "$CLIENTS" "$settings" <<'PY'
import statistics, sys
path, clients, settings = sys.argv[1], sys.argv[2], sys.argv[3]
print(f"## Backend memory with {clients} connections ({settings})\n")
print("| workload | tps | backends | RssAnon median MB | max MB | total MB |")
print("|---|---:|---:|---:|---:|---:|")
for line in open(path):
    label, tps, kb = line.rstrip("\n").split("\t")
    mb = [int(k) / 1024 for k in kb.split()] or [0.0]
    print(f"| {label} | {float(tps or 0):.0f} | {len(kb.split())} | {statistics.median(mb):.1f} "
          f"| {max(mb):.1f} | {sum(mb):.0f} |")
PY
rm -rf "$work"
