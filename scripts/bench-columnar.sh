#!/usr/bin/env bash
# omen_columnar vs heap on TPC-H lineitem, side by side on the demo server.
# Installs tpchgen-cli (PyPI), generates lineitem at scale factor
# ${TPCH_SF:-1} once, starts the demo cluster (scripts/run.sh, release build)
# and runs `sqlbench columnar`. Results go to stdout and the plot to
# benches/results/columnar-vs-heap-sf${TPCH_SF}.svg.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SF="${TPCH_SF:-1}"
CSV="$(tpch_lineitem_csv "$SF")"
OMENDB_SHARED_BUFFERS="${OMENDB_SHARED_BUFFERS:-4GB}" "$REPO_DIR/scripts/run.sh" >/dev/null
(cd "$REPO_DIR" && cargo run --release -q -p omendb-bench --bin sqlbench -- columnar \
    --lineitem "$CSV" --runs "${BENCH_RUNS:-3}" \
    --plot "$REPO_DIR/benches/results/columnar-vs-heap-sf$SF.svg")
