#!/usr/bin/env bash
# Interleaved A/B of one boolean setting on the TPC-H omen_columnar tables
# that scripts/bench-tpch.sh loads into the demo database: for each query, a
# warm-up with the setting on and off, then RUNS pairs alternating on / off
# in one session; prints the medians and their ratio (on / off) per query and
# the geomean. The demo server must be running (scripts/run.sh).
#   scripts/bench-setting-ab.sh omendb.datafusion_statistics [RUNS] [q01 q02 ...]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

setting="${1:?usage: $0 SETTING [RUNS] [QUERY...]}"
shift
runs=5
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then runs="$1"; shift; fi
queries=("$@")
[ "${#queries[@]}" -gt 0 ] || queries=($(cd "$REPO_DIR/pg_test/tpch" && ls q*.sql | sed 's/\.sql$//'))

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for q in "${queries[@]}"; do
    sql=$(sed 's/{S}/_c/g' "$REPO_DIR/pg_test/tpch/$q.sql")
    {
        echo '\timing on'
        for i in $(seq 0 "$runs"); do
            printf 'SET %s = on;\n%s\nSET %s = off;\n%s\n' "$setting" "$sql" "$setting" "$sql"
        done
    } | demo_sql -o /dev/null | grep -o 'Time: [0-9.]*' | awk '{print $2}' |
        python3 -c "
import statistics as st, sys
t = [float(x) for x in sys.stdin][1::2][2:]  # query times, without the warm-ups
on, off = st.median(t[0::2]), st.median(t[1::2])
print(f'$q on {on:.1f} off {off:.1f} ratio {on / off:.2f}')" | tee -a "$results"
done
awk '{s += log($7); a += log($3); b += log($5)}
    END {printf "geomean on %.1f off %.1f ratio %.3f\n", exp(a/NR), exp(b/NR), exp(s/NR)}' "$results"
