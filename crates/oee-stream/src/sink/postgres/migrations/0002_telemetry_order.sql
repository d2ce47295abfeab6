-- oee-stream schema version 2: what the OEE engine needs to be rebuilt from `telemetry` after a
-- restart (docs/reliability.md): each sample's order among samples of the same time and its
-- integer width (a counter's rollover). Nullable, no default: rows written by version 1 keep
-- NULL, and adding the columns rewrites nothing. One column per statement, without constraints:
-- the form TimescaleDB (2.1 and later) allows on a hypertable with compression enabled.

ALTER TABLE telemetry ADD COLUMN order_key bigint;
ALTER TABLE telemetry ADD COLUMN int_bits smallint;
