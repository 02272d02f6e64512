#!/usr/bin/env bash
# omen_columnar scans with the shared cache off, cold and warm, against heap,
# through PostgreSQL's row executor and through DataFusion, on TPC-H
# lineitem at scale factor ${TPCH_SF:-1}: `sqlbench scancache`. Starts the
# demo cluster (scripts/run.sh, release build) with shared_buffers
# ${OMENDB_SHARED_BUFFERS:-4GB} and omendb.cache_size ${OMENDB_CACHE_SIZE:-4GB}
# (the decoded columns of lineitem fit), loading lineitem first as
# scripts/bench-columnar.sh does if the tables are missing.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SF="${TPCH_SF:-1}"
CSV="$(tpch_lineitem_csv "$SF")"
OMENDB_SHARED_BUFFERS="${OMENDB_SHARED_BUFFERS:-4GB}" OMENDB_CACHE_SIZE="${OMENDB_CACHE_SIZE:-4GB}" \
    "$REPO_DIR/scripts/run.sh" >/dev/null
(cd "$REPO_DIR" && cargo run --release -q -p omendb-bench --bin sqlbench -- scancache \
    --lineitem "$CSV" --runs "${BENCH_RUNS:-5}")
