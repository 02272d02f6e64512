-- The demo database. Rerunnable: scripts/run.sh applies it on every run.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS omendb;

-- The sensors example grows here as features land: today a heap table with a
-- btree index; the alex index and omen_columnar storage replace them.
CREATE TABLE IF NOT EXISTS sensor_readings (
    sensor_id  int         NOT NULL,
    ts         timestamptz NOT NULL,
    reading    float8      NOT NULL
);
CREATE INDEX IF NOT EXISTS sensor_readings_ts ON sensor_readings (ts);
INSERT INTO sensor_readings
SELECT s, timestamptz '2026-01-01' + make_interval(secs => n * 10), 20 + 5 * sin(n / 100.0) + s
FROM generate_series(1, 10) s, generate_series(0, 999) n
WHERE NOT EXISTS (SELECT 1 FROM sensor_readings);
ANALYZE sensor_readings;
