-- Primary and foreign-key indexes (btree), as a PostgreSQL user would create them.
CREATE UNIQUE INDEX ON nation{SUFFIX} (n_nationkey);
CREATE UNIQUE INDEX ON region{SUFFIX} (r_regionkey);
CREATE UNIQUE INDEX ON part{SUFFIX} (p_partkey);
CREATE UNIQUE INDEX ON supplier{SUFFIX} (s_suppkey);
CREATE UNIQUE INDEX ON partsupp{SUFFIX} (ps_partkey, ps_suppkey);
CREATE UNIQUE INDEX ON customer{SUFFIX} (c_custkey);
CREATE UNIQUE INDEX ON orders{SUFFIX} (o_orderkey);
CREATE UNIQUE INDEX ON lineitem{SUFFIX} (l_orderkey, l_linenumber);
CREATE INDEX ON nation{SUFFIX} (n_regionkey);
CREATE INDEX ON supplier{SUFFIX} (s_nationkey);
CREATE INDEX ON partsupp{SUFFIX} (ps_suppkey);
CREATE INDEX ON customer{SUFFIX} (c_nationkey);
CREATE INDEX ON orders{SUFFIX} (o_custkey);
CREATE INDEX ON lineitem{SUFFIX} (l_partkey, l_suppkey);
CREATE INDEX ON lineitem{SUFFIX} (l_suppkey);
