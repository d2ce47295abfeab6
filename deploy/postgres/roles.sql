-- oee-stream: a migration role and a least-privilege runtime role (docs/operations.md,
-- "A least-privilege database role"). Run once as a superuser or database owner, connected
-- to the oee-stream database, BEFORE the first start:
--
--   psql -d oee -f deploy/postgres/roles.sql
--   psql -d oee -c '\password oee_migrate'   -- then the same for oee_runtime
--
-- oee_migrate owns the tables: oee-stream started with it creates them (and applies the
-- migrations of later versions). oee_runtime is what the service runs as day to day: it can
-- read and write rows but not create, alter, drop or truncate anything.

CREATE ROLE oee_migrate LOGIN;
CREATE ROLE oee_runtime LOGIN;

-- PostgreSQL 15 already denies CREATE on `public` to everyone else; older versions do not.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO oee_migrate;
GRANT USAGE ON SCHEMA public TO oee_runtime;
