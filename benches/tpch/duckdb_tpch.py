"""Standalone DuckDB on the same TPC-H CSVs and queries as sqlbench tpch.

Usage: python3 duckdb_tpch.py DATA_DIR QUERY_DIR RUNS THREADS
Prints one line per query: "qNN <median ms> <rows>".
"""
import statistics
import sys
import time

import duckdb

data, qdir, runs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
con = duckdb.connect()
con.execute(f"SET threads = {threads}")
schema = open(f"{qdir}/schema.sql").read().replace("{SUFFIX}", "").replace("{USING}", "")
schema = "\n".join(l for l in schema.splitlines() if not l.startswith("--"))
for stmt in schema.split(";"):
    if stmt.strip():
        con.execute(stmt)
for t in ["nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem"]:
    con.execute(f"COPY {t} FROM '{data}/{t}.csv' (HEADER true)")
for i in range(1, 23):
    q = open(f"{qdir}/q{i:02}.sql").read().replace("{S}", "")
    rows = len(con.execute(q).fetchall())  # warm-up
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        con.execute(q).fetchall()
        samples.append((time.perf_counter() - t) * 1000)
    print(f"q{i:02} {statistics.median(samples):.3f} {rows}", flush=True)
