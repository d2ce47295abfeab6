//! The OEE task: ONE task owns the [`OeeEngine`] (line roll-ups need every machine of a line
//! in one engine) and everything the live view shows.
//!
//! The shards turn their normalized signals into [`OeeInput`]s ([`signal_input`]) and send
//! them, with the node lifecycle, over a bounded channel ([`OeeItem`] batches, one per
//! Sparkplug message). The task
//!
//! - feeds the inputs to the engine (stage `calculate` of
//!   `stream_processor_pipeline_duration_seconds`);
//! - advances the watermark from the wall clock every second to `now − allowed_lateness`, so
//!   windows close when data stops (a machine that goes silent still gets its windows, as
//!   unknown time); the engine's own watermark (`newest event − allowed_lateness`) still
//!   applies, whichever is later wins. In a replay the clock is the recorded time instead,
//!   reported by the shards ([`OeeItem::Clock`], see [`crate::pipeline::Timing`]);
//! - applies acknowledgements ([`AckRequest`]) in its own order, answering with the instance;
//! - turns window results into `oee_windows` rows (every result, every revision; an `oee_window`
//!   event only when an hour/shift/day window is first final, revision 0 — rolling windows
//!   are re-emitted every interval and would flood `events`) and fault transitions into
//!   `faults` rows plus a `fault_transition` event with a stable id (an instance that late
//!   data re-folded away keeps its row with the state `SUPERSEDED`);
//! - publishes a fresh [`LiveView`] at most every 250 ms when something changed, and the
//!   `/metrics` and `/health` numbers ([`OeeStats`]).
//!
//! On shutdown (the shards have finished and dropped their senders) the engine is flushed:
//! the watermark moves to the newest event time seen, so every window that ends at or before
//! the last data is emitted final (a stop shorter than the micro-stop threshold at the very
//! end may still hold its window back, see docs/oee.md). Windows still open are not written;
//! the next run rebuilds them from the stored telemetry ([`OeeTask::rebuild`]) and completes
//! them with the data it receives.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oee_core::counters::CounterKind;
use oee_core::faults::FaultParams;
use oee_core::faults::{FaultEvent, FaultInstance, FaultInstanceId, FaultState, FaultTransition};
use oee_core::intervals::Category;
use oee_core::kpi::{Sums, TbfBasis};
use oee_core::normalize::{self, Signal, SignalType, quality};
use oee_core::types::{LineId, MachineId, Ms};
use oee_core::windows::{
    OeeEngine, OeeInput, OeeParams, Output, Scope, StateValue, WindowKind, WindowResult,
};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::live::{
    AckError, AckRequest, FaultView, KpiView, LineView, LiveView, MachineView, NodeView, StateSpan,
};
use crate::pipeline::{PipelineStats, Timing, now_ms};
use crate::sink::{EventKind, EventRow, FaultRow, OeeWindowRow, Record};

mod state_changes;
use state_changes::StateChanges;

/// How often the live view may be republished.
const VIEW_EVERY: Duration = Duration::from_millis(250);
/// How often the watermark follows the wall clock (in view ticks).
const CLOCK_EVERY_TICKS: u64 = 4;
/// The live node list's size when the pipeline does not set it (`sparkplug.max_nodes`).
const DEFAULT_MAX_NODES: usize = 10_000;
/// The timeline of the live view covers this much event time.
const TIMELINE_MS: Ms = 3_600_000;

/// A node or device lifecycle change, for the live view's node list.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeEvent {
    Online {
        group: Arc<str>,
        edge_node: Arc<str>,
        bd_seq: Option<u64>,
        at_ms: i64,
    },
    Offline {
        group: Arc<str>,
        edge_node: Arc<str>,
        at_ms: i64,
    },
    DeviceOnline {
        group: Arc<str>,
        edge_node: Arc<str>,
        device: Arc<str>,
    },
    DeviceOffline {
        group: Arc<str>,
        edge_node: Arc<str>,
        device: Arc<str>,
    },
}

/// What a shard sends the OEE task.
#[derive(Clone, Debug, PartialEq)]
pub enum OeeItem {
    Input(OeeInput),
    Node(NodeEvent),
    /// Replay: shard `shard` has handled everything recorded up to `at_ms`.
    Clock {
        shard: usize,
        at_ms: u64,
    },
}

/// The tie-break of an input: `bdSeq` (low 40 bits), the message's `seq` (255 when there is
/// none, e.g. STALE markers of a connection loss) and the metric's index in its message.
/// Equal timestamps are then ordered the same way on every replay.
pub fn tie_break(bd_seq: Option<u64>, seq: Option<u8>, index: usize) -> u64 {
    ((bd_seq.unwrap_or(0) & 0xFF_FFFF_FFFF) << 24)
        | (u64::from(seq.unwrap_or(u8::MAX)) << 16)
        | (index as u64 & 0xFFFF)
}

/// The engine input for one normalized signal of `machine`, if it is one the engine uses:
///
/// - `counter.total/good/reject` → `Counter` (the raw value, `int_bits` as the rollover width
///   (64 when the datatype is not an integer), the node's bdSeq as the session);
/// - `state.running` → `State(Running)`, `state.code` → `State(Code)` (the engine maps the code
///   with `processing.state_codes`);
/// - `fault.active` → `Fault` with the rule's `fault_code` (0 when the rule has none);
/// - `fault.code` → `FaultCode`;
/// - a STALE sample (quality 500: the node or device died, or the broker connection was lost)
///   of any of these → `Offline`: unknown time until the next state. Every STALE marker of one
///   death carries the same time and tie-break, so the engine keeps one.
///
/// Analog and unmapped signals, and null values that are not STALE, give `None`.
pub fn signal_input(
    sig: &Signal,
    machine: MachineId,
    tie: u64,
    session: Option<u64>,
) -> Option<OeeInput> {
    sample_input(
        &Sample {
            kind: &sig.tag.signal_type,
            fault_code: sig.tag.fault_code,
            value: &sig.value,
            ts_ms: sig.timestamp_ms,
            quality: sig.quality,
            int_bits: sig.int_bits,
        },
        machine,
        tie,
        session,
    )
}

/// What [`sample_input`] reads of a live [`Signal`] or a [`StoredSample`].
struct Sample<'a> {
    kind: &'a SignalType,
    fault_code: Option<i64>,
    value: &'a normalize::Value,
    ts_ms: Ms,
    quality: i32,
    int_bits: u8,
}

fn sample_input(
    s: &Sample<'_>,
    machine: MachineId,
    tie: u64,
    session: Option<u64>,
) -> Option<OeeInput> {
    let kind = s.kind;
    let oee_signal = matches!(
        kind,
        SignalType::CounterTotal
            | SignalType::CounterGood
            | SignalType::CounterReject
            | SignalType::StateRunning
            | SignalType::StateCode
            | SignalType::FaultActive
            | SignalType::FaultCode
    );
    if !oee_signal {
        return None;
    }
    let ts_ms = s.ts_ms;
    if s.quality == quality::STALE {
        // One tie-break per death, whatever the metric.
        let seq = tie & !0xFFFF;
        return Some(OeeInput::Offline {
            machine,
            ts_ms,
            seq,
        });
    }
    let int = |v: &normalize::Value| match v {
        normalize::Value::Int(i) => Some(i128::from(*i)),
        normalize::Value::UInt(u) => Some(i128::from(*u)),
        _ => None,
    };
    let seq = tie;
    Some(match kind {
        SignalType::CounterTotal | SignalType::CounterGood | SignalType::CounterReject => {
            OeeInput::Counter {
                machine,
                counter: match kind {
                    SignalType::CounterTotal => CounterKind::Total,
                    SignalType::CounterGood => CounterKind::Good,
                    _ => CounterKind::Reject,
                },
                ts_ms,
                seq,
                value: int(s.value)?,
                bits: if s.int_bits == 0 { 64 } else { s.int_bits },
                session: session.unwrap_or(0),
            }
        }
        SignalType::StateRunning => match s.value {
            normalize::Value::Bool(b) => OeeInput::State {
                machine,
                ts_ms,
                seq,
                value: StateValue::Running(*b),
            },
            _ => return None,
        },
        SignalType::StateCode => OeeInput::State {
            machine,
            ts_ms,
            seq,
            value: StateValue::Code(i64::try_from(int(s.value)?).ok()?),
        },
        SignalType::FaultActive => match s.value {
            normalize::Value::Bool(active) => OeeInput::Fault {
                machine,
                code: s.fault_code.unwrap_or(0),
                active: *active,
                ts_ms,
                seq,
                severity: None,
            },
            _ => return None,
        },
        SignalType::FaultCode => OeeInput::FaultCode {
            machine,
            code: i64::try_from(int(s.value)?).ok()?,
            ts_ms,
            seq,
        },
        _ => return None,
    })
}

/// A `telemetry` row read back to rebuild the engine after a restart ([`crate::rebuild`]).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSample {
    pub machine: MachineId,
    pub signal_type: SignalType,
    /// For `fault.active`: the code of the rule that maps the row's Sparkplug identity today.
    pub fault_code: Option<i64>,
    pub time_ms: Ms,
    /// `telemetry.value`: numbers as stored, booleans as 0/1, NULL for null and STALE.
    pub value: Option<f64>,
    pub quality: i32,
    /// `telemetry.order_key` ([`tie_break`]); NULL in rows written before schema version 2.
    pub order_key: Option<i64>,
    /// `telemetry.int_bits`; NULL when not an integer (or before schema version 2).
    pub int_bits: Option<i16>,
}

/// The engine input a stored row stood for when it was live: the same as [`signal_input`]
/// gave then, given the row's order key (tie-break, and the bdSeq session in its high bits) and
/// integer width. Rows from before schema version 2 order by time only and count with 64 bits.
pub fn stored_input(s: &StoredSample) -> Option<OeeInput> {
    use normalize::Value;
    let value = match s.value {
        None => Value::Null,
        Some(v) => match s.signal_type {
            SignalType::StateRunning | SignalType::FaultActive => Value::Bool(v != 0.0),
            // Integers were stored as f64; only exact ones come back as integers.
            _ if v.fract() == 0.0 && v.abs() < 9.2e18 => Value::Int(v as i64),
            _ => Value::Float(v),
        },
    };
    let tie = s.order_key.map_or(0, |k| k as u64);
    sample_input(
        &Sample {
            kind: &s.signal_type,
            fault_code: s.fault_code,
            value: &value,
            ts_ms: s.time_ms,
            quality: s.quality,
            int_bits: s.int_bits.and_then(|b| u8::try_from(b).ok()).unwrap_or(0),
        },
        s.machine.clone(),
        tie,
        Some(tie >> 24),
    )
}

/// The machine of a signal, `None` when the rule gives no machine id.
pub fn machine_of(sig: &Signal) -> Option<MachineId> {
    let a = &sig.tag.asset;
    (!a.machine_id.is_empty()).then(|| MachineId::new(&a.site_id, &a.line_id, &a.machine_id))
}

/// KPIs of one machine for `/metrics` (ratios 0..1; `None` = NULL, not exported).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MachineGauges {
    pub machine_id: String,
    pub availability: Option<f64>,
    pub performance: Option<f64>,
    pub quality: Option<f64>,
    pub oee: Option<f64>,
}

/// What `/metrics` and `/health` read of the OEE task, refreshed with every live view.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OeeSnapshot {
    /// Open windows: each machine's and line's current hour window.
    pub active_windows: u64,
    /// Fault instances ACTIVE or ACKNOWLEDGED.
    pub active_faults: u64,
    /// Per machine: the latest rolling window, else the current hour window.
    pub machines: Vec<MachineGauges>,
    /// Active faults by (machine_id, severity band), only non-zero entries.
    pub faults_by_band: Vec<(String, &'static str, u64)>,
    /// Inputs the engine dropped as older than its revision horizon.
    pub too_late: u64,
    /// What the engine keeps in memory (slices, windows, raw inputs).
    pub retained: oee_core::windows::Retained,
    /// Window results (rows) and fault transitions emitted.
    pub windows_out: u64,
    pub fault_events_out: u64,
}

/// Shared with `/metrics` and `/health`.
#[derive(Debug, Default)]
pub struct OeeStats {
    pub snapshot: Mutex<OeeSnapshot>,
}

impl OeeStats {
    pub fn snapshot(&self) -> OeeSnapshot {
        self.snapshot.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Severity bands (OPC UA): `high` 801–1000, `medium_high` 601–800, `medium` 401–600,
/// `medium_low` 201–400, `low` 1–200. Bounded label cardinality.
pub fn severity_band(severity: u16) -> &'static str {
    match severity {
        801.. => "high",
        601..=800 => "medium_high",
        401..=600 => "medium",
        201..=400 => "medium_low",
        _ => "low",
    }
}

fn category_name(c: Category) -> &'static str {
    match c {
        Category::Running => "running",
        Category::UnplannedStop => "unplanned_stop",
        Category::Setup => "setup",
        Category::PlannedStop => "planned_stop",
        Category::NotScheduled => "not_scheduled",
        Category::Unknown => "unknown",
    }
}

fn kind_name(k: WindowKind) -> &'static str {
    match k {
        WindowKind::Tumbling => "hour",
        WindowKind::Rolling => "rolling",
        WindowKind::Shift => "shift",
        WindowKind::Day => "day",
    }
}

fn state_name(s: FaultState) -> &'static str {
    match s {
        FaultState::Active => "ACTIVE",
        FaultState::Acknowledged => "ACKNOWLEDGED",
        FaultState::Resolved => "RESOLVED",
    }
}

fn transition_name(t: FaultTransition) -> &'static str {
    match t {
        FaultTransition::Activated => "activated",
        FaultTransition::Reactivated => "reactivated",
        FaultTransition::Acknowledged => "acknowledged",
        FaultTransition::Resolved => "resolved",
        FaultTransition::Revised => "revised",
        FaultTransition::Superseded => "superseded",
    }
}

/// The instance as the API shows it.
pub fn fault_view(i: &FaultInstance) -> FaultView {
    let mut flags = Vec::new();
    if i.chattering {
        flags.push("chattering".to_string());
    }
    if i.failure {
        flags.push("failure".to_string());
    }
    let row = FaultRow {
        id: i.id.to_string(),
        site_id: i.machine.site.to_string(),
        line_id: i.machine.line.to_string(),
        machine_id: i.machine.machine.to_string(),
        code: i.code,
        state: state_name(i.state).to_string(),
        severity: i32::from(i.severity),
        first_active_ms: i.first_active_ms,
        last_change_ms: i
            .last_active_ms
            .max(i.resolved_ms.unwrap_or(Ms::MIN))
            .max(i.acked_ms.unwrap_or(Ms::MIN)),
        resolved_ms: i.resolved_ms,
        acknowledged_ms: i.acked_ms,
        acknowledged_by: i.acked_by.as_deref().map(str::to_string),
        occurrences: i64::from(i.occurrence_count),
        flags,
    };
    FaultView {
        row,
        resolved_unacknowledged: i.state == FaultState::Resolved && i.acked_ms.is_none(),
    }
}

/// The `faults` row and the `fault_transition` event of one fault event.
pub fn fault_records(ev: &FaultEvent) -> (FaultRow, EventRow) {
    let mut v = fault_view(&ev.instance).row;
    if ev.transition == FaultTransition::Superseded {
        v.flags.push("superseded".to_string());
    }
    let transition = transition_name(ev.transition);
    let event = EventRow {
        time_ms: ev.ts_ms,
        kind: EventKind::FaultTransition,
        site_id: Some(v.site_id.clone()),
        line_id: Some(v.line_id.clone()),
        machine_id: Some(v.machine_id.clone()),
        severity: Some(v.severity),
        // Stable (a replay gives the same ids) and distinct for distinct content (two
        // revisions of one instance differ in what they say).
        id: format!(
            "fault:{}:{transition}:{}:{}:{}:{}:{}",
            v.id,
            ev.ts_ms,
            ev.instance.occurrence_count,
            v.state,
            v.resolved_ms
                .map_or_else(|| "-".to_string(), |t| t.to_string()),
            v.acknowledged_ms
                .map_or_else(|| "-".to_string(), |t| t.to_string()),
        ),
        payload: json!({
            "instance_id": v.id, "transition": transition, "code": v.code,
            "state": v.state, "severity": v.severity, "occurrences": v.occurrences,
            "first_active_ms": v.first_active_ms, "resolved_ms": v.resolved_ms,
            "acknowledged_ms": v.acknowledged_ms, "acknowledged_by": v.acknowledged_by,
            "flags": v.flags,
        }),
    };
    // Late data re-folded the instance away (its activations now belong to another one): the
    // row stays, marked, so nothing shows it as open forever.
    if ev.transition == FaultTransition::Superseded {
        v.state = "SUPERSEDED".to_string();
    }
    (v, event)
}

fn scope_parts(s: &Scope) -> (&'static str, String, String, String) {
    match s {
        Scope::Machine(m) => (
            "machine",
            m.site.to_string(),
            m.line.to_string(),
            m.machine.to_string(),
        ),
        Scope::Line(l) => (
            "line",
            l.site.to_string(),
            l.line.to_string(),
            String::new(),
        ),
    }
}

/// The `oee_windows` row of a window result, and its `oee_window` event when it is an
/// hour/shift/day window emitted for the first time.
pub fn window_records(w: &WindowResult) -> (OeeWindowRow, Option<EventRow>) {
    let (scope, site_id, line_id, machine_id) = scope_parts(&w.scope);
    let k = &w.kpis;
    let row = OeeWindowRow {
        scope,
        site_id,
        line_id,
        machine_id,
        window_kind: kind_name(w.kind).to_string(),
        window_start_ms: w.start,
        window_end_ms: w.end,
        planned_ms: w.sums.ppt_ms,
        run_ms: w.sums.run_ms,
        setup_ms: w.sums.setup_ms,
        unknown_ms: w.sums.unknown_ms,
        ideal_ms: k.ideal_ns as f64 / 1e6,
        fully_productive_ms: k.fpt_ns as f64 / 1e6,
        total_count: k.total,
        good_count: k.good,
        reject_count: w.sums.reject,
        failures: w.sums.failures,
        repair_ms: w.sums.ttr_ms,
        availability: k.availability,
        performance: k.performance,
        quality: k.quality,
        oee: k.oee,
        mtbf_s: k.mtbf_ms.map(|v| v / 1000.0),
        mttr_s: k.mttr_ms.map(|v| v / 1000.0),
        flags: k.flags.names().into_iter().map(str::to_string).collect(),
        revision: i32::try_from(w.revision).unwrap_or(i32::MAX),
    };
    let event = (w.revision == 0 && w.kind != WindowKind::Rolling).then(|| EventRow {
        time_ms: w.end,
        kind: EventKind::OeeWindow,
        site_id: Some(row.site_id.clone()),
        line_id: Some(row.line_id.clone()),
        machine_id: (!row.machine_id.is_empty()).then(|| row.machine_id.clone()),
        severity: None,
        id: format!(
            "oee_window:{}:{}/{}/{}:{}:{}",
            row.scope, row.site_id, row.line_id, row.machine_id, row.window_kind, w.start
        ),
        payload: json!({
            "scope": row.scope, "window_kind": row.window_kind,
            "window_start_ms": w.start, "window_end_ms": w.end,
            "availability": row.availability, "performance": row.performance,
            "quality": row.quality, "oee": row.oee, "total_count": row.total_count,
            "good_count": row.good_count, "flags": row.flags,
        }),
    });
    (row, event)
}

fn kpi_view(w: &WindowResult) -> KpiView {
    let k = &w.kpis;
    KpiView {
        window_kind: kind_name(w.kind).to_string(),
        window_start_ms: w.start,
        window_end_ms: w.end,
        availability: k.availability,
        performance: k.performance,
        quality: k.quality,
        oee: k.oee,
        mtbf_s: k.mtbf_ms.map(|v| v / 1000.0),
        mttr_s: k.mttr_ms.map(|v| v / 1000.0),
        total_count: k.total,
        good_count: k.good,
        reject_count: w.sums.reject,
        planned_ms: w.sums.ppt_ms,
        run_ms: w.sums.run_ms,
        flags: k.flags.names().into_iter().map(str::to_string).collect(),
    }
}

/// A line's machines and the sum of their current windows (start, end, sums).
type LineAcc = (Vec<String>, Option<(Ms, Ms, Sums)>);

/// (group, edge node)
type NodeKey = (Arc<str>, Arc<str>);

/// What the task remembers of a machine for the live view.
#[derive(Debug, Default)]
struct MachineLive {
    /// State changes, pruned to the timeline.
    states: StateChanges,
    rolling: Option<WindowResult>,
}

/// The OEE task's state. Build with [`OeeTask::new`], run with [`OeeTask::run`].
pub struct OeeTask {
    engine: OeeEngine,
    p: OeeParams,
    records: mpsc::Sender<Record>,
    stats: Arc<PipelineStats>,
    view: watch::Sender<Arc<LiveView>>,
    machines: BTreeMap<MachineId, MachineLive>,
    line_rolling: BTreeMap<LineId, WindowResult>,
    nodes: BTreeMap<NodeKey, NodeView>,
    /// Most nodes the live node list holds (`sparkplug.max_nodes`).
    max_nodes: usize,
    out: Vec<Output>,
    max_ts: Ms,
    dirty: bool,
    /// The `last_change` last written per fault instance.
    last_change: std::collections::HashMap<FaultInstanceId, Ms>,
    windows_out: u64,
    fault_events_out: u64,
    /// Replay: each shard's recorded time; `None` follows the wall clock.
    replay_clocks: Option<Vec<u64>>,
    /// Outside a replay: the watermark also follows the wall clock ([`OeeTask::with_wall_clock`]).
    follow_wall_clock: bool,
}

impl OeeTask {
    pub fn new(
        p: OeeParams,
        f: FaultParams,
        records: mpsc::Sender<Record>,
        stats: Arc<PipelineStats>,
        view: watch::Sender<Arc<LiveView>>,
    ) -> OeeTask {
        OeeTask {
            engine: OeeEngine::new(p.clone(), f),
            p,
            records,
            stats,
            view,
            machines: BTreeMap::new(),
            line_rolling: BTreeMap::new(),
            nodes: BTreeMap::new(),
            max_nodes: DEFAULT_MAX_NODES,
            out: Vec::new(),
            max_ts: Ms::MIN,
            dirty: true,
            last_change: std::collections::HashMap::new(),
            windows_out: 0,
            fault_events_out: 0,
            replay_clocks: None,
            follow_wall_clock: true,
        }
    }

    /// Where the watermark's clock comes from: the wall clock, or (replay) the recorded time of
    /// the slowest of `shards` shards, as they report it with [`OeeItem::Clock`].
    pub fn with_timing(mut self, timing: Timing, shards: usize) -> OeeTask {
        self.replay_clocks = match timing {
            Timing::Wall => None,
            Timing::Replay => Some(vec![0; shards.max(1)]),
        };
        self
    }

    /// Whether the watermark also follows the wall clock (default), so windows close while data
    /// is silent. Off for a source with a clock of its own (the demo's simulated plant, which
    /// may run in the past): only its data moves the watermark.
    pub fn with_wall_clock(mut self, follow: bool) -> OeeTask {
        self.follow_wall_clock = follow;
        self
    }

    /// The time now: the wall clock, or in a replay the slowest shard's recorded time.
    fn now(&self) -> u64 {
        match &self.replay_clocks {
            None => now_ms(),
            Some(c) => c.iter().copied().min().unwrap_or(0),
        }
    }

    /// Replay: a shard's recorded time moved on; the watermark follows the slowest shard.
    fn clock(&mut self, shard: usize, at_ms: u64) {
        let before = self.now();
        if let Some(c) = self.replay_clocks.as_mut().and_then(|c| c.get_mut(shard)) {
            *c = (*c).max(at_ms);
        }
        let now = self.now();
        if now > before {
            self.follow_clock(now as Ms);
        }
    }

    /// Caps the live node list at `max` nodes (see [`OeeTask::node`]).
    pub fn with_max_nodes(mut self, max: usize) -> OeeTask {
        self.max_nodes = max.max(1);
        self
    }

    /// Runs until every input sender is gone, then flushes (see the module docs).
    pub async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Vec<OeeItem>>,
        mut acks: mpsc::Receiver<AckRequest>,
    ) {
        let mut tick = tokio::time::interval(VIEW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                batch = inputs.recv() => match batch {
                    None => break,
                    Some(items) => {
                        self.handle(items);
                        if !self.send_out().await {
                            break;
                        }
                    }
                },
                Some(req) = acks.recv() => {
                    self.ack(req);
                    self.send_out().await;
                }
                _ = tick.tick() => {
                    ticks += 1;
                    if self.replay_clocks.is_none() && ticks.is_multiple_of(CLOCK_EVERY_TICKS) {
                        // Without the wall clock the data's own time (newest event less the
                        // allowed lateness) still moves the watermark.
                        let now = if self.follow_wall_clock { now_ms() as Ms } else { Ms::MIN };
                        self.follow_clock(now);
                        self.send_out().await;
                    }
                    if self.dirty {
                        self.publish();
                    }
                }
            }
        }
        // Flush: every window up to the newest event time seen.
        if self.max_ts != Ms::MIN {
            self.engine.advance_watermark(self.max_ts, &mut self.out);
        }
        self.send_out().await;
        self.publish();
    }

    /// Restores the engine, the fault instances and the live view after a restart from what
    /// the previous run stored ([`crate::rebuild::Rebuild`]): feeds `inputs` (sorted by time),
    /// moves the watermark to where the previous run's clock was when it stopped (its newest
    /// receive time, `last_received_ms`), and marks every
    /// machine unknown from then on (nothing was received while the service was down; new
    /// births end it). What this emits is dropped: the previous run wrote it. Later windows,
    /// and revisions of these by data that arrives now, are written as usual.
    pub fn rebuild(
        &mut self,
        inputs: impl IntoIterator<Item = OeeInput>,
        last_event_ms: Ms,
        last_received_ms: Ms,
    ) {
        for input in inputs {
            self.input(&input);
        }
        if self.replay_clocks.is_none() {
            self.follow_clock(last_received_ms);
        }
        let gap_from = last_event_ms.max(last_received_ms) + 1;
        let machines: Vec<MachineId> = self.machines.keys().cloned().collect();
        for machine in machines {
            self.input(&OeeInput::Offline {
                machine,
                ts_ms: gap_from,
                seq: 0,
            });
        }
        self.out.clear();
        self.dirty = true;
    }

    /// Feeds one batch to the engine.
    pub fn handle(&mut self, items: Vec<OeeItem>) {
        let t0 = Instant::now();
        for item in items {
            match item {
                OeeItem::Input(input) => self.input(&input),
                OeeItem::Node(ev) => self.node(ev),
                OeeItem::Clock { shard, at_ms } => self.clock(shard, at_ms),
            }
        }
        self.stats
            .timings
            .observe("calculate", t0.elapsed().as_secs_f64());
        self.dirty = true;
    }

    fn input(&mut self, input: &OeeInput) {
        let state = match input {
            OeeInput::State {
                machine,
                ts_ms,
                seq,
                value,
            } => Some((
                machine,
                *ts_ms,
                *seq,
                match *value {
                    StateValue::Running(true) => Category::Running,
                    StateValue::Running(false) => self.p.not_running,
                    StateValue::Code(c) => self.p.state_codes.category(c),
                    StateValue::Category(c, _) => c,
                },
            )),
            OeeInput::Offline {
                machine,
                ts_ms,
                seq,
            } => Some((machine, *ts_ms, *seq, Category::Unknown)),
            _ => None,
        };
        let machine = match input {
            OeeInput::State { machine, .. }
            | OeeInput::Counter { machine, .. }
            | OeeInput::IdealCycle { machine, .. }
            | OeeInput::Fault { machine, .. }
            | OeeInput::FaultCode { machine, .. }
            | OeeInput::Offline { machine, .. } => Some(machine),
            _ => None,
        };
        if let Some(m) = machine
            && !self.machines.contains_key(m)
        {
            self.machines.insert(m.clone(), MachineLive::default());
        }
        if let Some((m, ts, seq, cat)) = state
            && let Some(ml) = self.machines.get_mut(m)
        {
            ml.states.insert((ts, seq), cat);
        }
        match input {
            OeeInput::State { ts_ms, .. }
            | OeeInput::Counter { ts_ms, .. }
            | OeeInput::Fault { ts_ms, .. }
            | OeeInput::FaultCode { ts_ms, .. }
            | OeeInput::Offline { ts_ms, .. } => self.max_ts = self.max_ts.max(*ts_ms),
            _ => {}
        }
        self.engine.push(input, &mut self.out);
    }

    /// Applies a lifecycle change to the live node list. The list holds at most `max_nodes`
    /// nodes: a new node beyond it first makes room by dropping the tenth of the offline nodes
    /// that died longest ago; with no offline node to drop it is not listed (counted in
    /// `PipelineStats::live_nodes_unlisted`).
    fn node(&mut self, ev: NodeEvent) {
        match ev {
            NodeEvent::Online {
                group,
                edge_node,
                bd_seq,
                at_ms,
            } => {
                if let Some(n) = self.node_entry(&group, &edge_node) {
                    n.online = true;
                    n.bd_seq = bd_seq;
                    n.last_birth_ms = Some(at_ms);
                    n.devices_online.clear();
                }
            }
            NodeEvent::Offline {
                group,
                edge_node,
                at_ms,
            } => {
                if let Some(n) = self.node_entry(&group, &edge_node) {
                    n.online = false;
                    n.last_death_ms = Some(at_ms);
                    n.devices_online.clear();
                }
            }
            NodeEvent::DeviceOnline {
                group,
                edge_node,
                device,
            } => {
                if let Some(n) = self.node_entry(&group, &edge_node)
                    && let Err(i) = n
                        .devices_online
                        .binary_search_by(|d| d.as_str().cmp(&device))
                {
                    n.devices_online.insert(i, device.to_string());
                }
            }
            NodeEvent::DeviceOffline {
                group,
                edge_node,
                device,
            } => {
                if let Some(n) = self.node_entry(&group, &edge_node) {
                    n.devices_online.retain(|d| **d != *device);
                }
            }
        }
    }

    fn node_entry(&mut self, group: &Arc<str>, edge_node: &Arc<str>) -> Option<&mut NodeView> {
        let key = (group.clone(), edge_node.clone());
        if !self.nodes.contains_key(&key) && self.nodes.len() >= self.max_nodes {
            self.drop_offline_nodes();
            if self.nodes.len() >= self.max_nodes {
                self.stats
                    .live_nodes_unlisted
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return None;
            }
        }
        Some(self.nodes.entry(key).or_insert_with(|| NodeView {
            group: group.to_string(),
            edge_node: edge_node.to_string(),
            online: false,
            bd_seq: None,
            last_birth_ms: None,
            last_death_ms: None,
            devices_online: Vec::new(),
        }))
    }

    /// Drops the tenth (at least one) of the offline nodes that died longest ago, so that a
    /// flood of new nodes costs one scan per tenth of the list, not one per node.
    fn drop_offline_nodes(&mut self) {
        let mut offline: Vec<(Option<i64>, NodeKey)> = self
            .nodes
            .iter()
            .filter(|(_, n)| !n.online)
            .map(|(k, n)| (n.last_death_ms, k.clone()))
            .collect();
        let drop = offline.len().min((self.max_nodes / 10).max(1));
        if drop == 0 {
            return;
        }
        offline.select_nth_unstable_by_key(drop - 1, |(t, _)| *t);
        for (_, key) in offline.into_iter().take(drop) {
            self.nodes.remove(&key);
        }
    }

    /// Moves the watermark to `now − allowed_lateness`.
    pub fn follow_clock(&mut self, now: Ms) {
        let before = self.out.len();
        self.engine.advance_watermark(
            now.saturating_sub(self.p.allowed_lateness_ms),
            &mut self.out,
        );
        if self.out.len() > before {
            self.dirty = true;
        }
    }

    /// Applies an acknowledgement and answers it.
    pub fn ack(&mut self, req: AckRequest) {
        let answer = self.apply_ack(&req.instance_id, &req.who, req.at_ms);
        let _ = req.reply.send(answer);
    }

    fn apply_ack(
        &mut self,
        instance_id: &str,
        who: &str,
        at_ms: i64,
    ) -> Result<FaultView, AckError> {
        let unknown = || AckError::UnknownInstance(instance_id.to_string());
        let id = u64::from_str_radix(instance_id, 16)
            .map(FaultInstanceId)
            .map_err(|_| unknown())?;
        let inst = self.engine.faults().instance(id).ok_or_else(unknown)?;
        if inst.acked_ms.is_some() {
            return Err(AckError::AlreadyAcknowledged(instance_id.to_string()));
        }
        // An acknowledgement comes after everything the instance has seen, whatever the
        // operator's clock says (it may run behind the machine's, as in the demo whose plant
        // runs ahead in simulated time): at the same millisecond as the activation it would
        // sort before it in the fault's history and acknowledge nothing.
        let ts_ms = at_ms
            .max(inst.last_active_ms + 1)
            .max(inst.resolved_ms.map_or(Ms::MIN, |r| r + 1));
        self.engine.push(
            &OeeInput::Ack {
                instance: id,
                who: Arc::from(who),
                ts_ms,
            },
            &mut self.out,
        );
        self.dirty = true;
        let inst = self.engine.faults().instance(id).ok_or_else(unknown)?;
        Ok(fault_view(inst))
    }

    /// Sends what the engine emitted to the sink queue; false when the sink is gone.
    async fn send_out(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let out = std::mem::take(&mut self.out);
        let mut records = Vec::with_capacity(out.len() * 2);
        for o in out {
            match o {
                Output::Window(w) => {
                    self.windows_out += 1;
                    let (row, event) = window_records(&w);
                    records.push(Record::OeeWindow(row));
                    records.extend(event.map(Record::Event));
                    if w.kind == WindowKind::Rolling {
                        match &w.scope {
                            Scope::Machine(m) => {
                                let ml = self.machines.entry(m.clone()).or_default();
                                if ml.rolling.as_ref().is_none_or(|r| r.start <= w.start) {
                                    ml.rolling = Some(w);
                                }
                            }
                            Scope::Line(l) => {
                                if self.line_rolling.get(l).is_none_or(|r| r.start <= w.start) {
                                    self.line_rolling.insert(l.clone(), w);
                                }
                            }
                        }
                    }
                }
                Output::Fault(ev) => {
                    self.fault_events_out += 1;
                    let (mut row, event) = fault_records(&ev);
                    // `faults` upserts keep the row with the latest `last_change`; a revision
                    // (late data) can move an instance's times back, so the value written is
                    // monotone per instance: the later record always wins.
                    let last = self.last_change.entry(ev.instance.id).or_insert(Ms::MIN);
                    row.last_change_ms = row.last_change_ms.max(*last);
                    *last = row.last_change_ms;
                    records.push(Record::Fault(row));
                    records.push(Record::Event(event));
                }
            }
        }
        self.dirty = true;
        for r in records {
            if self.records.send(r).await.is_err() {
                return false;
            }
            self.stats
                .records_out
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        true
    }

    /// Builds and publishes the live view and the metrics snapshot.
    pub fn publish(&mut self) {
        self.dirty = false;
        let view = self.build_view();
        self.update_stats(&view);
        self.view.send_replace(Arc::new(view));
    }

    fn tbf(&self) -> TbfBasis {
        self.p.tbf_basis
    }

    fn build_view(&mut self) -> LiveView {
        let from = self.max_ts.saturating_sub(TIMELINE_MS);
        let micro = self.p.micro_stop_ms;
        let mut active_by_machine: BTreeMap<&MachineId, usize> = BTreeMap::new();
        let instances = self.engine.faults().instances();
        for i in &instances {
            if !(i.state == FaultState::Resolved && i.acked_ms.is_some()) {
                *active_by_machine.entry(&i.machine).or_default() += 1;
            }
        }
        if self.last_change.len() > 2 * instances.len() + 1024 {
            let live: std::collections::HashSet<FaultInstanceId> =
                instances.iter().map(|i| i.id).collect();
            self.last_change.retain(|id, _| live.contains(id));
        }
        let mut faults: Vec<FaultView> = instances.iter().map(|i| fault_view(i)).collect();
        faults.sort_by(|a, b| a.id.cmp(&b.id));

        let mut machines = Vec::with_capacity(self.machines.len());
        let mut line_current: BTreeMap<LineId, LineAcc> = BTreeMap::new();
        for (id, ml) in self.machines.iter_mut() {
            // Keep the last state at or before the timeline start, and everything after.
            ml.states.keep_from(from);
            let (timeline, state) = timeline(&ml.states, from, micro);
            let current = self.engine.current_window(id);
            let line = line_current.entry(id.line_id()).or_default();
            line.0.push(id.machine.to_string());
            if let Some(c) = &current {
                let e = line.1.get_or_insert((c.start, c.end, Sums::default()));
                e.2 += &c.sums;
            }
            machines.push(MachineView {
                site_id: id.site.to_string(),
                line_id: id.line.to_string(),
                machine_id: id.machine.to_string(),
                state: state.map(|s| s.0.to_string()),
                state_since_ms: state.map(|s| s.1),
                current: current.as_ref().map(kpi_view),
                rolling: ml.rolling.as_ref().map(kpi_view),
                timeline,
                active_faults: active_by_machine.get(id).copied().unwrap_or(0),
            });
        }
        let tbf = self.tbf();
        let lines = line_current
            .into_iter()
            .map(|(lid, (machines, cur))| LineView {
                site_id: lid.site.to_string(),
                line_id: lid.line.to_string(),
                machines,
                current: cur.map(|(start, end, sums)| {
                    let mut kpis = sums.kpis(tbf);
                    kpis.flags.insert(oee_core::kpi::Flags::PARTIAL_WINDOW);
                    kpi_view(&WindowResult {
                        scope: Scope::Line(lid.clone()),
                        kind: WindowKind::Tumbling,
                        start,
                        end,
                        label: None,
                        revision: 0,
                        sums,
                        kpis,
                    })
                }),
                rolling: self.line_rolling.get(&lid).map(kpi_view),
            })
            .collect();
        LiveView {
            updated_ms: self.now() as i64,
            watermark_ms: self.engine.watermark().max(0),
            machines,
            lines,
            faults,
            nodes: self.nodes.values().cloned().collect(),
        }
    }

    fn update_stats(&self, view: &LiveView) {
        let active: Vec<&FaultView> = view
            .faults
            .iter()
            .filter(|f| f.state != "RESOLVED")
            .collect();
        let mut bands: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
        for f in &active {
            let sev = u16::try_from(f.severity).unwrap_or(0);
            *bands
                .entry((f.machine_id.clone(), severity_band(sev)))
                .or_default() += 1;
        }
        let snap = OeeSnapshot {
            active_windows: (view.machines.iter().filter(|m| m.current.is_some()).count()
                + view.lines.iter().filter(|l| l.current.is_some()).count())
                as u64,
            active_faults: active.len() as u64,
            machines: view
                .machines
                .iter()
                .filter_map(|m| {
                    let k = m.rolling.as_ref().or(m.current.as_ref())?;
                    Some(MachineGauges {
                        machine_id: m.machine_id.clone(),
                        availability: k.availability,
                        performance: k.performance,
                        quality: k.quality,
                        oee: k.oee,
                    })
                })
                .collect(),
            faults_by_band: bands.into_iter().map(|((m, b), n)| (m, b, n)).collect(),
            too_late: self.engine.stats.too_late,
            retained: self.engine.retained(),
            windows_out: self.windows_out,
            fault_events_out: self.fault_events_out,
        };
        if let Ok(mut s) = self.stats.oee.snapshot.lock() {
            *s = snap;
        }
    }
}

/// The state spans from `from` on (merged runs of one category; an unplanned stop shorter
/// than `micro_ms`, judged on the whole stop, is a `micro_stop`) and the current state with
/// the start of its run.
fn timeline(
    states: &StateChanges,
    from: Ms,
    micro_ms: Ms,
) -> (Vec<StateSpan>, Option<(&'static str, Ms)>) {
    // Runs of one category, unclipped: (category, start, end).
    let runs: Vec<(Category, Ms, Option<Ms>)> = states.runs().collect();
    let current = runs.last().map(|r| (category_name(r.0), r.1));
    let spans = runs
        .into_iter()
        .filter(|r| r.2.is_none_or(|e| e > from))
        .map(|(c, s, e)| {
            let micro =
                c == Category::UnplannedStop && micro_ms > 0 && e.is_some_and(|e| e - s < micro_ms);
            StateSpan {
                category: if micro {
                    "micro_stop".to_string()
                } else {
                    category_name(c).to_string()
                },
                start_ms: s.max(from),
                end_ms: e,
            }
        })
        .collect();
    (spans, current)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use oee_core::normalize::{Asset, SignalTag, SourceRef, Value};

    use super::*;

    fn sig(signal_type: SignalType, value: Value, quality: i32, bits: u8) -> Signal {
        Signal {
            tag: Arc::new(SignalTag {
                asset: Asset {
                    site_id: "S1".into(),
                    line_id: "L1".into(),
                    machine_id: "M1".into(),
                    labels: vec![],
                },
                signal_type,
                unit: None,
                source: SourceRef {
                    group: "G".into(),
                    edge_node: "E".into(),
                    device: None,
                    metric: "x".into(),
                },
                rule: Some(0),
                fault_code: Some(1001),
            }),
            value,
            timestamp_ms: 1_000,
            quality,
            historical: false,
            transient: false,
            int_bits: bits,
            state: None,
        }
    }

    fn m1() -> MachineId {
        MachineId::new("S1", "L1", "M1")
    }

    #[test]
    fn tie_breaks_order_by_session_then_seq_then_index() {
        assert!(tie_break(Some(1), Some(0), 0) > tie_break(Some(0), Some(255), 9));
        assert!(tie_break(Some(1), Some(3), 0) > tie_break(Some(1), Some(2), 9));
        assert!(tie_break(Some(1), Some(3), 1) > tie_break(Some(1), Some(3), 0));
        assert_eq!(tie_break(None, None, 0), 0xFF << 16);
    }

    #[test]
    fn signals_map_to_engine_inputs() {
        let t = tie_break(Some(2), Some(7), 3);
        let counter = signal_input(
            &sig(SignalType::CounterTotal, Value::UInt(65_530), 192, 16),
            m1(),
            t,
            Some(2),
        );
        assert_eq!(
            counter,
            Some(OeeInput::Counter {
                machine: m1(),
                counter: CounterKind::Total,
                ts_ms: 1_000,
                seq: t,
                value: 65_530,
                bits: 16,
                session: 2,
            })
        );
        let reject = signal_input(
            &sig(SignalType::CounterReject, Value::Int(-3), 192, 0),
            m1(),
            t,
            None,
        );
        assert!(matches!(
            reject,
            Some(OeeInput::Counter {
                counter: CounterKind::Reject,
                value: -3,
                bits: 64,
                session: 0,
                ..
            })
        ));
        assert_eq!(
            signal_input(
                &sig(SignalType::StateRunning, Value::Bool(false), 192, 0),
                m1(),
                t,
                None
            ),
            Some(OeeInput::State {
                machine: m1(),
                ts_ms: 1_000,
                seq: t,
                value: StateValue::Running(false)
            })
        );
        assert_eq!(
            signal_input(
                &sig(SignalType::StateCode, Value::Int(150), 192, 32),
                m1(),
                t,
                None
            ),
            Some(OeeInput::State {
                machine: m1(),
                ts_ms: 1_000,
                seq: t,
                value: StateValue::Code(150)
            })
        );
        assert_eq!(
            signal_input(
                &sig(SignalType::FaultActive, Value::Bool(true), 192, 0),
                m1(),
                t,
                None
            ),
            Some(OeeInput::Fault {
                machine: m1(),
                code: 1001,
                active: true,
                ts_ms: 1_000,
                seq: t,
                severity: None
            })
        );
        assert_eq!(
            signal_input(
                &sig(SignalType::FaultCode, Value::Int(42), 192, 32),
                m1(),
                t,
                None
            ),
            Some(OeeInput::FaultCode {
                machine: m1(),
                code: 42,
                ts_ms: 1_000,
                seq: t
            })
        );
    }

    /// A row as the sink stores it: value as f64 (booleans 0/1), order key, integer width.
    fn stored(s: &Signal, order_key: u64) -> StoredSample {
        let value = match s.value {
            Value::Null => None,
            Value::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            Value::Int(i) => Some(i as f64),
            Value::UInt(u) => Some(u as f64),
            Value::Float(f) => Some(f),
            Value::Text(_) => None,
        };
        StoredSample {
            machine: m1(),
            signal_type: s.tag.signal_type.clone(),
            fault_code: s.tag.fault_code,
            time_ms: s.timestamp_ms,
            value,
            quality: s.quality,
            order_key: Some(order_key as i64),
            int_bits: (s.int_bits != 0).then_some(i16::from(s.int_bits)),
        }
    }

    #[test]
    fn a_stored_row_gives_the_input_its_live_signal_gave() {
        let t = tie_break(Some(3), Some(250), 7);
        let live = [
            sig(SignalType::CounterTotal, Value::UInt(65_535), 192, 16),
            sig(SignalType::CounterGood, Value::Int(-3), 192, 8),
            sig(SignalType::CounterReject, Value::Float(2.5), 192, 0),
            sig(SignalType::StateRunning, Value::Bool(false), 192, 0),
            sig(SignalType::StateCode, Value::Int(4), 192, 32),
            sig(SignalType::FaultActive, Value::Bool(true), 192, 0),
            sig(SignalType::FaultCode, Value::Int(2001), 192, 32),
            sig(SignalType::StateRunning, Value::Null, quality::STALE, 0),
            sig(SignalType::CounterTotal, Value::Null, quality::STALE, 0),
        ];
        for s in &live {
            let want = signal_input(s, m1(), t, Some(3));
            assert_eq!(stored_input(&stored(s, t)), want, "{s:?}");
        }
        // A counter kept its rollover width and its session (the bdSeq in the key).
        assert!(matches!(
            stored_input(&stored(&live[0], t)),
            Some(OeeInput::Counter {
                bits: 16,
                session: 3,
                ..
            })
        ));
    }

    fn task() -> OeeTask {
        let (records, _) = mpsc::channel(16);
        let (view, _) = watch::channel(Arc::new(LiveView::default()));
        OeeTask::new(
            OeeParams::default(),
            FaultParams::default(),
            records,
            Arc::new(PipelineStats::new(1)),
            view,
        )
    }

    #[test]
    fn a_rebuilt_task_continues_the_fault_instance_and_its_acknowledgement() {
        let mut fault = sig(SignalType::FaultActive, Value::Bool(true), 192, 0);
        fault.timestamp_ms = 1_767_225_600_000;
        let t = tie_break(Some(1), Some(4), 0);
        let active = signal_input(&fault, m1(), t, Some(1)).unwrap();

        // The first run: the fault activates and an operator acknowledges it.
        let mut first = task();
        first.handle(vec![OeeItem::Input(active)]);
        let id = first.engine.faults().instances()[0].id;
        let acked = first
            .apply_ack(&id.to_string(), "Ada", fault.timestamp_ms + 5_000)
            .unwrap();

        // The next run, rebuilt from the stored row and the `faults` row's acknowledgement.
        let inputs = vec![
            stored_input(&stored(&fault, t)).unwrap(),
            OeeInput::Ack {
                instance: id,
                who: Arc::from("Ada"),
                ts_ms: acked.row.acknowledged_ms.unwrap(),
            },
        ];
        let mut next = task();
        next.rebuild(inputs, fault.timestamp_ms, fault.timestamp_ms + 10_000);
        assert!(next.out.is_empty(), "a rebuild writes nothing again");
        let inst = next
            .engine
            .faults()
            .instance(id)
            .expect("the same instance id");
        assert_eq!(inst.state, FaultState::Acknowledged);
        assert_eq!(inst.acked_by.as_deref(), Some("Ada"));

        // It resolves after the restart: the same instance (and `faults` row) is resolved.
        let mut cleared = sig(SignalType::FaultActive, Value::Bool(false), 192, 0);
        cleared.timestamp_ms = fault.timestamp_ms + 60_000;
        let input = signal_input(&cleared, m1(), tie_break(Some(1), Some(0), 0), Some(1));
        next.handle(vec![OeeItem::Input(input.unwrap())]);
        let resolved = next.out.iter().any(|o| {
            matches!(o, Output::Fault(ev) if ev.instance.id == id
                && ev.instance.state == FaultState::Resolved)
        });
        assert!(resolved, "{:?}", next.out);
    }

    #[test]
    fn stale_samples_take_the_machine_offline_once_per_death() {
        let a = signal_input(
            &sig(SignalType::StateRunning, Value::Null, 500, 0),
            m1(),
            tie_break(Some(4), None, 0),
            Some(4),
        );
        let b = signal_input(
            &sig(SignalType::CounterTotal, Value::Null, 500, 32),
            m1(),
            tie_break(Some(4), None, 5),
            Some(4),
        );
        assert!(matches!(a, Some(OeeInput::Offline { ts_ms: 1_000, .. })));
        assert_eq!(a, b, "every STALE marker of one death is the same input");
    }

    #[test]
    fn other_signals_are_not_engine_inputs() {
        let t = 0;
        let analog = sig(
            SignalType::Analog("temperature".into()),
            Value::Float(1.0),
            192,
            0,
        );
        assert_eq!(signal_input(&analog, m1(), t, None), None);
        let stale_analog = sig(
            SignalType::Analog("temperature".into()),
            Value::Null,
            500,
            0,
        );
        assert_eq!(signal_input(&stale_analog, m1(), t, None), None);
        let null_counter = sig(SignalType::CounterTotal, Value::Null, 192, 32);
        assert_eq!(signal_input(&null_counter, m1(), t, None), None);
        let text_state = sig(SignalType::StateCode, Value::Text("x".into()), 192, 0);
        assert_eq!(signal_input(&text_state, m1(), t, None), None);
    }

    #[test]
    fn severity_bands_are_few() {
        assert_eq!(severity_band(1000), "high");
        assert_eq!(severity_band(801), "high");
        assert_eq!(severity_band(800), "medium_high");
        assert_eq!(severity_band(500), "medium");
        assert_eq!(severity_band(300), "medium_low");
        assert_eq!(severity_band(1), "low");
    }

    #[test]
    fn timeline_merges_runs_and_marks_micro_stops() {
        let mut s = StateChanges::default();
        s.insert((0, 0), Category::Running);
        s.insert((10_000, 0), Category::UnplannedStop);
        s.insert((40_000, 0), Category::Running);
        s.insert((50_000, 0), Category::Running);
        s.insert((60_000, 0), Category::UnplannedStop);
        s.insert((600_000, 0), Category::Unknown);
        let (spans, cur) = timeline(&s, 5_000, 120_000);
        let cats: Vec<_> = spans.iter().map(|s| s.category.as_str()).collect();
        assert_eq!(
            cats,
            [
                "running",
                "micro_stop",
                "running",
                "unplanned_stop",
                "unknown"
            ]
        );
        assert_eq!(spans[0].start_ms, 5_000);
        assert_eq!(spans[2].end_ms, Some(60_000));
        assert_eq!(cur, Some(("unknown", 600_000)));
    }
}
