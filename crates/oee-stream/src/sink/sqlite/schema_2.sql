-- oee-stream SQLite schema version 2: each telemetry sample's order among samples of the same
-- time and its integer width, for rebuilding the OEE engine after a restart (as PostgreSQL's
-- migration 0002).

ALTER TABLE telemetry ADD COLUMN order_key INTEGER;
ALTER TABLE telemetry ADD COLUMN int_bits INTEGER;
