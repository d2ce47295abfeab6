-- oee-stream schema version 2: what the OEE engine needs to be rebuilt from `telemetry` after a
-- restart (docs/reliability.md): each sample's order among samples of the same time and its
-- integer width (a counter's rollover). Nullable, no default: rows written by version 1 keep
-- NULL, and adding the columns rewrites nothing.

ALTER TABLE telemetry ADD COLUMN order_key bigint, ADD COLUMN int_bits smallint;
