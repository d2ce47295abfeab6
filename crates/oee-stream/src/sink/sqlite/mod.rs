//! The SQLite sink (the embedded default): WAL mode, `synchronous=NORMAL`, one transaction per
//! batch with cached prepared statements, the same four tables and batch ledger as PostgreSQL
//! (schema version kept in `PRAGMA user_version`). Times are epoch milliseconds; NaN is stored
//! as NULL by SQLite (it has no NaN), ±Inf as REAL infinities.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, params};

use super::SinkError;
use super::batch::{Batch, split};
use super::runner::{WriteError, WriteOutcome};

const MIGRATIONS: &[&str] = &[include_str!("schema.sql"), include_str!("schema_2.sql")];

pub struct SqliteWriter {
    conn: Connection,
}

fn flags_json(f: &[String]) -> String {
    serde_json::Value::from(f.to_vec()).to_string()
}

/// Open (creating) the database and bring its schema to the latest version.
pub fn open_db(path: &Path) -> Result<Connection, SinkError> {
    let err = |e: rusqlite::Error| SinkError::Sqlite {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| SinkError::Sqlite {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    }
    let mut conn = Connection::open(path).map_err(err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(err)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(err)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let v = i as i64 + 1;
        if version < v {
            tx.execute_batch(sql).map_err(err)?;
            tx.pragma_update(None, "user_version", v).map_err(err)?;
        }
    }
    tx.commit().map_err(err)?;
    Ok(conn)
}

impl SqliteWriter {
    pub fn open(path: &Path) -> Result<SqliteWriter, SinkError> {
        Ok(SqliteWriter {
            conn: open_db(path)?,
        })
    }

    pub fn write(&mut self, batch: &Batch) -> Result<WriteOutcome, WriteError> {
        let e = |e: rusqlite::Error| {
            // Constraint and type errors are the data's fault; busy/IO errors are retried.
            let permanent = matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::ConstraintViolation | rusqlite::ErrorCode::TooBig)
            );
            WriteError {
                permanent,
                message: e.to_string(),
            }
        };
        let parts = split(&batch.records);
        let counts = parts.counts();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(e)?;
        let new = tx
            .prepare_cached(
                "INSERT INTO sink_batches (writer_id, batch_seq, rows, committed_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )
            .map_err(e)?
            .execute(params![
                batch.id.writer,
                batch.id.seq,
                counts.total() as i64,
                now
            ])
            .map_err(e)?;
        if new == 0 {
            return Ok(WriteOutcome::Duplicate); // dropping tx rolls back
        }
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO telemetry (time, site_id, line_id, machine_id, signal_type, \
                     value, value_text, unit, quality, sp_group, sp_edge_node, sp_device, \
                     sp_metric, is_historical, received_at, order_key, int_bits) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
                     ?16, ?17)",
                )
                .map_err(e)?;
            for t in &parts.telemetry {
                let g = &t.tag;
                st.execute(params![
                    t.time_ms,
                    g.asset.site_id,
                    g.asset.line_id,
                    g.asset.machine_id,
                    g.signal_type.as_str(),
                    t.value,
                    t.value_text,
                    g.unit,
                    t.quality,
                    g.source.group,
                    g.source.edge_node,
                    g.source.device,
                    g.source.metric,
                    t.is_historical,
                    t.received_at_ms,
                    t.order_key(),
                    (t.int_bits != 0).then_some(t.int_bits),
                ])
                .map_err(e)?;
            }
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO events (time, event_type, site_id, line_id, machine_id, \
                     severity, event_id, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                     ON CONFLICT (event_id, time) DO NOTHING",
                )
                .map_err(e)?;
            for v in &parts.events {
                st.execute(params![
                    v.time_ms,
                    v.kind.as_str(),
                    v.site_id,
                    v.line_id,
                    v.machine_id,
                    v.severity,
                    v.id,
                    v.payload.to_string(),
                ])
                .map_err(e)?;
            }
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO oee_windows (scope, site_id, line_id, machine_id, window_kind, \
                     window_start, window_end, planned_ms, run_ms, setup_ms, unknown_ms, \
                     ideal_ms, fully_productive_ms, total_count, good_count, reject_count, \
                     failures, repair_ms, availability, performance, quality, oee, mtbf_s, \
                     mttr_s, flags, revision) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
                     ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, \
                     ?26) ON CONFLICT (scope, site_id, line_id, machine_id, window_kind, \
                     window_start) DO UPDATE SET window_end = excluded.window_end, \
                     planned_ms = excluded.planned_ms, run_ms = excluded.run_ms, \
                     setup_ms = excluded.setup_ms, unknown_ms = excluded.unknown_ms, \
                     ideal_ms = excluded.ideal_ms, \
                     fully_productive_ms = excluded.fully_productive_ms, \
                     total_count = excluded.total_count, good_count = excluded.good_count, \
                     reject_count = excluded.reject_count, failures = excluded.failures, \
                     repair_ms = excluded.repair_ms, availability = excluded.availability, \
                     performance = excluded.performance, quality = excluded.quality, \
                     oee = excluded.oee, mtbf_s = excluded.mtbf_s, mttr_s = excluded.mttr_s, \
                     flags = excluded.flags, revision = excluded.revision \
                     WHERE oee_windows.revision < excluded.revision",
                )
                .map_err(e)?;
            for o in &parts.oee_windows {
                st.execute(params![
                    o.scope,
                    o.site_id,
                    o.line_id,
                    o.machine_id,
                    o.window_kind,
                    o.window_start_ms,
                    o.window_end_ms,
                    o.planned_ms,
                    o.run_ms,
                    o.setup_ms,
                    o.unknown_ms,
                    o.ideal_ms,
                    o.fully_productive_ms,
                    o.total_count,
                    o.good_count,
                    o.reject_count,
                    o.failures,
                    o.repair_ms,
                    o.availability,
                    o.performance,
                    o.quality,
                    o.oee,
                    o.mtbf_s,
                    o.mttr_s,
                    flags_json(&o.flags),
                    o.revision,
                ])
                .map_err(e)?;
            }
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO faults (fault_id, site_id, line_id, machine_id, code, state, \
                     severity, first_active, last_change, resolved_at, acknowledged_at, \
                     acknowledged_by, occurrences, flags) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, \
                     ?8, ?9, ?10, ?11, ?12, ?13, ?14) ON CONFLICT (fault_id) DO UPDATE SET \
                     site_id = excluded.site_id, line_id = excluded.line_id, \
                     machine_id = excluded.machine_id, code = excluded.code, \
                     state = excluded.state, severity = excluded.severity, \
                     first_active = excluded.first_active, last_change = excluded.last_change, \
                     resolved_at = excluded.resolved_at, \
                     acknowledged_at = excluded.acknowledged_at, \
                     acknowledged_by = excluded.acknowledged_by, \
                     occurrences = excluded.occurrences, flags = excluded.flags \
                     WHERE faults.last_change <= excluded.last_change",
                )
                .map_err(e)?;
            for f in &parts.faults {
                st.execute(params![
                    f.id,
                    f.site_id,
                    f.line_id,
                    f.machine_id,
                    f.code,
                    f.state,
                    f.severity,
                    f.first_active_ms,
                    f.last_change_ms,
                    f.resolved_ms,
                    f.acknowledged_ms,
                    f.acknowledged_by,
                    f.occurrences,
                    flags_json(&f.flags),
                ])
                .map_err(e)?;
            }
        }
        tx.commit().map_err(e)?;
        Ok(WriteOutcome::Written(counts))
    }
}
