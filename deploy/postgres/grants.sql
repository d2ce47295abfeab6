-- oee-stream: the rights of the runtime role (docs/operations.md, "A least-privilege database
-- role"). Run as oee_migrate (the owner of the tables) or a superuser AFTER oee-stream has
-- created the schema with the oee_migrate role, and again after an upgrade that adds tables:
--
--   psql -d oee -U oee_migrate -f deploy/postgres/grants.sql
--
-- Exactly what the sink does: COPY/INSERT telemetry and events, upsert OEE windows and fault
-- instances, record and prune its batch ledger, read the migration ledger at start-up.

GRANT SELECT ON schema_migrations TO oee_runtime;
GRANT SELECT, INSERT ON telemetry, events TO oee_runtime;
GRANT SELECT, INSERT, UPDATE ON oee_windows, faults TO oee_runtime;
GRANT SELECT, INSERT, DELETE ON sink_batches TO oee_runtime;
