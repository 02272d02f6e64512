#!/usr/bin/env bash
# TPC-H, all 22 queries, on the demo server: heap + btree indexes,
# omen_columnar in PostgreSQL's executor, omen_columnar through the
# OmenDataFusion scan, and standalone DuckDB (PyPI) on the same CSVs with the
# same thread count. Generates the data at scale factor ${TPCH_SF:-1} once
# (tpchgen-cli), starts the demo cluster (scripts/run.sh, release build),
# loads both copies once, and prints the markdown table for the README.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SF="${TPCH_SF:-1}"
DATA_DIR="${OMENDB_TPCH_DIR:-/var/lib/omendb/tpch}/sf$SF-all"
ensure_tpchgen
python3 -c "import duckdb" 2>/dev/null || python3 -m pip install --quiet duckdb
if [ ! -s "$DATA_DIR/lineitem.csv" ]; then
    log "generating TPC-H at scale factor $SF into $DATA_DIR"
    mkdir -p "$DATA_DIR"
    tpchgen-cli csv -s "$SF" --output-dir "$DATA_DIR"
fi
OMENDB_SHARED_BUFFERS="${OMENDB_SHARED_BUFFERS:-4GB}" "$REPO_DIR/scripts/run.sh" >/dev/null
(cd "$REPO_DIR" && cargo run --release -q -p omendb-bench --bin sqlbench -- tpch \
    --tpch-data "$DATA_DIR" --runs "${BENCH_RUNS:-3}" --threads "${BENCH_THREADS:-2}" \
    --dsn "host=127.0.0.1 port=${OMENDB_PORT:-5499} user=postgres dbname=${TPCH_DB:-omendb_demo}")
