-- The demo database. Rerunnable: scripts/run.sh applies it on every run.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS omendb;
-- A demo database made by an earlier version: bring its catalog forward.
ALTER EXTENSION omendb UPDATE;

-- The sensors example: readings indexed by time with the alex learned index.
CREATE TABLE IF NOT EXISTS sensor_readings (
    sensor_id  int         NOT NULL,
    ts         timestamptz NOT NULL,
    reading    float8      NOT NULL
);
DROP INDEX IF EXISTS sensor_readings_ts;  -- the btree of earlier demos
CREATE INDEX IF NOT EXISTS sensor_readings_ts_alex ON sensor_readings USING alex (ts);
INSERT INTO sensor_readings
SELECT s, timestamptz '2026-01-01' + make_interval(secs => n * 10), 20 + 5 * sin(n / 100.0) + s
FROM generate_series(1, 10) s, generate_series(0, 9999) n
WHERE NOT EXISTS (SELECT 1 FROM sensor_readings);
ANALYZE sensor_readings;

-- The design's sensors table: columnar storage, and a learned index as its
-- key. PostgreSQL 15 wants btree for PRIMARY KEY, so the key is a NOT NULL
-- column with a unique alex index (duplicates fail with 23505, ON CONFLICT
-- works).
CREATE TABLE IF NOT EXISTS sensors (
    ts          bigint NOT NULL,
    sensor_id   bigint,
    temperature double precision,
    status      text
) USING omen_columnar;
CREATE UNIQUE INDEX IF NOT EXISTS sensors_ts ON sensors USING alex (ts);
INSERT INTO sensors
SELECT 1767225600000 + n * 100, n % 50, 20 + 5 * sin(n / 1000.0) + (n % 50) / 10.0,
       CASE WHEN n % 997 = 0 THEN 'alarm' ELSE 'ok' END
FROM generate_series(0, 299999) n
WHERE NOT EXISTS (SELECT 1 FROM sensors);
ANALYZE sensors;
