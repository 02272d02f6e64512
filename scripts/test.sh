#!/usr/bin/env bash
# Run every test layer: pure-crate cargo tests, in-server pgrx tests,
# the pg_regress suite, and the system tests (crash, replica).
# Installs whatever is missing first. Idempotent; safe to run twice in a row.
#
#   scripts/test.sh            all layers
#   scripts/test.sh crates     only some: crates, pgrx, regress, system
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

LAYERS=("$@")
[ "${#LAYERS[@]}" -gt 0 ] || LAYERS=(crates pgrx regress system)
WORK_DIR="${OMENDB_TEST_DIR:-/var/tmp/omendb-test}"
passed=0
failed=0
failed_names=()

layer_crates() {
    # Release: the property tests run far more cases per second.
    (cd "$REPO_DIR" && cargo test --release -p omendb-alex -p omendb-cache -p omendb-columnar -p omendb-bench)
}

layer_pgrx() {
    # pgrx initdb's a cluster in --pgdata as --runas; it must start empty.
    fresh_postgres_dir "$WORK_DIR/pgrx"
    (cd "$REPO_DIR" && cargo pgrx test pg15 --runas postgres --pgdata "$WORK_DIR/pgrx/data")
}

layer_regress() {
    # `cargo pgrx test` installs a test build; put the plain one back.
    install_extension debug
    local out="$WORK_DIR/regress"
    fresh_postgres_dir "$out"
    # pg_regress runs initdb, which refuses root: run it as postgres, on a
    # temporary instance configured like production (preloaded) plus
    # wal_consistency_checking, so every record's redo is checked.
    # RUST_BACKTRACE is set on purpose: pgrx would put a Rust backtrace into
    # the DETAIL of every error passing through omendb, and omendb must keep
    # it out (a backtrace in any error is a diff).
    if ! as_postgres env RUST_BACKTRACE=1 "$("$PG_CONFIG" --pgxs | xargs dirname)/../test/regress/pg_regress" \
        --temp-instance="$out/instance" \
        --temp-config="$REPO_DIR/pg_test/regress/regress.conf" \
        --bindir="$PG_BIN" \
        --inputdir="$REPO_DIR/pg_test/regress" \
        --outputdir="$out" \
        --port="${OMENDB_REGRESS_PORT:-5498}" \
        --schedule="$REPO_DIR/pg_test/regress/schedule"; then
        cat "$out/regression.diffs" >&2 || true
        return 1
    fi
    layer_isolation
}

# Concurrency specs (PostgreSQL's isolation tester). Each alex-*.spec also
# runs with its alex indexes replaced by btree, against the same expected
# output: btree is the oracle for what concurrent sessions see.
layer_isolation() {
    local out="$WORK_DIR/isolation"
    fresh_postgres_dir "$out"
    mkdir -p "$out/input/specs" "$out/input/expected"
    local tests=()
    for spec in "$REPO_DIR"/pg_test/isolation/specs/*.spec; do
        local name
        name=$(basename "$spec" .spec)
        cp "$spec" "$out/input/specs/"
        cp "$REPO_DIR/pg_test/isolation/expected/$name.out" "$out/input/expected/"
        tests+=("$name")
        if [[ $name == alex-* ]]; then
            sed 's/USING alex/USING btree/g' "$spec" > "$out/input/specs/$name-btree.spec"
            cp "$REPO_DIR/pg_test/isolation/expected/$name.out" "$out/input/expected/$name-btree.out"
            tests+=("$name-btree")
        fi
    done
    chown -R postgres:postgres "$out"
    if ! as_postgres "$("$PG_CONFIG" --pgxs | xargs dirname)/../test/isolation/pg_isolation_regress" \
        --temp-instance="$out/instance" \
        --temp-config="$REPO_DIR/pg_test/regress/regress.conf" \
        --bindir="$PG_BIN" \
        --inputdir="$out/input" \
        --outputdir="$out" \
        --port="${OMENDB_REGRESS_PORT:-5498}" \
        "${tests[@]}"; then
        cat "$out/output_iso/regression.diffs" "$out/regression.diffs" >&2 2>/dev/null || true
        return 1
    fi
}

layer_system() {
    install_extension debug
    rm -rf /var/tmp/omendb-systest
    (cd "$REPO_DIR" && cargo test --release -p omendb-systest -- --test-threads=1)
}

ensure_deps
for layer in "${LAYERS[@]}"; do
    declare -F "layer_$layer" >/dev/null || die "unknown layer $layer (crates, pgrx, regress, system)"
    log "test layer: $layer"
    start=$SECONDS
    if "layer_$layer"; then
        passed=$((passed + 1))
        log "layer $layer passed in $((SECONDS - start)) s"
    else
        failed=$((failed + 1))
        failed_names+=("$layer")
        log "layer $layer FAILED after $((SECONDS - start)) s"
    fi
done
[ "$failed" = 0 ] || log "failed layers: ${failed_names[*]}"
echo "layers: $passed passed, $failed failed"
[ "$failed" = 0 ]
