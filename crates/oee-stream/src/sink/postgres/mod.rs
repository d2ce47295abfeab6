//! The PostgreSQL sink: schema migration on start ([`schema`]), one writer connection, and one
//! transaction per batch: the batch id into the `sink_batches` ledger (a conflict means the batch
//! was committed before: skip it), telemetry by binary COPY (or UNNEST, `database.write_method`),
//! events / oee_windows / faults by UNNEST upserts on their keys. No per-row unique index on
//! telemetry is needed for exactly-once.

pub mod schema;

use std::borrow::Cow;
use std::pin::pin;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Statement};

use super::SinkError;
use super::batch::{Batch, Split, split};
use super::runner::{WriteError, WriteOutcome};
use crate::settings::{DatabaseConfig, WriteMethod};

pub use schema::{MigrationReport, TimescaleInfo, migrate, timescale_statements};

/// Ledger rows older than this are deleted (once an hour): a spooled batch older than that
/// would no longer be recognised as committed.
pub const LEDGER_KEEP_DAYS: i32 = 30;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub const TELEMETRY_COLUMNS: &str = "time, site_id, line_id, machine_id, signal_type, value, \
     value_text, unit, quality, sp_group, sp_edge_node, sp_device, sp_metric, is_historical, \
     received_at, order_key, int_bits";

const TELEMETRY_TYPES: [Type; 17] = [
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::FLOAT8,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::BOOL,
    Type::TIMESTAMPTZ,
    Type::INT8,
    Type::INT2,
];

struct Statements {
    ledger: Statement,
    telemetry_unnest: Statement,
    events: Statement,
    oee_windows: Statement,
    faults: Statement,
}

pub struct PgWriter {
    config: Config,
    db: DatabaseConfig,
    client: Option<Client>,
    connection: Option<JoinHandle<()>>,
    stmts: Option<Statements>,
    migrated: bool,
    last_prune: Option<Instant>,
}

impl PgWriter {
    /// Parse the URL and try once to connect and migrate. An unreachable server is logged,
    /// not an error: the writer retries (and records are spooled) until it answers.
    pub async fn start(url: &str, db: DatabaseConfig) -> Result<PgWriter, SinkError> {
        let mut config = Config::from_str(url).map_err(|e| SinkError::Config(e.to_string()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("oee-stream");
        let mut w = PgWriter {
            config,
            db,
            client: None,
            connection: None,
            stmts: None,
            migrated: false,
            last_prune: None,
        };
        if let Err(e) = w.ensure().await {
            tracing::warn!(error = %e.message, "PostgreSQL is not available yet; records are spooled until it is");
        }
        Ok(w)
    }

    /// Drop the connection; the next write reconnects.
    pub fn reset(&mut self) {
        self.client = None;
        self.stmts = None;
        if let Some(c) = self.connection.take() {
            c.abort();
        }
    }

    async fn ensure(&mut self) -> Result<(), WriteError> {
        if self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.reset();
        }
        if self.client.is_none() {
            let (client, connection) = self.config.connect(NoTls).await.map_err(|e| {
                WriteError::retryable(format!("connect: {}", schema::db_message(&e)))
            })?;
            self.connection = Some(tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "PostgreSQL connection closed");
                }
            }));
            self.client = Some(client);
        }
        let Some(client) = self.client.as_mut() else {
            return Err(WriteError::retryable("no connection"));
        };
        if !self.migrated {
            let report = migrate(client, self.db.compress_after_days, self.db.retention_days)
                .await
                .map_err(|e| classify("migrate", &e))?;
            match &report.timescale {
                Some(ts) => {
                    tracing::info!(version = ?ts.version, tsl = ts.tsl, "TimescaleDB: telemetry and events are hypertables")
                }
                None => {
                    tracing::info!("plain PostgreSQL (no TimescaleDB): regular tables and indexes")
                }
            }
            self.migrated = true;
        }
        if self.stmts.is_none() {
            self.stmts = Some(prepare(client).await.map_err(|e| classify("prepare", &e))?);
        }
        Ok(())
    }

    pub async fn write(&mut self, batch: &Batch) -> Result<WriteOutcome, WriteError> {
        self.ensure().await?;
        let r = self.write_inner(batch).await;
        if let Err(e) = &r {
            if !e.permanent {
                // Connection errors and the like: start over on a fresh session next time.
                if self.client.as_ref().is_none_or(|c| c.is_closed()) {
                    self.reset();
                }
            }
        } else {
            self.maybe_prune().await;
        }
        r
    }

    async fn write_inner(&mut self, batch: &Batch) -> Result<WriteOutcome, WriteError> {
        let method = self.db.write_method;
        let (Some(client), Some(st)) = (self.client.as_mut(), self.stmts.as_ref()) else {
            return Err(WriteError::retryable("no connection"));
        };
        let parts = split(&batch.records);
        let counts = parts.counts();
        let tx = client
            .transaction()
            .await
            .map_err(|e| classify("begin", &e))?;
        let rows = i32::try_from(counts.total()).unwrap_or(i32::MAX);
        let new = tx
            .execute(&st.ledger, &[&batch.id.writer, &batch.id.seq, &rows])
            .await
            .map_err(|e| classify("ledger", &e))?;
        if new == 0 {
            tx.rollback().await.map_err(|e| classify("rollback", &e))?;
            return Ok(WriteOutcome::Duplicate);
        }
        if !parts.telemetry.is_empty() {
            match method {
                WriteMethod::Copy => copy_telemetry(&tx, &parts).await,
                WriteMethod::Unnest => unnest_telemetry(&tx, &st.telemetry_unnest, &parts).await,
            }
            .map_err(|e| classify("telemetry", &e))?;
        }
        if !parts.events.is_empty() {
            upsert_events(&tx, &st.events, &parts)
                .await
                .map_err(|e| classify("events", &e))?;
        }
        if !parts.oee_windows.is_empty() {
            upsert_windows(&tx, &st.oee_windows, &parts)
                .await
                .map_err(|e| classify("oee_windows", &e))?;
        }
        if !parts.faults.is_empty() {
            upsert_faults(&tx, &st.faults, &parts)
                .await
                .map_err(|e| classify("faults", &e))?;
        }
        tx.commit().await.map_err(|e| classify("commit", &e))?;
        Ok(WriteOutcome::Written(counts))
    }

    async fn maybe_prune(&mut self) {
        if self
            .last_prune
            .is_some_and(|t| t.elapsed() < Duration::from_secs(3600))
        {
            return;
        }
        self.last_prune = Some(Instant::now());
        if let Some(c) = &self.client
            && let Err(e) = c
                .execute(
                    "DELETE FROM sink_batches WHERE committed_at < now() - make_interval(days => $1)",
                    &[&LEDGER_KEEP_DAYS],
                )
                .await
        {
            tracing::warn!(error = %schema::db_message(&e), "cannot prune the batch ledger");
        }
    }
}

/// SQLSTATE classes 22 (data exception) and 23 (integrity constraint) mean the data itself is
/// refused: retrying cannot help. Everything else (connection, server shutdown, lock timeouts,
/// missing tables after a restore …) is retried.
fn classify(what: &str, e: &tokio_postgres::Error) -> WriteError {
    let permanent = e.as_db_error().is_some_and(|d| {
        let c = d.code().code();
        c.starts_with("22") || c.starts_with("23")
    });
    WriteError {
        permanent,
        message: format!("{what}: {}", schema::db_message(e)),
    }
}

fn ts(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// PostgreSQL text cannot hold NUL: replace it rather than lose the batch.
fn clean(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(s)
    }
}

fn clean_opt(s: Option<&str>) -> Option<Cow<'_, str>> {
    s.map(clean)
}

async fn prepare(c: &Client) -> Result<Statements, tokio_postgres::Error> {
    Ok(Statements {
        ledger: c
            .prepare(
                "INSERT INTO sink_batches (writer_id, batch_seq, rows) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .await?,
        telemetry_unnest: c
            .prepare(&format!(
                "INSERT INTO telemetry ({TELEMETRY_COLUMNS}) SELECT * FROM UNNEST(\
                 $1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], \
                 $6::float8[], $7::text[], $8::text[], $9::int4[], $10::text[], $11::text[], \
                 $12::text[], $13::text[], $14::bool[], $15::timestamptz[], $16::int8[], \
                 $17::int2[])"
            ))
            .await?,
        events: c
            .prepare(
                "INSERT INTO events (time, event_type, site_id, line_id, machine_id, severity, \
                 event_id, payload) \
                 SELECT t, et, s, l, m, sev, id, p::jsonb FROM UNNEST($1::timestamptz[], \
                 $2::text[], $3::text[], $4::text[], $5::text[], $6::int4[], $7::text[], \
                 $8::text[]) AS u(t, et, s, l, m, sev, id, p) \
                 ON CONFLICT (event_id, time) DO NOTHING",
            )
            .await?,
        oee_windows: c
            .prepare(&upsert_sql(
                "oee_windows",
                OEE_COLUMNS,
                "scope, site_id, line_id, machine_id, window_kind, window_start",
                "oee_windows.revision < EXCLUDED.revision",
            ))
            .await?,
        faults: c
            .prepare(&upsert_sql(
                "faults",
                FAULT_COLUMNS,
                "fault_id",
                "faults.last_change <= EXCLUDED.last_change",
            ))
            .await?,
    })
}

/// (column, array type); `flags` travel as a JSON text and become `text[]` in SQL.
const OEE_COLUMNS: &[(&str, &str)] = &[
    ("scope", "text"),
    ("site_id", "text"),
    ("line_id", "text"),
    ("machine_id", "text"),
    ("window_kind", "text"),
    ("window_start", "timestamptz"),
    ("window_end", "timestamptz"),
    ("planned_ms", "int8"),
    ("run_ms", "int8"),
    ("setup_ms", "int8"),
    ("unknown_ms", "int8"),
    ("ideal_ms", "float8"),
    ("fully_productive_ms", "float8"),
    ("total_count", "int8"),
    ("good_count", "int8"),
    ("reject_count", "int8"),
    ("failures", "int8"),
    ("repair_ms", "int8"),
    ("availability", "float8"),
    ("performance", "float8"),
    ("quality", "float8"),
    ("oee", "float8"),
    ("mtbf_s", "float8"),
    ("mttr_s", "float8"),
    ("flags", "text"),
    ("revision", "int4"),
];

const FAULT_COLUMNS: &[(&str, &str)] = &[
    ("fault_id", "text"),
    ("site_id", "text"),
    ("line_id", "text"),
    ("machine_id", "text"),
    ("code", "int8"),
    ("state", "text"),
    ("severity", "int4"),
    ("first_active", "timestamptz"),
    ("last_change", "timestamptz"),
    ("resolved_at", "timestamptz"),
    ("acknowledged_at", "timestamptz"),
    ("acknowledged_by", "text"),
    ("occurrences", "int8"),
    ("flags", "text"),
];

fn upsert_sql(table: &str, cols: &[(&str, &str)], key: &str, newer: &str) -> String {
    let names: Vec<&str> = cols.iter().map(|c| c.0).collect();
    let select: Vec<String> = cols
        .iter()
        .map(|(n, _)| {
            if *n == "flags" {
                "ARRAY(SELECT jsonb_array_elements_text(flags::jsonb))".to_string()
            } else {
                n.to_string()
            }
        })
        .collect();
    let arrays: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, (_, t))| format!("${}::{t}[]", i + 1))
        .collect();
    let keys: Vec<&str> = key.split(", ").collect();
    let set: Vec<String> = names
        .iter()
        .filter(|n| !keys.contains(n))
        .map(|n| format!("{n} = EXCLUDED.{n}"))
        .collect();
    format!(
        "INSERT INTO {table} ({cols}) SELECT {select} FROM UNNEST({arrays}) AS u({cols}) \
         ON CONFLICT ({key}) DO UPDATE SET {set}, updated_at = now() WHERE {newer}",
        cols = names.join(", "),
        select = select.join(", "),
        arrays = arrays.join(", "),
        set = set.join(", "),
    )
}

async fn copy_telemetry(
    tx: &tokio_postgres::Transaction<'_>,
    parts: &Split<'_>,
) -> Result<(), tokio_postgres::Error> {
    let sink = tx
        .copy_in(&format!(
            "COPY telemetry ({TELEMETRY_COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let mut w = pin!(BinaryCopyInWriter::new(sink, &TELEMETRY_TYPES));
    for t in &parts.telemetry {
        let tag = &t.tag;
        let time = ts(t.time_ms);
        let received = ts(t.received_at_ms);
        let text = clean_opt(t.value_text.as_deref());
        let device = clean_opt(tag.source.device.as_deref());
        let metric = clean(&tag.source.metric);
        let group = clean(&tag.source.group);
        let node = clean(&tag.source.edge_node);
        let order_key = t.order_key();
        let int_bits = (t.int_bits != 0).then_some(i16::from(t.int_bits));
        let row: [&(dyn ToSql + Sync); 17] = [
            &time,
            &tag.asset.site_id,
            &tag.asset.line_id,
            &tag.asset.machine_id,
            &tag.signal_type.as_str(),
            &t.value,
            &text.as_deref(),
            &tag.unit,
            &t.quality,
            &group.as_ref(),
            &node.as_ref(),
            &device.as_deref(),
            &metric.as_ref(),
            &t.is_historical,
            &received,
            &order_key,
            &int_bits,
        ];
        w.as_mut().write(&row).await?;
    }
    w.finish().await?;
    Ok(())
}

async fn unnest_telemetry(
    tx: &tokio_postgres::Transaction<'_>,
    st: &Statement,
    parts: &Split<'_>,
) -> Result<(), tokio_postgres::Error> {
    let rows = &parts.telemetry;
    let time: Vec<SystemTime> = rows.iter().map(|t| ts(t.time_ms)).collect();
    let site: Vec<&str> = rows.iter().map(|t| t.tag.asset.site_id.as_str()).collect();
    let line: Vec<&str> = rows.iter().map(|t| t.tag.asset.line_id.as_str()).collect();
    let machine: Vec<&str> = rows
        .iter()
        .map(|t| t.tag.asset.machine_id.as_str())
        .collect();
    let sig: Vec<&str> = rows.iter().map(|t| t.tag.signal_type.as_str()).collect();
    let value: Vec<Option<f64>> = rows.iter().map(|t| t.value).collect();
    let text: Vec<Option<Cow<'_, str>>> = rows
        .iter()
        .map(|t| clean_opt(t.value_text.as_deref()))
        .collect();
    let text: Vec<Option<&str>> = text.iter().map(|c| c.as_deref()).collect();
    let unit: Vec<Option<&str>> = rows.iter().map(|t| t.tag.unit).collect();
    let quality: Vec<i32> = rows.iter().map(|t| t.quality).collect();
    let group: Vec<Cow<'_, str>> = rows.iter().map(|t| clean(&t.tag.source.group)).collect();
    let group: Vec<&str> = group.iter().map(|c| c.as_ref()).collect();
    let node: Vec<Cow<'_, str>> = rows
        .iter()
        .map(|t| clean(&t.tag.source.edge_node))
        .collect();
    let node: Vec<&str> = node.iter().map(|c| c.as_ref()).collect();
    let device: Vec<Option<Cow<'_, str>>> = rows
        .iter()
        .map(|t| clean_opt(t.tag.source.device.as_deref()))
        .collect();
    let device: Vec<Option<&str>> = device.iter().map(|c| c.as_deref()).collect();
    let metric: Vec<Cow<'_, str>> = rows.iter().map(|t| clean(&t.tag.source.metric)).collect();
    let metric: Vec<&str> = metric.iter().map(|c| c.as_ref()).collect();
    let hist: Vec<bool> = rows.iter().map(|t| t.is_historical).collect();
    let recv: Vec<SystemTime> = rows.iter().map(|t| ts(t.received_at_ms)).collect();
    let order_key: Vec<i64> = rows.iter().map(|t| t.order_key()).collect();
    let int_bits: Vec<Option<i16>> = rows
        .iter()
        .map(|t| (t.int_bits != 0).then_some(i16::from(t.int_bits)))
        .collect();
    tx.execute(
        st,
        &[
            &time, &site, &line, &machine, &sig, &value, &text, &unit, &quality, &group, &node,
            &device, &metric, &hist, &recv, &order_key, &int_bits,
        ],
    )
    .await?;
    Ok(())
}

async fn upsert_events(
    tx: &tokio_postgres::Transaction<'_>,
    st: &Statement,
    parts: &Split<'_>,
) -> Result<(), tokio_postgres::Error> {
    let e = &parts.events;
    let time: Vec<SystemTime> = e.iter().map(|e| ts(e.time_ms)).collect();
    let kind: Vec<&str> = e.iter().map(|e| e.kind.as_str()).collect();
    let site: Vec<Option<&str>> = e.iter().map(|e| e.site_id.as_deref()).collect();
    let line: Vec<Option<&str>> = e.iter().map(|e| e.line_id.as_deref()).collect();
    let machine: Vec<Option<&str>> = e.iter().map(|e| e.machine_id.as_deref()).collect();
    let sev: Vec<Option<i32>> = e.iter().map(|e| e.severity).collect();
    let id: Vec<&str> = e.iter().map(|e| e.id.as_str()).collect();
    // jsonb cannot hold \u0000 either.
    let payload: Vec<String> = e
        .iter()
        .map(|e| e.payload.to_string().replace("\\u0000", "\\ufffd"))
        .collect();
    tx.execute(
        st,
        &[&time, &kind, &site, &line, &machine, &sev, &id, &payload],
    )
    .await?;
    Ok(())
}

fn flags_json(f: &[String]) -> String {
    serde_json::Value::from(f.to_vec()).to_string()
}

async fn upsert_windows(
    tx: &tokio_postgres::Transaction<'_>,
    st: &Statement,
    parts: &Split<'_>,
) -> Result<(), tokio_postgres::Error> {
    let w = &parts.oee_windows;
    macro_rules! col {
        ($f:expr) => {
            w.iter().map($f).collect::<Vec<_>>()
        };
    }
    let scope = col!(|o| o.scope);
    let site = col!(|o| o.site_id.as_str());
    let line = col!(|o| o.line_id.as_str());
    let machine = col!(|o| o.machine_id.as_str());
    let kind = col!(|o| o.window_kind.as_str());
    let start = col!(|o| ts(o.window_start_ms));
    let end = col!(|o| ts(o.window_end_ms));
    let planned = col!(|o| o.planned_ms);
    let run = col!(|o| o.run_ms);
    let setup = col!(|o| o.setup_ms);
    let unknown = col!(|o| o.unknown_ms);
    let ideal = col!(|o| o.ideal_ms);
    let fully = col!(|o| o.fully_productive_ms);
    let total = col!(|o| o.total_count);
    let good = col!(|o| o.good_count);
    let reject = col!(|o| o.reject_count);
    let failures = col!(|o| o.failures);
    let repair = col!(|o| o.repair_ms);
    let a = col!(|o| o.availability);
    let p = col!(|o| o.performance);
    let q = col!(|o| o.quality);
    let oee = col!(|o| o.oee);
    let mtbf = col!(|o| o.mtbf_s);
    let mttr = col!(|o| o.mttr_s);
    let flags = col!(|o| flags_json(&o.flags));
    let rev = col!(|o| o.revision);
    tx.execute(
        st,
        &[
            &scope, &site, &line, &machine, &kind, &start, &end, &planned, &run, &setup, &unknown,
            &ideal, &fully, &total, &good, &reject, &failures, &repair, &a, &p, &q, &oee, &mtbf,
            &mttr, &flags, &rev,
        ],
    )
    .await?;
    Ok(())
}

async fn upsert_faults(
    tx: &tokio_postgres::Transaction<'_>,
    st: &Statement,
    parts: &Split<'_>,
) -> Result<(), tokio_postgres::Error> {
    let f = &parts.faults;
    macro_rules! col {
        ($f:expr) => {
            f.iter().map($f).collect::<Vec<_>>()
        };
    }
    let id = col!(|f| f.id.as_str());
    let site = col!(|f| f.site_id.as_str());
    let line = col!(|f| f.line_id.as_str());
    let machine = col!(|f| f.machine_id.as_str());
    let code = col!(|f| f.code);
    let state = col!(|f| f.state.as_str());
    let sev = col!(|f| f.severity);
    let first = col!(|f| ts(f.first_active_ms));
    let last = col!(|f| ts(f.last_change_ms));
    let resolved = col!(|f| f.resolved_ms.map(ts));
    let acked = col!(|f| f.acknowledged_ms.map(ts));
    let by = col!(|f| f.acknowledged_by.as_deref());
    let occ = col!(|f| f.occurrences);
    let flags = col!(|f| flags_json(&f.flags));
    tx.execute(
        st,
        &[
            &id, &site, &line, &machine, &code, &state, &sev, &first, &last, &resolved, &acked,
            &by, &occ, &flags,
        ],
    )
    .await?;
    Ok(())
}
