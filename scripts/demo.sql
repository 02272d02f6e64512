-- The demo database. Rerunnable: scripts/run.sh applies it on every run.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS omendb;

-- The sensors example: readings indexed by time with the alex learned index.
-- (omen_columnar storage for the readings comes with its issue.)
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
