//! Rebuilding the OEE engine after a restart from what the previous run stored.
//!
//! `run` calls [`load`] before it starts the sink and the MQTT source: it reads the
//! OEE signals (`counter.*`, `state.*`, `fault.*`) of the last `oee.rebuild_s` before the newest
//! stored one from `telemetry`, plus the newest row of every source in the `oee.rebuild_s`
//! before that (the state, counter value or fault flag each source had when the rebuild range
//! begins), the batches still in the spool (written by a run that could not reach the database),
//! and the acknowledgements in `faults`. [`crate::calculate::OeeTask::rebuild`] feeds them to the
//! engine before any live data, so OEE windows and fault instances that span the restart are
//! computed as if the service had not stopped (docs/reliability.md, "Restarts").
//!
//! Only PostgreSQL and SQLite can be read back; with JSON lines there is nothing to rebuild.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use oee_core::config::Domain;
use oee_core::faults::FaultInstanceId;
use oee_core::normalize::{SignalType, SourceId};
use oee_core::types::{MachineId, Ms};
use oee_core::windows::OeeInput;

use crate::calculate::{StoredSample, stored_input};

/// The signal types the OEE engine reads (`telemetry.signal_type`): the canonical ones.
const OEE_SIGNAL_TYPES: &[&str] = oee_core::normalize::rules::CANONICAL_SIGNAL_TYPES;
use crate::settings::{DatabaseTarget, Settings};
use crate::sink::{self, Record};

/// What the engine is rebuilt from: the rows kept (sorted), their sources and the
/// acknowledgements. [`Rebuild::inputs`] turns them into engine inputs one at a time, so a
/// rebuild of millions of rows holds them as a few numbers each, never as inputs.
#[derive(Debug, Default)]
pub struct Rebuild {
    rows: Vec<Row>,
    sources: Vec<Source>,
    /// `(time, Ack)`, sorted.
    acks: Vec<(Ms, OeeInput)>,
    /// The newest stored OEE sample's event time.
    pub last_event_ms: Ms,
    /// When the previous run received its newest stored OEE sample (its clock at the end).
    pub last_received_ms: Ms,
    /// Start of the rebuild range (before it, the newest row of each source only).
    pub from_ms: Ms,
    /// Rows read (database and spool).
    pub read: u64,
}

impl Rebuild {
    /// The engine inputs in event-time order; at one time by tie-break, acknowledgements
    /// last.
    pub fn inputs(&self) -> impl Iterator<Item = OeeInput> + '_ {
        let mut rows = self.rows.iter().filter_map(|r| self.input(r)).peekable();
        let mut acks = self.acks.iter().peekable();
        std::iter::from_fn(move || match (rows.peek(), acks.peek()) {
            (Some((ts, _)), Some((ack_ts, _))) if ack_ts < ts => acks.next().map(|a| a.1.clone()),
            (Some(_), _) => rows.next().map(|r| r.1),
            (None, _) => acks.next().map(|a| a.1.clone()),
        })
    }

    fn input(&self, r: &Row) -> Option<(Ms, OeeInput)> {
        let s = self.sources.get(r.source as usize)?;
        let input = stored_input(&StoredSample {
            machine: s.machine.clone(),
            signal_type: s.signal_type.clone(),
            fault_code: s.fault_code,
            time_ms: r.time_ms,
            value: r.value,
            quality: r.quality,
            order_key: r.order_key,
            int_bits: r.int_bits,
        })?;
        Some((r.time_ms, input))
    }

    /// Rows kept (the range and one seed per source).
    pub fn rows(&self) -> usize {
        self.rows.len()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("reading PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("reading {path}: {message}")]
    Sqlite { path: String, message: String },
    #[error("{0}")]
    Config(String),
}

/// One stored row: its source (an index into [`Sources`]) and what changes from row to row.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Row {
    source: u32,
    time_ms: Ms,
    value: Option<f64>,
    quality: i32,
    received_ms: Ms,
    order_key: Option<i64>,
    int_bits: Option<i16>,
}

/// A row's identity as stored: asset, signal type and Sparkplug identity.
struct Ident<'a> {
    site: &'a str,
    line: &'a str,
    machine: &'a str,
    signal_type: &'a str,
    group: &'a str,
    edge_node: &'a str,
    device: Option<&'a str>,
    metric: &'a str,
}

/// What the engine needs of a source, found once per source.
#[derive(Debug)]
struct Source {
    machine: MachineId,
    signal_type: SignalType,
    /// For `fault.active`: the code of the rule that maps the source today.
    fault_code: Option<i64>,
}

/// The distinct sources of the rows read, so that a row costs a few numbers, not eight
/// strings.
struct Sources {
    domain: Arc<Domain>,
    index: HashMap<String, u32>,
    list: Vec<Source>,
    key: String,
}

impl Sources {
    fn new(domain: Arc<Domain>) -> Sources {
        Sources {
            domain,
            index: HashMap::new(),
            list: Vec::new(),
            key: String::new(),
        }
    }

    /// The source's index; `None` for a signal type this version does not know.
    fn intern(&mut self, id: &Ident<'_>) -> Option<u32> {
        self.key.clear();
        for part in [
            id.site,
            id.line,
            id.machine,
            id.signal_type,
            id.group,
            id.edge_node,
            id.device.unwrap_or("\u{1}"),
            id.metric,
        ] {
            self.key.push_str(part);
            self.key.push('\0');
        }
        if let Some(&i) = self.index.get(&self.key) {
            return Some(i);
        }
        let signal_type = SignalType::parse(id.signal_type).ok()?;
        let fault_code = match signal_type {
            SignalType::FaultActive => self.domain.rules.fault_code_of(&SourceId {
                group: id.group,
                edge_node: id.edge_node,
                device: id.device,
                metric: id.metric,
            }),
            _ => None,
        };
        let i = u32::try_from(self.list.len()).ok()?;
        self.list.push(Source {
            machine: MachineId::new(id.site, id.line, id.machine),
            signal_type,
            fault_code,
        });
        self.index.insert(self.key.clone(), i);
        Some(i)
    }
}

/// Rows as they are read: every row of the range `[last − span, …]` is kept, and before it only
/// the newest row of each source (its value when the range begins), so memory follows the
/// range, not the twice as long read.
struct Collect {
    from_ms: Ms,
    rows: Vec<Row>,
    seeds: HashMap<u32, Row>,
    last_event_ms: Ms,
    last_received_ms: Ms,
    read: u64,
}

impl Collect {
    fn new(last_ms: Ms, span_ms: Ms) -> Collect {
        Collect {
            from_ms: last_ms.saturating_sub(span_ms),
            rows: Vec::new(),
            seeds: HashMap::new(),
            last_event_ms: Ms::MIN,
            last_received_ms: Ms::MIN,
            read: 0,
        }
    }

    fn push(&mut self, r: Row) {
        self.read += 1;
        self.last_event_ms = self.last_event_ms.max(r.time_ms);
        self.last_received_ms = self.last_received_ms.max(r.received_ms);
        if r.time_ms >= self.from_ms {
            self.rows.push(r);
        } else if self
            .seeds
            .get(&r.source)
            .is_none_or(|s| (s.time_ms, s.order_key) < (r.time_ms, r.order_key))
        {
            self.seeds.insert(r.source, r);
        }
    }

    /// Sorted by time and tie-break; rows found twice (in the database and in the spool)
    /// count once.
    fn finish(self, sources: Sources, acks: Vec<(FaultInstanceId, Ms, String)>) -> Rebuild {
        let mut rows = self.rows;
        rows.extend(self.seeds.into_values());
        rows.sort_by_key(|r| (r.time_ms, r.order_key, r.source));
        rows.dedup_by_key(|r| (r.time_ms, r.order_key, r.source));
        let mut acks: Vec<(Ms, OeeInput)> = acks
            .into_iter()
            .map(|(instance, ts_ms, who)| {
                let who = Arc::from(who.as_str());
                (
                    ts_ms,
                    OeeInput::Ack {
                        instance,
                        who,
                        ts_ms,
                    },
                )
            })
            .collect();
        acks.sort_by_key(|a| a.0);
        Rebuild {
            rows,
            sources: sources.list,
            acks,
            last_event_ms: self.last_event_ms,
            last_received_ms: self.last_received_ms,
            from_ms: self.from_ms,
            read: self.read,
        }
    }
}

/// Reads what the engine needs after a restart; `None` when there is nothing to rebuild
/// (`oee.rebuild_s: 0`, a JSON-lines sink, an empty or new database).
pub async fn load(settings: &Settings) -> Result<Option<Rebuild>, RebuildError> {
    let span_ms =
        i64::try_from(settings.domain.oee.rebuild_s.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
    if span_ms == 0 {
        return Ok(None);
    }
    let started = Instant::now();
    let mut sources = Sources::new(Arc::clone(&settings.domain));
    let spooled = spooled_rows(&settings.file.database.spool.dir, &mut sources);
    let read = Read {
        span_ms,
        spool_last_ms: spooled.iter().map(|r| r.time_ms).max(),
        spooled,
    };
    let found = match &settings.database {
        DatabaseTarget::Postgres(url) => postgres::read(url, read, &mut sources).await?,
        DatabaseTarget::Sqlite(path) => {
            let path = path.clone();
            let (found, back) = tokio::task::spawn_blocking(move || {
                let r = sqlite::read(&path, read, &mut sources);
                (r, sources)
            })
            .await
            .map_err(|e| RebuildError::Config(e.to_string()))?;
            sources = back;
            found?
        }
        DatabaseTarget::JsonLines(_) => return Ok(None),
    };
    let Some((collect, acks)) = found else {
        return Ok(None);
    };
    let n_sources = sources.list.len();
    let n_acks = acks.len();
    let r = collect.finish(sources, acks);
    tracing::info!(
        from = %crate::sink::jsonl::rfc3339(r.from_ms),
        to = %crate::sink::jsonl::rfc3339(r.last_event_ms),
        read = r.read,
        kept = r.rows(),
        sources = n_sources,
        acknowledgements = n_acks,
        seconds = started.elapsed().as_secs_f64(),
        "OEE state rebuilt from stored telemetry"
    );
    Ok(Some(r))
}

/// What a reader needs besides its database.
struct Read {
    span_ms: Ms,
    /// The spool's rows (read first: their newest time may be the newest of all).
    spooled: Vec<Row>,
    spool_last_ms: Option<Ms>,
}

impl Read {
    /// The collector for a database whose newest OEE sample is `db_last_ms`; `None` when
    /// neither it nor the spool has any.
    fn collect(self, db_last_ms: Option<Ms>) -> Option<Collect> {
        let last = db_last_ms.max(self.spool_last_ms)?;
        let mut c = Collect::new(last, self.span_ms);
        for r in self.spooled {
            c.push(r);
        }
        Some(c)
    }
}

type Found = Option<(Collect, Vec<(FaultInstanceId, Ms, String)>)>;

/// Telemetry rows still in the spool: what a previous run could not write.
fn spooled_rows(dir: &std::path::Path, sources: &mut Sources) -> Vec<Row> {
    let batches = match sink::spooled_batches(dir) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "the spool cannot be read for the OEE rebuild; rebuilding from the database only");
            return Vec::new();
        }
    };
    let mut rows = Vec::new();
    for b in batches {
        for r in b.records {
            let Record::Telemetry(t) = r else { continue };
            let g = &t.tag;
            if !OEE_SIGNAL_TYPES.contains(&g.signal_type.as_str()) || g.asset.machine_id.is_empty()
            {
                continue;
            }
            let Some(source) = sources.intern(&Ident {
                site: &g.asset.site_id,
                line: &g.asset.line_id,
                machine: &g.asset.machine_id,
                signal_type: g.signal_type.as_str(),
                group: &g.source.group,
                edge_node: &g.source.edge_node,
                device: g.source.device.as_deref(),
                metric: &g.source.metric,
            }) else {
                continue;
            };
            rows.push(Row {
                source,
                time_ms: t.time_ms,
                value: t.value,
                quality: t.quality,
                received_ms: t.received_at_ms,
                order_key: Some(t.order_key()),
                int_bits: (t.int_bits != 0).then_some(i16::from(t.int_bits)),
            });
        }
    }
    rows
}

fn epoch_ms(t: SystemTime) -> Ms {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as Ms,
        Err(e) => -(e.duration().as_millis() as Ms),
    }
}

fn at(ms: Ms) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// An instance id as the `faults` table spells it (hex).
fn instance_id(s: &str) -> Option<FaultInstanceId> {
    u64::from_str_radix(s, 16).ok().map(FaultInstanceId)
}

/// A progress line every million rows read.
fn note_progress(read: u64) {
    if read > 0 && read.is_multiple_of(1_000_000) {
        tracing::info!(rows = read, "rebuilding OEE state: reading telemetry");
    }
}

mod postgres {
    use super::*;
    use tokio_postgres::{Config, NoTls};

    /// Rows read per round trip.
    const CHUNK: i32 = 20_000;

    pub(super) async fn read(
        url: &str,
        read: Read,
        sources: &mut Sources,
    ) -> Result<Found, RebuildError> {
        let mut config = Config::from_str(url).map_err(|e| RebuildError::Config(e.to_string()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let (mut client, conn) = config.connect(NoTls).await?;
        let conn = tokio::spawn(conn);
        let r = read_with(&mut client, read, sources).await;
        drop(client);
        let _ = conn.await;
        r
    }

    async fn read_with(
        c: &mut tokio_postgres::Client,
        read: Read,
        sources: &mut Sources,
    ) -> Result<Found, RebuildError> {
        let exists: bool = c
            .query_one(
                "SELECT to_regclass('telemetry') IS NOT NULL AND to_regclass('faults') IS NOT NULL",
                &[],
            )
            .await?
            .get(0);
        if !exists {
            return Ok(read.collect(None).map(|c| (c, Vec::new())));
        }
        // Schema version 1 has no order_key / int_bits (the sink migrates after this).
        let v2: bool = c
            .query_one(
                "SELECT count(*) = 2 FROM information_schema.columns \
                 WHERE table_name = 'telemetry' AND column_name IN ('order_key', 'int_bits') \
                 AND table_schema = current_schema()",
                &[],
            )
            .await?
            .get(0);
        let types: Vec<&str> = OEE_SIGNAL_TYPES.to_vec();
        // The newest OEE sample. telemetry has no b-tree on time alone; the newest windows
        // (an index) bound the search so the BRIN index can skip the rest.
        let hint: Option<SystemTime> = c
            .query_one(
                "SELECT GREATEST(\
                   (SELECT max(window_start) FROM oee_windows WHERE window_kind = 'hour'), \
                   (SELECT max(window_start) FROM oee_windows WHERE window_kind = 'rolling'))",
                &[],
            )
            .await?
            .get(0);
        let newest = "SELECT max(time) FROM telemetry WHERE signal_type = ANY($1) \
                      AND machine_id <> '' AND time >= $2";
        let mut last: Option<SystemTime> = None;
        if let Some(h) = hint {
            last = c.query_one(newest, &[&types, &h]).await?.get(0);
        }
        if last.is_none() {
            last = c.query_one(newest, &[&types, &at(0)]).await?.get(0);
        }
        let span_ms = read.span_ms;
        let Some(mut collect) = read.collect(last.map(epoch_ms)) else {
            return Ok(None);
        };
        let seed_from = at(collect.from_ms.saturating_sub(span_ms));
        let (order, bits) = if v2 {
            ("order_key", "int_bits")
        } else {
            ("NULL::bigint", "NULL::smallint")
        };
        let sql = format!(
            "SELECT site_id, line_id, machine_id, signal_type, time, value, quality, sp_group, \
             sp_edge_node, sp_device, sp_metric, received_at, {order}, {bits} \
             FROM telemetry WHERE time >= $1 AND signal_type = ANY($2) AND machine_id <> ''"
        );
        let tx = c.transaction().await?;
        let portal = tx.bind(sql.as_str(), &[&seed_from, &types]).await?;
        loop {
            let chunk = tx.query_portal(&portal, CHUNK).await?;
            let done = chunk.len() < CHUNK as usize;
            for r in chunk {
                let Some(source) = sources.intern(&Ident {
                    site: r.get(0),
                    line: r.get(1),
                    machine: r.get(2),
                    signal_type: r.get(3),
                    group: r.get(7),
                    edge_node: r.get(8),
                    device: r.get(9),
                    metric: r.get(10),
                }) else {
                    continue;
                };
                collect.push(Row {
                    source,
                    time_ms: epoch_ms(r.get(4)),
                    value: r.get(5),
                    quality: r.get(6),
                    received_ms: epoch_ms(r.get(11)),
                    order_key: r.get(12),
                    int_bits: r.get(13),
                });
                note_progress(collect.read);
            }
            if done {
                break;
            }
        }
        tx.commit().await?;
        let acks = c
            .query(
                "SELECT fault_id, acknowledged_at, acknowledged_by FROM faults \
                 WHERE acknowledged_at IS NOT NULL AND (resolved_at IS NULL OR resolved_at >= $1)",
                &[&at(collect.from_ms)],
            )
            .await?
            .iter()
            .filter_map(|r| {
                let id = instance_id(r.get::<_, &str>(0))?;
                let who: Option<String> = r.get(2);
                Some((id, epoch_ms(r.get(1)), who.unwrap_or_default()))
            })
            .collect();
        Ok(Some((collect, acks)))
    }
}

mod sqlite {
    use super::*;
    use rusqlite::{Connection, OpenFlags, OptionalExtension};

    pub(super) fn read(
        path: &std::path::Path,
        read: Read,
        sources: &mut Sources,
    ) -> Result<Found, RebuildError> {
        let err = |e: rusqlite::Error| RebuildError::Sqlite {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        if !path.exists() {
            return Ok(read.collect(None).map(|c| (c, Vec::new())));
        }
        let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(err)?;
        let version: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        if version < 1 {
            return Ok(read.collect(None).map(|c| (c, Vec::new())));
        }
        let types = OEE_SIGNAL_TYPES
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let last: Option<Ms> = c
            .query_row(
                &format!(
                    "SELECT max(time) FROM telemetry WHERE signal_type IN ({types}) \
                     AND machine_id <> ''"
                ),
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?
            .flatten();
        let span_ms = read.span_ms;
        let Some(mut collect) = read.collect(last) else {
            return Ok(None);
        };
        let (order, bits) = if version >= 2 {
            ("order_key", "int_bits")
        } else {
            ("NULL", "NULL")
        };
        let mut st = c
            .prepare(&format!(
                "SELECT site_id, line_id, machine_id, signal_type, time, value, quality, \
                 sp_group, sp_edge_node, sp_device, sp_metric, received_at, {order}, {bits} \
                 FROM telemetry WHERE time >= ?1 AND signal_type IN ({types}) \
                 AND machine_id <> ''"
            ))
            .map_err(err)?;
        let mut q = st
            .query([collect.from_ms.saturating_sub(span_ms)])
            .map_err(err)?;
        while let Some(r) = q.next().map_err(err)? {
            let text = |i: usize| r.get_ref(i).ok().and_then(|v| v.as_str().ok());
            let (Some(site), Some(line), Some(machine), Some(signal_type)) =
                (text(0), text(1), text(2), text(3))
            else {
                continue;
            };
            let (Some(group), Some(edge_node), Some(metric)) = (text(7), text(8), text(10)) else {
                continue;
            };
            let Some(source) = sources.intern(&Ident {
                site,
                line,
                machine,
                signal_type,
                group,
                edge_node,
                device: text(9),
                metric,
            }) else {
                continue;
            };
            collect.push(Row {
                source,
                time_ms: r.get(4).map_err(err)?,
                value: r.get(5).map_err(err)?,
                quality: r.get(6).map_err(err)?,
                received_ms: r.get(11).map_err(err)?,
                order_key: r.get(12).map_err(err)?,
                int_bits: r.get(13).map_err(err)?,
            });
            note_progress(collect.read);
        }
        let mut st = c
            .prepare(
                "SELECT fault_id, acknowledged_at, acknowledged_by FROM faults \
                 WHERE acknowledged_at IS NOT NULL AND (resolved_at IS NULL OR resolved_at >= ?1)",
            )
            .map_err(err)?;
        let acks = st
            .query_map([collect.from_ms], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Ms>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })
            .map_err(err)?
            .filter_map(|r| r.ok())
            .filter_map(|(id, at, who)| Some((instance_id(&id)?, at, who.unwrap_or_default())))
            .collect();
        Ok(Some((collect, acks)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use oee_core::normalize::{Asset, SignalTag, SourceRef};

    use super::*;
    use crate::sink::sqlite::SqliteWriter;
    use crate::sink::{Batch, BatchId, TelemetryRow};

    const H: Ms = 3_600_000;

    fn read(span_ms: Ms) -> Read {
        Read {
            span_ms,
            spooled: Vec::new(),
            spool_last_ms: None,
        }
    }

    fn no_rules() -> Sources {
        let domain = oee_core::config::build_domain(
            &Default::default(),
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
        Sources::new(Arc::new(domain))
    }
    const T: Ms = 1_767_254_400_000;

    fn tag(metric: &str, signal_type: SignalType) -> Arc<SignalTag> {
        Arc::new(SignalTag {
            asset: Asset {
                site_id: "S1".into(),
                line_id: "L1".into(),
                machine_id: "M1".into(),
                labels: Vec::new(),
            },
            signal_type,
            unit: None,
            source: SourceRef {
                group: "G".into(),
                edge_node: "E".into(),
                device: Some("M1".into()),
                metric: metric.into(),
            },
            rule: Some(0),
            fault_code: None,
        })
    }

    fn row(tag: &Arc<SignalTag>, time_ms: Ms, value: f64, seq: u8) -> Record {
        Record::Telemetry(TelemetryRow {
            tag: Arc::clone(tag),
            time_ms,
            value: Some(value),
            value_text: None,
            quality: 192,
            is_historical: false,
            received_at_ms: time_ms + 20,
            seq: Some(seq),
            bd_seq: Some(2),
            index: 0,
            int_bits: if tag.signal_type.is_counter() { 16 } else { 0 },
        })
    }

    /// A SQLite database written by the sink `run` uses reads back whole; the rebuild keeps
    /// every row of the last `span` and, before it, only the newest row of each source (a
    /// running flag and a counter value from before the range still start it).
    #[test]
    fn sqlite_rows_read_back_and_only_the_newest_row_of_each_source_seeds_the_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oee.db");
        let total = tag("Total", SignalType::CounterTotal);
        let running = tag("Running", SignalType::StateRunning);
        let temp = tag("Temp", SignalType::Analog(Arc::from("temperature")));
        let records = vec![
            row(&total, T - 3 * H, 100.0, 1),
            row(&running, T - 3 * H, 1.0, 1),
            row(&total, T - 5 * H / 2, 150.0, 2),
            row(&running, T - 11 * H / 5, 0.0, 3),
            row(&temp, T - H, 70.0, 4),
            row(&total, T - H, 200.0, 4),
            row(&total, T, 250.0, 5),
        ];
        let mut w = SqliteWriter::open(&path).unwrap();
        w.write(&Batch {
            id: BatchId { writer: 1, seq: 1 },
            records,
        })
        .unwrap();
        drop(w);

        let mut sources = no_rules();
        let (collect, acks) = sqlite::read(&path, read(2 * H), &mut sources)
            .unwrap()
            .unwrap();
        assert_eq!(collect.read, 6, "OEE signals only");
        assert_eq!(sources.list.len(), 2, "{:?}", sources.list);
        let r = collect.finish(sources, acks);
        assert_eq!((r.from_ms, r.last_event_ms), (T - 2 * H, T));
        assert_eq!(r.last_received_ms, T + 20);
        let m1 = MachineId::new("S1", "L1", "M1");
        let key = |seq: u8| crate::calculate::tie_break(Some(2), Some(seq), 0);
        let counter = |ts_ms, value, seq| OeeInput::Counter {
            machine: m1.clone(),
            counter: oee_core::counters::CounterKind::Total,
            ts_ms,
            seq: key(seq),
            value,
            bits: 16,
            session: 2,
        };
        assert_eq!(
            r.inputs().collect::<Vec<_>>(),
            vec![
                counter(T - 5 * H / 2, 150, 2),
                OeeInput::State {
                    machine: m1.clone(),
                    ts_ms: T - 11 * H / 5,
                    seq: key(3),
                    value: oee_core::windows::StateValue::Running(false),
                },
                counter(T - H, 200, 4),
                counter(T, 250, 5),
            ]
        );
    }

    #[test]
    fn a_missing_database_has_nothing_to_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let found = sqlite::read(&dir.path().join("none.db"), read(H), &mut no_rules()).unwrap();
        assert!(found.is_none());
    }

    /// An acknowledgement goes between the inputs by its time, after those of the same time.
    #[test]
    fn acknowledgements_merge_into_the_inputs_by_time() {
        let mut sources = no_rules();
        let fault = Ident {
            site: "S1",
            line: "L1",
            machine: "M1",
            signal_type: "fault.code",
            group: "G",
            edge_node: "E",
            device: Some("M1"),
            metric: "Fault/Code",
        };
        let source = sources.intern(&fault).unwrap();
        assert_eq!(
            sources.intern(&fault),
            Some(source),
            "one source, interned once"
        );
        let mut c = Collect::new(T, H);
        for (t, code) in [(T - 2_000, 7.0), (T - 1_000, 0.0), (T, 7.0)] {
            c.push(Row {
                source,
                time_ms: t,
                value: Some(code),
                quality: 192,
                received_ms: t,
                order_key: Some(1),
                int_bits: Some(32),
            });
        }
        let id = FaultInstanceId(0xabc);
        let r = c.finish(sources, vec![(id, T - 1_000, "Ada".into())]);
        let times: Vec<(Ms, bool)> = r
            .inputs()
            .map(|i| match i {
                OeeInput::FaultCode { ts_ms, .. } => (ts_ms, false),
                OeeInput::Ack { ts_ms, .. } => (ts_ms, true),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            times,
            [
                (T - 2_000, false),
                (T - 1_000, false),
                (T - 1_000, true),
                (T, false)
            ]
        );
    }
}
