//! Schema creation and migration, and the TimescaleDB branch.
//!
//! Migrations are SQL files embedded with `include_str!`, applied in order under a session
//! advisory lock (`pg_advisory_lock`), each in its own transaction together with its row in
//! `schema_migrations`. Running them twice, or from two instances at once, applies each file
//! exactly once: the second instance waits for the lock and then finds nothing to do.

use tokio_postgres::Client;

/// `pg_advisory_lock` key of the migration lock ("oee-stream" in ASCII, truncated).
pub const MIGRATION_LOCK_KEY: i64 = 0x6f65_652d_7374_7265;

/// (version, name, SQL)
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "tables", include_str!("migrations/0001_tables.sql")),
    (
        2,
        "telemetry_order",
        include_str!("migrations/0002_telemetry_order.sql"),
    ),
];

/// What [`migrate`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this call.
    pub applied: Vec<i32>,
    pub timescale: Option<TimescaleInfo>,
    /// TimescaleDB statements that failed (the feature is then off; plain tables work).
    pub timescale_warnings: Vec<String>,
}

/// The TimescaleDB found on the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimescaleInfo {
    pub version: (u32, u32),
    /// `timescaledb.license` is `timescale` (compression and retention policies available).
    pub tsl: bool,
}

/// Bring the schema to the latest version. Idempotent and safe to run concurrently.
pub async fn migrate(
    client: &mut Client,
    compress_after_days: u32,
    retention_days: u32,
) -> Result<MigrationReport, tokio_postgres::Error> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let r = migrate_locked(client, compress_after_days, retention_days).await;
    // Unlock even when a migration failed (the session may also just be gone).
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    r
}

async fn migrate_locked(
    client: &mut Client,
    compress_after_days: u32,
    retention_days: u32,
) -> Result<MigrationReport, tokio_postgres::Error> {
    // No DDL at all once the schema is current: a runtime role without CREATE rights (see
    // docs/operations.md, "A least-privilege database role") may start the service. Even
    // `CREATE TABLE IF NOT EXISTS` needs CREATE on the schema.
    let ledger_exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    if !ledger_exists {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version    integer     PRIMARY KEY,
                     name       text        NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 )",
            )
            .await?;
    }
    let done: Vec<i32> = client
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut report = MigrationReport::default();
    for (version, name, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version, name, "applied database migration");
        report.applied.push(*version);
    }
    report.timescale = detect_timescale(client).await?;
    if let Some(ts) = &report.timescale {
        for stmt in timescale_statements(ts, compress_after_days, retention_days) {
            if let Err(e) = client.batch_execute(&stmt).await {
                let msg = format!("{stmt}: {}", db_message(&e));
                tracing::warn!(statement = %stmt, error = %db_message(&e), "TimescaleDB statement failed; continuing without it");
                report.timescale_warnings.push(msg);
            }
        }
    }
    Ok(report)
}

/// Whether TimescaleDB is installed in this database (or installable, in which case it is
/// created). `None` = plain PostgreSQL.
async fn detect_timescale(client: &Client) -> Result<Option<TimescaleInfo>, tokio_postgres::Error> {
    let installed = client
        .query_opt(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'",
            &[],
        )
        .await?
        .map(|r| r.get::<_, String>(0));
    let version = match installed {
        Some(v) => v,
        None => {
            let available = client
                .query_opt(
                    "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'",
                    &[],
                )
                .await?;
            if available.is_none() {
                return Ok(None);
            }
            // Needs shared_preload_libraries and the right privileges; plain tables otherwise.
            if let Err(e) = client
                .batch_execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                .await
            {
                tracing::warn!(error = %db_message(&e), "TimescaleDB is available but cannot be created; using plain tables");
                return Ok(None);
            }
            match client
                .query_opt(
                    "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'",
                    &[],
                )
                .await?
            {
                Some(r) => r.get(0),
                None => return Ok(None),
            }
        }
    };
    let license: Option<String> = client
        .query_one("SELECT current_setting('timescaledb.license', true)", &[])
        .await?
        .get(0);
    Ok(Some(TimescaleInfo {
        version: parse_version(&version),
        tsl: license.as_deref() == Some("timescale"),
    }))
}

fn parse_version(v: &str) -> (u32, u32) {
    let mut it = v.split('.').map(|p| {
        p.chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse()
            .unwrap_or(0)
    });
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// The statements that turn `telemetry` and `events` into hypertables with policies, for the
/// TimescaleDB found. Each is idempotent (`if_not_exists`); a failure is logged and skipped.
/// Pure, so the branch that cannot run here is tested on its output.
pub fn timescale_statements(
    ts: &TimescaleInfo,
    compress_after_days: u32,
    retention_days: u32,
) -> Vec<String> {
    let mut out = Vec::new();
    for (table, segment_by) in [("telemetry", "machine_id"), ("events", "event_type")] {
        if ts.version >= (2, 13) {
            out.push(format!(
                "SELECT create_hypertable('{table}', by_range('time', INTERVAL '1 day'), \
                 if_not_exists => TRUE, migrate_data => TRUE)"
            ));
        } else {
            out.push(format!(
                "SELECT create_hypertable('{table}', 'time', chunk_time_interval => INTERVAL '1 day', \
                 if_not_exists => TRUE, migrate_data => TRUE)"
            ));
        }
        if !ts.tsl {
            continue; // Apache-licensed build: no compression or retention policies.
        }
        if compress_after_days > 0 {
            out.push(format!(
                "ALTER TABLE {table} SET (timescaledb.compress, \
                 timescaledb.compress_segmentby = '{segment_by}', \
                 timescaledb.compress_orderby = 'time DESC')"
            ));
            out.push(format!(
                "SELECT add_compression_policy('{table}', INTERVAL '{compress_after_days} days', \
                 if_not_exists => TRUE)"
            ));
        }
        if retention_days > 0 {
            out.push(format!(
                "SELECT add_retention_policy('{table}', INTERVAL '{retention_days} days', \
                 if_not_exists => TRUE)"
            ));
        }
    }
    out
}

pub(crate) fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("2.17.2"), (2, 17));
        assert_eq!(parse_version("2.9.0-dev"), (2, 9));
        assert_eq!(parse_version("garbage"), (0, 0));
    }

    #[test]
    fn timescale_2_13_and_later_use_the_generalized_api_and_tsl_policies() {
        let got = timescale_statements(
            &TimescaleInfo {
                version: (2, 17),
                tsl: true,
            },
            7,
            90,
        );
        let want = [
            "SELECT create_hypertable('telemetry', by_range('time', INTERVAL '1 day'), if_not_exists => TRUE, migrate_data => TRUE)",
            "ALTER TABLE telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = 'machine_id', timescaledb.compress_orderby = 'time DESC')",
            "SELECT add_compression_policy('telemetry', INTERVAL '7 days', if_not_exists => TRUE)",
            "SELECT add_retention_policy('telemetry', INTERVAL '90 days', if_not_exists => TRUE)",
            "SELECT create_hypertable('events', by_range('time', INTERVAL '1 day'), if_not_exists => TRUE, migrate_data => TRUE)",
            "ALTER TABLE events SET (timescaledb.compress, timescaledb.compress_segmentby = 'event_type', timescaledb.compress_orderby = 'time DESC')",
            "SELECT add_compression_policy('events', INTERVAL '7 days', if_not_exists => TRUE)",
            "SELECT add_retention_policy('events', INTERVAL '90 days', if_not_exists => TRUE)",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn older_timescale_uses_the_old_call_and_apache_builds_get_no_policies() {
        let got = timescale_statements(
            &TimescaleInfo {
                version: (2, 11),
                tsl: false,
            },
            7,
            90,
        );
        let want = [
            "SELECT create_hypertable('telemetry', 'time', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE, migrate_data => TRUE)",
            "SELECT create_hypertable('events', 'time', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE, migrate_data => TRUE)",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn zero_days_turn_a_policy_off() {
        let got = timescale_statements(
            &TimescaleInfo {
                version: (2, 13),
                tsl: true,
            },
            0,
            0,
        );
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|s| s.contains("create_hypertable")));
    }
}
