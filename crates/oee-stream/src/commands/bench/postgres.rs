//! `bench --sink postgres`: the databases the bench creates and drops, the poller that sees
//! every batch's commit, what is read from the database after the run (row counts, latency
//! from metric timestamp to commit), and the `psql \copy` reference.
//!
//! How commit time is measured: the sink writes one `sink_batches` ledger row per batch in the
//! batch's own transaction, so the ledger row and the batch's telemetry rows carry the same
//! transaction id (`xmin`). Every 10 ms the poller asks for ledger rows it has not seen yet; a
//! row is visible only once its transaction has committed, so the wall clock when that query
//! returned is an upper bound of the commit time (at most one poll interval plus one query
//! late). After the run, each telemetry row's latency is that time minus its metric
//! timestamp, joined on `xmin` in SQL.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};
use url::Url;

use super::latency::Percentiles;
use crate::commands::simulate::wall_ms;

const POLL_EVERY: Duration = Duration::from_millis(10);

/// The server of `--database-url` and the fresh databases made on it for one run.
pub struct BenchDatabases {
    admin: Client,
    base: Url,
    /// Where the service writes.
    pub service: String,
    /// Where the `\copy` reference loads.
    pub reference: String,
}

impl BenchDatabases {
    /// Connect to `url` (any database the user may connect to) and create the service's
    /// database, `oee_bench_<pid>`.
    pub async fn create(url: &str) -> anyhow::Result<BenchDatabases> {
        let base = Url::parse(url).with_context(|| format!("--database-url `{url}`"))?;
        if !matches!(base.scheme(), "postgres" | "postgresql") {
            bail!("--database-url `{url}`: expected postgres://USER@HOST:PORT/DATABASE");
        }
        let admin = connect(url).await?;
        let pid = std::process::id();
        let dbs = BenchDatabases {
            admin,
            base,
            service: format!("oee_bench_{pid}"),
            reference: format!("oee_bench_{pid}_copy"),
        };
        dbs.recreate(&dbs.service).await?;
        Ok(dbs)
    }

    /// The URL of database `name` on the same server, as the same user.
    pub fn url(&self, name: &str) -> String {
        let mut u = self.base.clone();
        u.set_path(&format!("/{name}"));
        u.to_string()
    }

    /// The URL with its password (if any) left out, for messages.
    pub fn shown(&self, name: &str) -> String {
        let mut u = self.base.clone();
        u.set_path(&format!("/{name}"));
        let _ = u.set_password(None);
        u.to_string()
    }

    async fn recreate(&self, name: &str) -> anyhow::Result<()> {
        // A leftover of an earlier run that was killed with the same pid.
        self.admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .with_context(|| format!("dropping the old database {name}"))?;
        self.admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("creating database {name} on {}", self.shown(name)))
    }

    /// Drop both databases (each only if it exists). Failures are reported, not fatal.
    pub async fn drop_all(&self) {
        for name in [&self.service, &self.reference] {
            if let Err(e) = self
                .admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
            {
                eprintln!("bench: cannot drop database {name}: {e}; drop it by hand");
            }
        }
    }
}

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}", without_password(url)))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "bench: PostgreSQL connection closed");
        }
    });
    Ok(client)
}

fn without_password(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// One batch, first seen committed.
#[derive(Debug, Clone, Copy)]
pub struct Commit {
    /// The batch's transaction id (`xmin` of its ledger row).
    pub xid: i64,
    /// Wall clock (ms) when the poll that saw it returned.
    pub seen_ms: i64,
}

/// Polls `sink_batches` every 10 ms until `stop` (then once more) and returns every batch seen.
/// New rows are found by keyset on the primary key `(writer_id, batch_seq)`: the service has one
/// writer whose sequence grows, so each poll is an index range scan over the new rows only. A
/// batch committed behind the cursor (a replay from the spool) is not seen; the analysis
/// counts such batches.
pub fn spawn_commit_poller(
    url: String,
    stop: Arc<AtomicBool>,
) -> JoinHandle<anyhow::Result<Vec<Commit>>> {
    tokio::spawn(async move {
        let client = connect(&url).await?;
        let mut stmt = None;
        let mut cursor = (i64::MIN, i64::MIN);
        let mut commits = Vec::new();
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            if stmt.is_none() {
                // Fails until the service has created its tables.
                stmt = client
                    .prepare(
                        "SELECT writer_id, batch_seq, xmin::text::bigint FROM sink_batches \
                         WHERE (writer_id, batch_seq) > ($1, $2) ORDER BY writer_id, batch_seq",
                    )
                    .await
                    .ok();
            }
            if let Some(s) = &stmt {
                let rows = client
                    .query(s, &[&cursor.0, &cursor.1])
                    .await
                    .context("polling sink_batches")?;
                let seen_ms = wall_ms() as i64;
                for r in rows {
                    cursor = (r.try_get(0)?, r.try_get(1)?);
                    commits.push(Commit {
                        xid: r.try_get(2)?,
                        seen_ms,
                    });
                }
            }
            if stopping {
                return Ok(commits);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    })
}

/// Rows in the service's database after the run.
#[derive(Debug, Default, Clone, Copy)]
pub struct DbCounts {
    pub telemetry: i64,
    pub events: i64,
    pub oee_windows: i64,
    pub faults: i64,
    /// Ledger rows (committed batches) and the sum of their `rows`.
    pub batches: i64,
    pub batch_rows: i64,
}

pub async fn counts(url: &str) -> anyhow::Result<DbCounts> {
    let c = connect(url).await?;
    let r = c
        .query_one(
            "SELECT (SELECT count(*) FROM telemetry), (SELECT count(*) FROM events), \
             (SELECT count(*) FROM oee_windows), (SELECT count(*) FROM faults), \
             (SELECT count(*) FROM sink_batches), \
             (SELECT coalesce(sum(rows), 0)::bigint FROM sink_batches)",
            &[],
        )
        .await
        .context("counting the rows in the service's database")?;
    Ok(DbCounts {
        telemetry: r.try_get(0)?,
        events: r.try_get(1)?,
        oee_windows: r.try_get(2)?,
        faults: r.try_get(3)?,
        batches: r.try_get(4)?,
        batch_rows: r.try_get(5)?,
    })
}

/// Metric timestamp → commit, and → `received_at`, over the telemetry rows stamped at or after
/// `from_ms`.
pub struct CommitLatency {
    pub commit: Option<Percentiles>,
    pub receive: Option<Percentiles>,
    /// Rows stamped after `from_ms` in batches the poller did not see (not in `commit`).
    pub rows_unseen: i64,
    /// Ledger rows the poller did not see.
    pub batches_unseen: i64,
}

pub async fn commit_latency(
    url: &str,
    commits: &[Commit],
    from_ms: i64,
) -> anyhow::Result<CommitLatency> {
    let c = connect(url).await?;
    c.batch_execute(
        "CREATE TEMP TABLE bench_seen (xid bigint PRIMARY KEY, seen_ms bigint NOT NULL)",
    )
    .await?;
    let xids: Vec<i64> = commits.iter().map(|c| c.xid).collect();
    let seen: Vec<i64> = commits.iter().map(|c| c.seen_ms).collect();
    c.execute(
        "INSERT INTO bench_seen SELECT * FROM UNNEST($1::int8[], $2::int8[])",
        &[&xids, &seen],
    )
    .await
    .context("loading the commit times")?;
    c.batch_execute("ANALYZE bench_seen").await?;
    let r = c
        .query_one(
            "WITH lat AS ( \
                 SELECT s.seen_ms - floor(extract(epoch FROM t.time) * 1000)::bigint AS commit_ms, \
                        floor(extract(epoch FROM t.received_at - t.time) * 1000)::bigint AS receive_ms \
                 FROM telemetry t LEFT JOIN bench_seen s ON s.xid = t.xmin::text::bigint \
                 WHERE t.time >= to_timestamp($1::float8 / 1000)) \
             SELECT count(commit_ms), \
                    percentile_disc(0.5) WITHIN GROUP (ORDER BY commit_ms), \
                    percentile_disc(0.99) WITHIN GROUP (ORDER BY commit_ms), \
                    max(commit_ms), \
                    count(receive_ms), \
                    percentile_disc(0.5) WITHIN GROUP (ORDER BY receive_ms), \
                    percentile_disc(0.99) WITHIN GROUP (ORDER BY receive_ms), \
                    max(receive_ms), \
                    count(*) FILTER (WHERE commit_ms IS NULL), \
                    (SELECT count(*) FROM sink_batches b WHERE NOT EXISTS \
                        (SELECT 1 FROM bench_seen s WHERE s.xid = b.xmin::text::bigint)) \
             FROM lat",
            &[&(from_ms as f64)],
        )
        .await
        .context("computing the commit latency")?;
    let pct = |i: usize| -> anyhow::Result<Option<Percentiles>> {
        let n: i64 = r.try_get(i)?;
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(Percentiles {
            n: n as u64,
            p50: r.try_get(i + 1)?,
            p99: r.try_get(i + 2)?,
            max: r.try_get(i + 3)?,
        }))
    };
    Ok(CommitLatency {
        commit: pct(0)?,
        receive: pct(4)?,
        rows_unseen: r.try_get(8)?,
        batches_unseen: r.try_get(9)?,
    })
}

/// `psql \copy` of the service's telemetry rows into an identical empty table.
pub struct CopyReference {
    /// Rows loaded (the service's rows, or the first `--copy-max-rows` of them).
    pub rows: i64,
    /// Telemetry rows the service wrote.
    pub service_rows: i64,
    /// Wall time of `psql -c "\copy telemetry FROM … CSV"`, seconds.
    pub secs: f64,
    /// Indexes on the reference table (the same definitions as the service's).
    pub indexes: usize,
}

impl CopyReference {
    pub fn rows_per_s(&self) -> f64 {
        self.rows as f64 / self.secs
    }
}

/// Dump the service's telemetry rows (`SELECT *`: the table's own column layout) to a CSV
/// file in `dir`, create the reference database with the sink's own migration (same tables,
/// indexes and constraints; checked), and time `psql \copy` of the file into its empty
/// `telemetry`. `max_rows` 0 = all rows. The CSV file is removed afterwards.
pub async fn copy_reference(
    dbs: &BenchDatabases,
    dir: &Path,
    max_rows: u64,
    compress_after_days: u32,
    retention_days: u32,
) -> anyhow::Result<CopyReference> {
    let service_url = dbs.url(&dbs.service);
    let reference_url = dbs.url(&dbs.reference);
    let service = connect(&service_url).await?;
    let service_rows: i64 = service
        .query_one("SELECT count(*) FROM telemetry", &[])
        .await?
        .try_get(0)?;
    let limit = match i64::try_from(max_rows) {
        Ok(m) if m > 0 => service_rows.min(m),
        _ => service_rows,
    };
    let csv = dir.join("telemetry-copy.csv");
    let r = copy_via_csv(
        dbs,
        &service,
        &service_url,
        &reference_url,
        &csv,
        limit,
        (compress_after_days, retention_days),
    )
    .await;
    let _ = std::fs::remove_file(&csv);
    let (secs, indexes) = r?;
    Ok(CopyReference {
        rows: limit,
        service_rows,
        secs,
        indexes,
    })
}

async fn copy_via_csv(
    dbs: &BenchDatabases,
    service: &Client,
    service_url: &str,
    reference_url: &str,
    csv: &Path,
    limit: i64,
    (compress_after_days, retention_days): (u32, u32),
) -> anyhow::Result<(f64, usize)> {
    let file = quoted(csv)?;
    psql(
        service_url,
        &format!("\\copy (SELECT * FROM telemetry LIMIT {limit}) TO {file} (FORMAT csv)"),
    )
    .await
    .context("dumping the service's telemetry rows to CSV")?;
    dbs.recreate(&dbs.reference).await?;
    let mut reference = connect(reference_url).await?;
    oee_stream::sink::postgres::migrate(&mut reference, compress_after_days, retention_days)
        .await
        .context("creating the reference schema")?;
    let want = table_shape(service).await?;
    let got = table_shape(&reference).await?;
    if want != got {
        bail!(
            "the reference telemetry table differs from the service's:\nservice: {want:?}\nreference: {got:?}"
        );
    }
    let t0 = std::time::Instant::now();
    psql(
        reference_url,
        &format!("\\copy telemetry FROM {file} (FORMAT csv)"),
    )
    .await
    .context("loading the CSV with psql \\copy")?;
    let secs = t0.elapsed().as_secs_f64();
    let loaded: i64 = reference
        .query_one("SELECT count(*) FROM telemetry", &[])
        .await?
        .try_get(0)?;
    if loaded != limit {
        bail!("psql \\copy loaded {loaded} rows of {limit}");
    }
    Ok((secs, want.indexes.len()))
}

/// Columns, constraints and index definitions of `telemetry`.
#[derive(Debug, PartialEq, Eq)]
struct TableShape {
    columns: Vec<String>,
    constraints: Vec<String>,
    indexes: Vec<String>,
}

async fn table_shape(c: &Client) -> anyhow::Result<TableShape> {
    let strings = |rows: Vec<tokio_postgres::Row>| -> anyhow::Result<Vec<String>> {
        rows.iter()
            .map(|r| r.try_get::<_, String>(0).map_err(Into::into))
            .collect()
    };
    Ok(TableShape {
        columns: strings(
            c.query(
                "SELECT concat_ws(' ', column_name, data_type, is_nullable, column_default) \
                 FROM information_schema.columns WHERE table_name = 'telemetry' \
                 ORDER BY ordinal_position",
                &[],
            )
            .await?,
        )?,
        constraints: strings(
            c.query(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
                 WHERE conrelid = 'telemetry'::regclass ORDER BY 1",
                &[],
            )
            .await?,
        )?,
        indexes: strings(
            c.query(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'telemetry' ORDER BY indexname",
                &[],
            )
            .await?,
        )?,
    })
}

/// A path as a single-quoted psql argument.
fn quoted(path: &Path) -> anyhow::Result<String> {
    let s = path
        .to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))?;
    Ok(format!("'{}'", s.replace('\'', "''")))
}

/// `psql -c COMMAND` against `url`; an error carries psql's stderr.
async fn psql(url: &str, command: &str) -> anyhow::Result<()> {
    let (url, command) = (url.to_string(), command.to_string());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(psql_binary())
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &url,
                "-c",
                &command,
            ])
            .output()
    })
    .await?
    .context("running psql (install the PostgreSQL client: apt-get install postgresql-client)")?;
    if !out.status.success() {
        bail!(
            "psql exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `psql` on the PATH, else the PostgreSQL 15 server package's.
fn psql_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("psql").is_file()));
    if on_path {
        PathBuf::from("psql")
    } else {
        PathBuf::from("/usr/lib/postgresql/15/bin/psql")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn paths_are_single_quoted_for_psql() {
        assert_eq!(
            quoted(Path::new("/tmp/it's/t.csv")).unwrap(),
            "'/tmp/it''s/t.csv'"
        );
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            without_password("postgres://bob:secret@db:5432/test"),
            "postgres://bob@db:5432/test"
        );
    }
}
