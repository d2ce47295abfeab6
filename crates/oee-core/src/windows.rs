//! The OEE engine: event-time windows over machine sums, watermark, lateness and revisions.
//!
//! Each machine's inputs are kept sorted in event time (state events, counter samples, ideal
//! cycle changes; failure episodes come from the fault tracker). Time is cut into *slices* at
//! every window boundary (the slice step — the gcd of the tumbling size and the rolling
//! re-emit interval — plus the calendar's shift and day edges). A slice is computed once the
//! watermark has passed its end, from whole intervals (classification before clipping), and
//! every window is the field-wise sum of its slices. Late inputs mark the slices they touch
//! dirty; those are recomputed and every emitted window containing a changed slice is emitted
//! again with `revision + 1`. Window results are therefore a function of the input set, not of
//! arrival order (within the allowed lateness), and replays are identical.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::calendar::{CalCat, Calendar, ShiftInstance};
use crate::compact::{CounterSeries, Insert, PackedSums, Pos, Step, StepSeries};
use crate::counters::{CounterKind, CounterSample, DeltaKind, Plausibility, delta};
use crate::faults::{FaultEvent, FaultInstanceId, FaultParams, FaultTracker};
use crate::intervals::{
    Category, MinorStops, StateCodeTable, StateEvent, TimeParams, UnknownPolicy, accumulate_time,
    state_dirty_range, unclassified_from,
};
use crate::kpi::{Flags, Kpis, Sums, TbfBasis};
use crate::types::{FastMap, IdealCycle, LineId, MachineId, Ms};

const DAY_MS: Ms = 86_400_000;
/// Accepted event times: 1970-01-01 to 9999-12-31 (the zone database's range), so that no
/// time arithmetic can overflow.
const MIN_TS: Ms = 0;
const MAX_TS: Ms = 253_402_300_799_999;

/// The rolling window: the last `len_ms`, re-emitted every `every_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RollingParams {
    /// Window length (default 1 h). Must be a multiple of `every_ms`.
    pub len_ms: Ms,
    /// Re-emit interval (default 5 min). Must divide one hour.
    pub every_ms: Ms,
}

/// Parameters of the OEE engine (the lead maps the YAML `oee:` section onto these).
#[derive(Clone, Debug)]
pub struct OeeParams {
    /// Unplanned stops shorter than this (whole stop) are micro-stops. Default 120 000; 0 = off.
    pub micro_stop_ms: Ms,
    /// Micro-stops as run time (TPM, default) or as downtime (ISO).
    pub minor_stops: MinorStops,
    /// Unknown time excluded from planned time (default) or counted as downtime.
    pub unknown_policy: UnknownPolicy,
    /// Tumbling window size, aligned to the (local) hour. Default 3 600 000.
    pub tumbling_ms: Ms,
    /// Rolling window (default `Some(1 h every 5 min)`).
    pub rolling: Option<RollingParams>,
    /// Watermark = max event time − this. Default 300 000.
    pub allowed_lateness_ms: Ms,
    /// Inputs are kept this long behind the watermark so late data can revise windows and
    /// fault instances; older inputs (fault flags and codes included, acknowledgements not) are
    /// counted in `stats.too_late` and dropped. Default 7 200 000.
    pub revision_horizon_ms: Ms,
    /// Ideal cycle time of machines without their own entry.
    pub default_ideal_cycle: Option<IdealCycle>,
    /// Ideal cycle time per machine.
    pub ideal_cycles: HashMap<MachineId, IdealCycle>,
    /// Ideal cycle time per machine id alone (the config's `ideal_cycle_times` is keyed by
    /// `machine_id`), used when `ideal_cycles` has no entry for the full id.
    pub ideal_cycles_by_name: HashMap<Arc<str>, IdealCycle>,
    /// Counter plausibility (k = 2, slack 0).
    pub plausibility: Plausibility,
    /// `state.code` → category.
    pub state_codes: StateCodeTable,
    /// Category of `state.running = false` (default unplanned stop).
    pub not_running: Category,
    /// MTBF operating-time basis.
    pub tbf_basis: TbfBasis,
    /// Shift calendar per site id; a site without one has all time planned.
    pub calendars: HashMap<Arc<str>, Calendar>,
    /// Planned-stop states are a loss (Vorne) rather than excluded. Default false.
    pub planned_stop_is_loss: bool,
    /// Emit shift windows (sites with a calendar). Default true.
    pub shift_windows: bool,
    /// Emit day windows (local days of sites with a calendar). Default true.
    pub day_windows: bool,
    /// Sites without a calendar get UTC day windows (all time planned). Default false.
    pub utc_days_without_calendar: bool,
}

impl Default for OeeParams {
    fn default() -> Self {
        Self {
            micro_stop_ms: 120_000,
            minor_stops: MinorStops::Performance,
            unknown_policy: UnknownPolicy::Exclude,
            tumbling_ms: 3_600_000,
            rolling: Some(RollingParams {
                len_ms: 3_600_000,
                every_ms: 300_000,
            }),
            allowed_lateness_ms: 300_000,
            revision_horizon_ms: 7_200_000,
            default_ideal_cycle: None,
            ideal_cycles: HashMap::new(),
            ideal_cycles_by_name: HashMap::new(),
            plausibility: Plausibility::default(),
            state_codes: StateCodeTable::default(),
            not_running: Category::UnplannedStop,
            tbf_basis: TbfBasis::RunPlusSetup,
            calendars: HashMap::new(),
            planned_stop_is_loss: false,
            shift_windows: true,
            day_windows: true,
            utc_days_without_calendar: false,
        }
    }
}

/// A state input's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateValue {
    /// `state.running`.
    Running(bool),
    /// `state.code`, mapped by [`OeeParams::state_codes`].
    Code(i64),
    /// An already classified state with its reason.
    Category(Category, i64),
}

/// One input of the engine. `seq` breaks ties between equal timestamps (use e.g.
/// `bdSeq << 8 | seq`, or a message index); it makes the order total and arrival-independent.
#[derive(Clone, Debug, PartialEq)]
pub enum OeeInput {
    /// A state change.
    State {
        /// Machine.
        machine: MachineId,
        /// Event time.
        ts_ms: Ms,
        /// Tie-break.
        seq: u64,
        /// The state.
        value: StateValue,
    },
    /// A cumulative counter sample.
    Counter {
        /// Machine.
        machine: MachineId,
        /// Which counter.
        counter: CounterKind,
        /// Event time.
        ts_ms: Ms,
        /// Tie-break.
        seq: u64,
        /// Raw value (signed types as decoded; reduced modulo `2^bits`).
        value: i128,
        /// Sparkplug datatype width in bits.
        bits: u8,
        /// Session (bdSeq).
        session: u64,
    },
    /// The ideal cycle time changes (product change, or a tag), from `ts_ms` on.
    IdealCycle {
        /// Machine.
        machine: MachineId,
        /// Event time.
        ts_ms: Ms,
        /// Tie-break.
        seq: u64,
        /// New ideal cycle time.
        cycle: IdealCycle,
    },
    /// `fault.active` for a code.
    Fault {
        /// Machine.
        machine: MachineId,
        /// Fault code.
        code: i64,
        /// Active or cleared.
        active: bool,
        /// Event time.
        ts_ms: Ms,
        /// Tie-break.
        seq: u64,
        /// Severity carried by the signal, if any (else from the rules).
        severity: Option<u16>,
    },
    /// `fault.code`: the machine's current fault code (0 = none).
    FaultCode {
        /// Machine.
        machine: MachineId,
        /// Current code.
        code: i64,
        /// Event time.
        ts_ms: Ms,
        /// Tie-break.
        seq: u64,
    },
    /// An operator acknowledges an instance.
    Ack {
        /// Instance.
        instance: FaultInstanceId,
        /// Who.
        who: Arc<str>,
        /// When.
        ts_ms: Ms,
    },
    /// No data from here on (NDEATH/DDEATH, stale): unknown time until the next state.
    Offline {
        /// Machine.
        machine: MachineId,
        /// Event time.
        ts_ms: Ms,
        /// Tie-break.
        seq: u64,
    },
    /// Advance the watermark to at least this time.
    Watermark(Ms),
}

/// Window kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WindowKind {
    /// Tumbling, aligned to the hour (size `tumbling_ms`).
    Tumbling,
    /// Rolling, re-emitted every `every_ms`; `start = end − len`.
    Rolling,
    /// One shift instance of the site calendar.
    Shift,
    /// One local calendar day of the site (23, 24 or 25 h).
    Day,
}

/// Whose window.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// One machine.
    Machine(MachineId),
    /// One line: the machines' sums re-summed.
    Line(LineId),
}

/// One window result. The key is `(scope, kind, start)`; a later result with the same key and
/// a higher revision replaces the earlier one.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowResult {
    /// Machine or line.
    pub scope: Scope,
    /// Window kind.
    pub kind: WindowKind,
    /// Start (inclusive, ms).
    pub start: Ms,
    /// End (exclusive, ms).
    pub end: Ms,
    /// Shift name for shift windows.
    pub label: Option<Arc<str>>,
    /// 0 when first emitted, + 1 for each recomputation that changed it.
    pub revision: u32,
    /// The additive sums.
    pub sums: Sums,
    /// Ratios and flags computed from the sums.
    pub kpis: Kpis,
}

/// What the engine emits.
#[allow(clippy::large_enum_variant)] // results are moved, not stored in bulk
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// A window result (new or revised).
    Window(WindowResult),
    /// A fault transition.
    Fault(FaultEvent),
}

/// Counters of inputs the engine could not use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Inputs older than `watermark − revision_horizon_ms`, dropped (acknowledgements never
    /// are).
    pub too_late: u64,
    /// Exact duplicate inputs, ignored.
    pub duplicates: u64,
    /// Inputs before the machine's first window, ignored for windows.
    pub before_origin: u64,
    /// Window recomputations that changed a result (revisions emitted).
    pub revisions: u64,
    /// Inputs with a timestamp outside 1970-01-01 … 9999-12-31, dropped.
    pub invalid_ts: u64,
}

/// Sizes of what an [`OeeEngine`] keeps (see [`OeeEngine::retained`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retained {
    /// Machines known.
    pub machines: usize,
    /// Time slices with their sums, over all machines.
    pub slices: usize,
    /// Emitted machine and line windows kept to detect revisions.
    pub windows: usize,
    /// Raw inputs (states, counter samples, cycle times, fault codes, fault flags and
    /// acknowledgements) kept for late data.
    pub inputs: usize,
}

/// End and label of a window.
type WindowMeta = (Ms, Option<Arc<str>>);
/// A line window to (re)compute: line, kind, start, end, label.
type PendingLineWindow = (LineId, WindowKind, Ms, Ms, Option<Arc<str>>);

/// An emitted window, kept to detect its revisions. Only a fingerprint of its sums is kept
/// (they are recomputed from slices when needed): a quarter of the memory of the sums.
#[derive(Clone, Debug)]
struct Emitted {
    end: Ms,
    label: Option<Arc<str>>,
    revision: u32,
    fingerprint: u64,
}

/// A 64-bit fingerprint of window sums: equal sums, equal fingerprints; a change of the sums
/// going unnoticed (and its revision unsent) has a probability of 2⁻⁶⁴.
fn fingerprint(s: &Sums) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::hash::DefaultHasher>::default().hash_one(s)
}

#[derive(Debug)]
struct SiteCal {
    cal: Calendar,
    /// No calendar, only UTC days: everything is planned.
    all_planned: bool,
    /// The hour phase when it is the same over the whole covered range (the usual case).
    phase_const: Option<Ms>,
    from: Ms,
    to: Ms,
    timeline: Vec<(Ms, CalCat)>,
    shifts: Vec<ShiftInstance>,
    days: Vec<(Ms, Ms)>,
    bounds: Vec<Ms>,
}

impl SiteCal {
    fn new(cal: Calendar, all_planned: bool) -> Self {
        Self {
            cal,
            all_planned,
            phase_const: None,
            from: 0,
            to: 0,
            timeline: Vec::new(),
            shifts: Vec::new(),
            days: Vec::new(),
            bounds: Vec::new(),
        }
    }

    fn ensure(&mut self, lo: Ms, hi: Ms) {
        if lo >= self.from && hi <= self.to {
            return;
        }
        let from = lo.saturating_sub(2 * DAY_MS);
        let to = hi.max(self.to).saturating_add(7 * DAY_MS);
        self.from = from;
        self.to = to;
        self.timeline = if self.all_planned {
            Vec::new()
        } else {
            self.cal.timeline(from, to)
        };
        self.shifts = self.cal.shifts_between(from, to);
        self.days.clear();
        let mut t = self.cal.day_bounds(from).0;
        while t < to {
            let (s, e) = self.cal.day_bounds(t);
            self.days.push((s, e));
            if e <= t {
                break; // outside the zone database's range
            }
            t = e;
        }
        let mut b: Vec<Ms> = self.days.iter().map(|d| d.0).collect();
        for s in &self.shifts {
            b.extend([s.start, s.end]);
        }
        b.sort_unstable();
        b.dedup();
        self.bounds = b;
        let p0 = self.cal.hour_phase(from);
        let same = (from..to)
            .step_by(3_600_000)
            .all(|t| self.cal.hour_phase(t) == p0);
        self.phase_const = same.then_some(p0);
    }
}

impl Step for (Ms, u64, IdealCycle) {
    fn key(&self) -> (Ms, u64) {
        (self.0, self.1)
    }
    fn at(self, (ts, seq): (Ms, u64)) -> Self {
        (ts, seq, self.2)
    }
    fn same_value(&self, o: &Self) -> bool {
        self.2 == o.2
    }
}

/// A `fault.code` sample. Equal and ordered by its key alone: a second code at the same key
/// replaces the first.
#[derive(Clone, Copy, Debug)]
struct FaultCodeAt {
    ts: Ms,
    seq: u64,
    code: i64,
}

impl PartialEq for FaultCodeAt {
    fn eq(&self, o: &Self) -> bool {
        self.key() == o.key()
    }
}

impl Eq for FaultCodeAt {}

impl PartialOrd for FaultCodeAt {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for FaultCodeAt {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key().cmp(&o.key())
    }
}

impl Step for FaultCodeAt {
    fn key(&self) -> (Ms, u64) {
        (self.ts, self.seq)
    }
    fn at(self, (ts, seq): (Ms, u64)) -> Self {
        FaultCodeAt { ts, seq, ..self }
    }
    fn same_value(&self, o: &Self) -> bool {
        self.code == o.code
    }
}

/// A machine's inputs and slices. States, cycle times and fault codes are step series: a
/// gateway publishing the same value 20 times a second costs a few bytes per sample.
#[derive(Debug)]
struct Machine {
    states: StepSeries<StateEvent>,
    counters: [CounterSeries; 3],
    icts: StepSeries<(Ms, u64, IdealCycle)>,
    episodes: Vec<(Ms, Option<Ms>)>,
    fault_codes: StepSeries<FaultCodeAt>,
    default_ict: Option<IdealCycle>,
    min_ts: Ms,
    origin: Option<Ms>,
    horizon: Ms,
    /// Slice start → (end, sums).
    slices: BTreeMap<Ms, (Ms, PackedSums)>,
    dirty: Vec<(Ms, Ms)>,
    emitted: BTreeMap<(WindowKind, Ms), Emitted>,
    /// Inputs before this were pruned: older slices can only have their failure fields
    /// recomputed (episodes are kept by the fault tracker).
    pruned_before: Ms,
}

impl Machine {
    fn new(default_ict: Option<IdealCycle>) -> Self {
        Self {
            states: StepSeries::default(),
            counters: Default::default(),
            icts: StepSeries::default(),
            episodes: Vec::new(),
            fault_codes: StepSeries::default(),
            default_ict,
            min_ts: Ms::MAX,
            origin: None,
            horizon: Ms::MIN,
            slices: BTreeMap::new(),
            dirty: Vec::new(),
            emitted: BTreeMap::new(),
            pruned_before: Ms::MIN,
        }
    }

    fn mark_dirty(&mut self, lo: Ms, hi: Ms) {
        if self.origin.is_some() && lo < self.horizon {
            self.dirty.push((lo, hi.max(lo)));
        }
    }

    fn ict_at(&self, ts: Ms) -> Option<IdealCycle> {
        // The value of the last change at or before `ts` is that of the last sample there.
        let icts = self.icts.heads();
        let i = icts.partition_point(|x| x.0 <= ts);
        if i == 0 {
            self.default_ict
        } else {
            Some(icts[i - 1].2)
        }
    }
}

#[derive(Debug, Default)]
struct Line {
    machines: BTreeSet<MachineId>,
    emitted: BTreeMap<(WindowKind, Ms), Emitted>,
    pending: BTreeMap<(WindowKind, Ms), WindowMeta>,
}

fn gcd(a: Ms, b: Ms) -> Ms {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Start of the aligned period of `size` containing `t`, with hours shifted by `phase`.
fn align(t: Ms, size: Ms, phase: Ms) -> Ms {
    t - t.saturating_sub(phase).rem_euclid(size)
}

/// The OEE engine: inputs in, window results and fault events out.
#[derive(Debug)]
pub struct OeeEngine {
    p: OeeParams,
    tp: TimeParams,
    step: Ms,
    faults: FaultTracker,
    sites: FastMap<Arc<str>, SiteCal>,
    machines: FastMap<MachineId, Machine>,
    lines: FastMap<LineId, Line>,
    watermark: Ms,
    max_ts: Ms,
    last_prune: Ms,
    /// Inputs the engine could not use, and revisions.
    pub stats: Stats,
}

impl OeeEngine {
    /// An engine with these parameters. Window sizes are normalised: the tumbling size and the
    /// rolling interval must divide each other's gcd-aligned step (any positive values work;
    /// the slice step is their gcd).
    pub fn new(mut p: OeeParams, fault_params: FaultParams) -> Self {
        p.tumbling_ms = p.tumbling_ms.max(1);
        if let Some(r) = &mut p.rolling {
            r.every_ms = r.every_ms.max(1);
            r.len_ms = (r.len_ms / r.every_ms).max(1) * r.every_ms;
        }
        let step = match p.rolling {
            Some(r) => gcd(p.tumbling_ms, r.every_ms),
            None => p.tumbling_ms,
        };
        let tp = TimeParams {
            micro_stop_ms: p.micro_stop_ms,
            minor_stops: p.minor_stops,
            unknown_policy: p.unknown_policy,
            planned_stop_is_loss: p.planned_stop_is_loss,
        };
        let sites = p
            .calendars
            .iter()
            .map(|(k, c)| (k.clone(), SiteCal::new(c.clone(), false)))
            .collect();
        Self {
            p,
            tp,
            step,
            faults: FaultTracker::new(fault_params),
            sites,
            machines: FastMap::default(),
            lines: FastMap::default(),
            watermark: Ms::MIN,
            max_ts: Ms::MIN,
            last_prune: Ms::MIN,
            stats: Stats::default(),
        }
    }

    /// The current watermark.
    pub fn watermark(&self) -> Ms {
        self.watermark
    }

    /// The fault tracker (instances, episodes).
    pub fn faults(&self) -> &FaultTracker {
        &self.faults
    }

    fn machine(&mut self, id: &MachineId) -> &mut Machine {
        if !self.machines.contains_key(id) {
            let ict = self
                .p
                .ideal_cycles
                .get(id)
                .or_else(|| self.p.ideal_cycles_by_name.get(&id.machine))
                .copied()
                .or(self.p.default_ideal_cycle);
            self.machines.insert(id.clone(), Machine::new(ict));
            if self.p.utc_days_without_calendar && !self.sites.contains_key(&id.site) {
                let utc = Calendar::with_zone(jiff::tz::TimeZone::UTC, Vec::new());
                self.sites.insert(id.site.clone(), SiteCal::new(utc, true));
            }
            self.lines
                .entry(id.line_id())
                .or_default()
                .machines
                .insert(id.clone());
        }
        self.machines.get_mut(id).expect("inserted above")
    }

    fn too_late(&mut self, ts: Ms) -> bool {
        if self.watermark != Ms::MIN
            && ts < self.watermark.saturating_sub(self.p.revision_horizon_ms)
        {
            self.stats.too_late += 1;
            return true;
        }
        false
    }

    fn seen(&mut self, ts: Ms) {
        self.max_ts = self.max_ts.max(ts);
    }

    /// Feeds one input. Fault transitions are emitted at once; window results when the
    /// watermark passes their end (see [`OeeEngine::advance_watermark`]).
    pub fn push(&mut self, input: &OeeInput, out: &mut Vec<Output>) {
        let ts = match input {
            OeeInput::State { ts_ms, .. }
            | OeeInput::Counter { ts_ms, .. }
            | OeeInput::IdealCycle { ts_ms, .. }
            | OeeInput::Fault { ts_ms, .. }
            | OeeInput::FaultCode { ts_ms, .. }
            | OeeInput::Ack { ts_ms, .. }
            | OeeInput::Offline { ts_ms, .. } => *ts_ms,
            OeeInput::Watermark(ts) => (*ts).clamp(MIN_TS, MAX_TS),
        };
        if !(MIN_TS..=MAX_TS).contains(&ts) {
            self.stats.invalid_ts += 1;
            return;
        }
        match input {
            OeeInput::State {
                machine,
                ts_ms,
                seq,
                value,
            } => {
                // The reason or raw code does not change any figure (a stop is the run of
                // unplanned-stop intervals whatever their reasons): only the category is kept,
                // so a machine reporting `state.running` and `state.code` side by side makes one
                // run of repeats, not a change per sample.
                let category = match *value {
                    StateValue::Running(true) => Category::Running,
                    StateValue::Running(false) => self.p.not_running,
                    StateValue::Code(c) => self.p.state_codes.category(c),
                    StateValue::Category(c, _) => c,
                };
                self.state(
                    machine,
                    StateEvent {
                        ts: *ts_ms,
                        seq: *seq,
                        category,
                    },
                );
            }
            OeeInput::Offline {
                machine,
                ts_ms,
                seq,
            } => {
                self.state(
                    machine,
                    StateEvent {
                        ts: *ts_ms,
                        seq: *seq,
                        category: Category::Unknown,
                    },
                );
            }
            OeeInput::Counter {
                machine,
                counter,
                ts_ms,
                seq,
                value,
                bits,
                session,
            } => {
                if self.too_late(*ts_ms) {
                    return;
                }
                self.seen(*ts_ms);
                let sample = CounterSample::new(*ts_ms, *seq, *value, *bits, *session);
                let m = self.machine(machine);
                m.min_ts = m.min_ts.min(*ts_ms);
                match m.counters[counter.index()].insert(sample) {
                    Insert::Duplicate => self.stats.duplicates += 1,
                    Insert::Added { next } => m.mark_dirty(*ts_ms, next.unwrap_or(*ts_ms)),
                }
            }
            OeeInput::IdealCycle {
                machine,
                ts_ms,
                seq,
                cycle,
            } => {
                if self.too_late(*ts_ms) {
                    return;
                }
                let m = self.machine(machine);
                let x = (*ts_ms, *seq, *cycle);
                match m.icts.find(&x) {
                    Ok(_) => self.stats.duplicates += 1,
                    Err(gap) => {
                        let hi = m.icts.after(gap).map_or(m.horizon, |p| m.icts.get(p).0);
                        m.icts.insert_at(gap, x);
                        m.mark_dirty(*ts_ms, hi);
                    }
                }
            }
            OeeInput::Fault {
                machine,
                code,
                active,
                ts_ms,
                seq,
                severity,
            } => {
                if self.too_late(*ts_ms) {
                    return;
                }
                self.seen(*ts_ms);
                self.fault(machine, *code, *active, *ts_ms, *seq, *severity, out);
            }
            OeeInput::FaultCode {
                machine,
                code,
                ts_ms,
                seq,
            } => {
                if self.too_late(*ts_ms) {
                    return;
                }
                self.seen(*ts_ms);
                let m = self.machine(machine);
                let x = FaultCodeAt {
                    ts: *ts_ms,
                    seq: *seq,
                    code: *code,
                };
                let fc = &mut m.fault_codes;
                // The samples before and after the key; a code already at the key is replaced.
                let found = fc.find(&x);
                let (before, after) = match found {
                    Ok(p) if fc.get(p).code == *code => {
                        self.stats.duplicates += 1;
                        return;
                    }
                    Ok(p) => (fc.prev(p), fc.next(p)),
                    Err(gap) => (gap.0, fc.after(gap)),
                };
                let prev = before.map_or(0, |p| fc.get(p).code);
                let next = after.map(|p| fc.get(p));
                match found {
                    Ok(p) => {
                        fc.remove(p);
                        fc.insert(x);
                    }
                    Err(gap) => fc.insert_at(gap, x),
                }
                let mut edges = vec![(prev, *code, *ts_ms, *seq)];
                if let Some(n) = next {
                    edges.push((*code, n.code, n.ts, n.seq));
                }
                for (from, to, ts, seq) in edges {
                    if from == to {
                        continue;
                    }
                    if from != 0 {
                        self.fault(machine, from, false, ts, seq, None, out);
                    }
                    if to != 0 {
                        self.fault(machine, to, true, ts, seq, None, out);
                    }
                }
            }
            OeeInput::Ack {
                instance,
                who,
                ts_ms,
            } => {
                let mut ev = Vec::new();
                self.faults.ack(*instance, who, *ts_ms, &mut ev);
                out.extend(ev.into_iter().map(Output::Fault));
            }
            OeeInput::Watermark(_) => self.advance_watermark(ts, out),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fault(
        &mut self,
        machine: &MachineId,
        code: i64,
        active: bool,
        ts: Ms,
        seq: u64,
        severity: Option<u16>,
        out: &mut Vec<Output>,
    ) {
        let mut ev = Vec::new();
        let changed = self
            .faults
            .fault(machine, code, active, ts, seq, severity, &mut ev);
        out.extend(ev.into_iter().map(Output::Fault));
        if changed {
            let new = self.faults.episodes(machine);
            let m = self.machine(machine);
            let old = std::mem::replace(&mut m.episodes, new);
            let starts: Vec<Ms> = old
                .iter()
                .filter(|e| !m.episodes.contains(e))
                .chain(m.episodes.iter().filter(|e| !old.contains(e)))
                .map(|e| e.0)
                .collect();
            for s in starts {
                m.mark_dirty(s, s);
            }
        }
    }

    fn state(&mut self, machine: &MachineId, ev: StateEvent) {
        if self.too_late(ev.ts) {
            return;
        }
        self.seen(ev.ts);
        let m = self.machine(machine);
        m.min_ts = m.min_ts.min(ev.ts);
        let gap = match m.states.find(&ev) {
            Ok(_) => {
                self.stats.duplicates += 1;
                return;
            }
            Err(gap) => gap,
        };
        let dirty = m
            .origin
            .is_some()
            .then(|| state_dirty_range(&m.states, gap, &ev, m.horizon));
        m.states.insert_at(gap, ev);
        if let Some((lo, hi)) = dirty {
            m.mark_dirty(lo, hi);
        }
    }

    /// Advances the watermark to `max(ts, max event time − allowed lateness)` and emits every
    /// window that became final, and every revision late inputs caused.
    pub fn advance_watermark(&mut self, ts: Ms, out: &mut Vec<Output>) {
        let auto = if self.max_ts == Ms::MIN {
            Ms::MIN
        } else {
            self.max_ts.saturating_sub(self.p.allowed_lateness_ms)
        };
        let w = self.watermark.max(ts.min(MAX_TS)).max(auto);
        self.watermark = w;
        if w == Ms::MIN {
            return;
        }
        let first_out = out.len();
        let keep = self.keep_ms();
        for sc in self.sites.values_mut() {
            sc.ensure(w.saturating_sub(keep), w.saturating_add(self.step));
        }
        let mut pending: Vec<PendingLineWindow> = Vec::new();
        for (id, m) in self.machines.iter_mut() {
            let ctx = Ctx {
                p: &self.p,
                tp: &self.tp,
                step: self.step,
                keep,
                site: self.sites.get(&id.site),
            };
            advance_machine(&ctx, id, m, w, out, &mut pending, &mut self.stats);
        }
        for (line, kind, start, end, label) in pending {
            if let Some(l) = self.lines.get_mut(&line) {
                l.pending.insert((kind, start), (end, label));
            }
        }
        self.roll_up_lines(out);
        if w >= self.last_prune.saturating_add(self.step.max(600_000)) {
            self.prune(w);
            self.last_prune = w;
        }
        out[first_out..].sort_by(|a, b| match (a, b) {
            (Output::Window(a), Output::Window(b)) => (&a.scope, a.kind, a.start, a.revision)
                .cmp(&(&b.scope, b.kind, b.start, b.revision)),
            _ => std::cmp::Ordering::Equal,
        });
    }

    /// How long slices and emitted windows are kept behind the watermark.
    fn keep_ms(&self) -> Ms {
        let mut longest = self
            .p
            .tumbling_ms
            .max(self.p.rolling.map_or(0, |r| r.len_ms));
        if !self.sites.is_empty() {
            longest = longest.max(26 * 3_600_000);
        }
        longest + self.p.revision_horizon_ms + self.p.allowed_lateness_ms
    }

    fn roll_up_lines(&mut self, out: &mut Vec<Output>) {
        let keep = self.keep_ms();
        for (lid, line) in self.lines.iter_mut() {
            let pend = std::mem::take(&mut line.pending);
            for ((kind, start), (end, label)) in pend {
                let ready = line.machines.iter().all(|mid| {
                    let m = &self.machines[mid];
                    m.min_ts >= end || (m.origin.is_some() && m.horizon >= end)
                });
                if !ready {
                    line.pending.insert((kind, start), (end, label));
                    continue;
                }
                let mut sums = Sums::default();
                for mid in &line.machines {
                    let m = &self.machines[mid];
                    if !m.emitted.contains_key(&(kind, start)) {
                        continue;
                    }
                    let ctx = Ctx {
                        p: &self.p,
                        tp: &self.tp,
                        step: self.step,
                        keep,
                        site: self.sites.get(&mid.site),
                    };
                    if let Some(s) = machine_window_sums(&ctx, m, kind, start, end) {
                        sums += &s;
                    }
                }
                let fp = fingerprint(&sums);
                let revision = match line.emitted.get(&(kind, start)) {
                    Some(e) if e.fingerprint == fp => continue,
                    Some(e) => e.revision + 1,
                    None => 0,
                };
                if revision > 0 {
                    self.stats.revisions += 1;
                }
                line.emitted.insert(
                    (kind, start),
                    Emitted {
                        end,
                        label: label.clone(),
                        revision,
                        fingerprint: fp,
                    },
                );
                out.push(Output::Window(WindowResult {
                    scope: Scope::Line(lid.clone()),
                    kind,
                    start,
                    end,
                    label,
                    revision,
                    sums,
                    kpis: sums.kpis(self.p.tbf_basis),
                }));
            }
        }
    }

    fn prune(&mut self, w: Ms) {
        let rev_h = w.saturating_sub(self.p.revision_horizon_ms);
        let keep = self.keep_ms();
        let keep_h = w.saturating_sub(keep);
        for (id, m) in self.machines.iter_mut() {
            m.pruned_before = m.pruned_before.max(rev_h);
            let ctx = Ctx {
                p: &self.p,
                tp: &self.tp,
                step: self.step,
                keep,
                site: self.sites.get(&id.site),
            };
            let rolling_len = self.p.rolling.map_or(0, |r| r.len_ms);
            compact_slices(&ctx, m, rev_h.saturating_sub(rolling_len));
            // States: keep the last one at or before the horizon and the whole stop it is in
            // (a stop starts at a head: its first sample differs from the one before).
            if let Some(mut p) = m.states.last_at_or_before(rev_h) {
                let heads = m.states.heads();
                if heads[p.h].category == Category::UnplannedStop {
                    let mut h = p.h;
                    while h > 0 && heads[h - 1].category == Category::UnplannedStop {
                        h -= 1;
                    }
                    p = Pos { h, j: 0 };
                }
                m.states.prune_to(p);
            }
            for v in &mut m.counters {
                v.prune(rev_h);
            }
            if let Some(p) = m.icts.last_at_or_before(rev_h) {
                m.icts.prune_to(p);
            }
            // The last code before the horizon (not at it) stays.
            if let Some(p) = m.fault_codes.last_at_or_before(rev_h.saturating_sub(1)) {
                m.fault_codes.prune_to(p);
            }
            m.slices = m.slices.split_off(&keep_h);
            m.emitted
                .retain(|k, e| still_revisable(k, e, keep_h, rev_h));
        }
        for l in self.lines.values_mut() {
            l.emitted
                .retain(|k, e| still_revisable(k, e, keep_h, rev_h));
        }
        self.faults.prune(w, rev_h);
    }

    /// What the engine holds in memory (machines, slices, windows kept for revisions, inputs),
    /// for the service's gauges: it must level off, whatever the uptime.
    pub fn retained(&self) -> Retained {
        let mut r = Retained {
            machines: self.machines.len(),
            ..Retained::default()
        };
        for m in self.machines.values() {
            r.slices += m.slices.len();
            r.windows += m.emitted.len();
            r.inputs += m.states.len()
                + m.counters.iter().map(CounterSeries::len).sum::<usize>()
                + m.icts.len()
                + m.fault_codes.len();
        }
        r.inputs += self.faults.retained_inputs();
        r.windows += self.lines.values().map(|l| l.emitted.len()).sum::<usize>();
        r
    }

    /// The machine's current tumbling window, growing up to the watermark (flag
    /// `partial_window`): final slices plus the open part computed provisionally.
    pub fn current_window(&self, machine: &MachineId) -> Option<WindowResult> {
        let m = self.machines.get(machine)?;
        let origin = m.origin?;
        let ctx = Ctx {
            p: &self.p,
            tp: &self.tp,
            step: self.step,
            keep: self.keep_ms(),
            site: self.sites.get(&machine.site),
        };
        let w = self.watermark;
        let start = align(w.max(origin), self.p.tumbling_ms, ctx.phase(w)).max(origin);
        let mut sums = Sums::default();
        // The horizon can lag the watermark into the previous window (a stop not yet known to
        // be a micro-stop holds it back).
        for (_, (_, s)) in m.slices.range(start..m.horizon.min(w).max(start)) {
            sums += &s.unpack();
        }
        if w > m.horizon.max(start) {
            sums += &compute_slice(&ctx, m, m.horizon.max(start), w);
        }
        let mut kpis = sums.kpis(self.p.tbf_basis);
        kpis.flags.insert(Flags::PARTIAL_WINDOW);
        Some(WindowResult {
            scope: Scope::Machine(machine.clone()),
            kind: WindowKind::Tumbling,
            start,
            end: start + self.p.tumbling_ms,
            label: None,
            revision: 0,
            sums,
            kpis,
        })
    }
}

struct Ctx<'a> {
    p: &'a OeeParams,
    tp: &'a TimeParams,
    step: Ms,
    /// Slices older than this behind the watermark are never needed.
    keep: Ms,
    site: Option<&'a SiteCal>,
}

impl Ctx<'_> {
    fn phase(&self, t: Ms) -> Ms {
        match self.site {
            None => 0,
            Some(c) => c.phase_const.unwrap_or_else(|| c.cal.hour_phase(t)),
        }
    }

    fn next_boundary(&self, h: Ms) -> Ms {
        let nb = align(h, self.step, self.phase(h)).saturating_add(self.step);
        match self.site {
            Some(c) => match c.bounds.get(c.bounds.partition_point(|b| *b <= h)) {
                Some(b) if *b < nb => *b,
                _ => nb,
            },
            None => nb,
        }
    }

    /// Where a machine whose earliest input is at `t` starts its slices: the start of the
    /// tumbling (and rolling step) window containing `t`. Shift and day windows that began
    /// earlier are still emitted; their part before the origin is time without data
    /// ([`no_data_sums`]), so a machine first seen late in a day does not make a day's worth of
    /// empty slices and rolling windows at once.
    fn origin_for(&self, t: Ms) -> Ms {
        let mut o = align(t, self.p.tumbling_ms, self.phase(t));
        if let Some(r) = self.p.rolling {
            o = o.min(align(t, r.every_ms, self.phase(t)));
        }
        o
    }

    /// Whether a tumbling, shift or day window starts or ends at `t`.
    fn is_window_bound(&self, t: Ms) -> bool {
        let tumbling = |ph: Ms| (t - ph).rem_euclid(self.p.tumbling_ms) == 0;
        tumbling(self.phase(t)) || tumbling(self.phase(t - 1)) || {
            self.site
                .is_some_and(|c| c.bounds.binary_search(&t).is_ok())
        }
    }

    /// Windows that end exactly at `b`: tumbling and rolling ones starting at or after
    /// `origin`, and every shift and day window (`b` is always after the origin; the part of
    /// one that began earlier is summed by [`window_sums`]).
    fn windows_ending(&self, origin: Ms, b: Ms) -> Vec<(WindowKind, Ms, Ms, Option<Arc<str>>)> {
        let mut v = Vec::new();
        let ph = self.phase(b - 1);
        let t = self.p.tumbling_ms;
        if (b - ph).rem_euclid(t) == 0 && b - t >= origin {
            v.push((WindowKind::Tumbling, b - t, b, None));
        }
        if let Some(r) = self.p.rolling
            && (b - ph).rem_euclid(r.every_ms) == 0
            && b - r.len_ms >= origin
        {
            v.push((WindowKind::Rolling, b - r.len_ms, b, None));
        }
        if let Some(c) = self.site {
            for s in c
                .shifts
                .iter()
                .filter(|s| self.p.shift_windows && s.end == b)
            {
                v.push((WindowKind::Shift, s.start, s.end, Some(s.name.clone())));
            }
            for d in c.days.iter().filter(|d| self.p.day_windows && d.1 == b) {
                v.push((WindowKind::Day, d.0, d.1, None));
            }
        }
        v
    }

    /// Windows containing the slice `[a, b)`.
    fn windows_containing(&self, a: Ms, b: Ms) -> Vec<(WindowKind, Ms)> {
        let mut v = Vec::new();
        let ph = self.phase(a);
        v.push((WindowKind::Tumbling, align(a, self.p.tumbling_ms, ph)));
        if let Some(r) = self.p.rolling {
            let mut end = align(b - 1, r.every_ms, ph) + r.every_ms;
            while end - r.len_ms <= a {
                v.push((WindowKind::Rolling, end - r.len_ms));
                end += r.every_ms;
            }
        }
        if let Some(c) = self.site {
            for s in c.shifts.iter().filter(|s| s.start <= a && a < s.end) {
                v.push((WindowKind::Shift, s.start));
            }
            for d in c.days.iter().filter(|d| d.0 <= a && a < d.1) {
                v.push((WindowKind::Day, d.0));
            }
        }
        v
    }
}

/// Whether an emitted window must be kept to detect its revisions: until its slices are
/// dropped, and for rolling windows until they end behind the revision horizon (only inputs
/// before its end change a rolling window, and those are too late there).
fn still_revisable(key: &(WindowKind, Ms), e: &Emitted, keep_h: Ms, rev_h: Ms) -> bool {
    e.end >= keep_h && (key.0 != WindowKind::Rolling || e.end >= rev_h)
}

/// Merges runs of adjacent slices that end by `before` (the revision horizon less the rolling
/// window's length: older rolling windows no longer change) and that no
/// tumbling, shift or day boundary separates. Behind the horizon only a slice's failure fields
/// can still change, and those are recomputed over any span ([`add_failures`]), so the sums of
/// tumbling, shift and day windows stay exactly the same while a machine keeps about one slice
/// per hour instead of one per rolling step for the (up to 26 h) longest window.
fn compact_slices(ctx: &Ctx<'_>, m: &mut Machine, before: Ms) {
    let mut merged: Vec<(Ms, Ms, Sums)> = Vec::new();
    let mut gone: Vec<Ms> = Vec::new();
    for (&a, (b, s)) in m.slices.range(..before) {
        let b = *b;
        if b > before {
            break;
        }
        match merged.last_mut() {
            Some(last) if last.1 == a && !ctx.is_window_bound(a) => {
                last.1 = b;
                last.2 += &s.unpack();
                gone.push(a);
            }
            _ => merged.push((a, b, s.unpack())),
        }
    }
    if gone.is_empty() {
        return;
    }
    for a in gone {
        m.slices.remove(&a);
    }
    for (a, b, s) in merged {
        m.slices.insert(a, (b, PackedSums::pack(&s)));
    }
}

/// The sums of slice `[a, b)` of a machine, from its sorted inputs.
fn compute_slice(ctx: &Ctx<'_>, m: &Machine, a: Ms, b: Ms) -> Sums {
    let mut s = Sums::default();
    let timeline: &[(Ms, CalCat)] = ctx.site.map_or(&[], |c| &c.timeline);
    accumulate_time(&mut s, m.states.heads(), a, b, timeline, ctx.tp);
    for (k, v) in m.counters.iter().enumerate() {
        v.for_each_in(a, b, |prev, cur| {
            let ict = m.ict_at(cur.ts);
            let max = prev.and_then(|p| ctx.p.plausibility.max_delta(cur.ts - p.ts, ict));
            let d = delta(prev, cur, max);
            match d.kind {
                DeltaKind::Reset => s.counter_resets += 1,
                DeltaKind::Rollover => s.counter_rollovers += 1,
                DeltaKind::Quarantined => s.counter_quarantined += 1,
                DeltaKind::Baseline if prev.is_some() => s.counter_resets += 1,
                _ => {}
            }
            if d.gap_attributed {
                s.gap_attributed += 1;
            }
            if d.kind == DeltaKind::Duplicate {
                return; // a birth re-send: nothing happened
            }
            let n = d.delta as i64;
            let ideal = ict.map_or(0, |c| c.ns as i128) * n as i128;
            match k {
                0 => {
                    s.total += n;
                    s.ideal_ns += ideal;
                    s.total_samples += 1;
                }
                1 => {
                    s.good += n;
                    s.ideal_good_ns += ideal;
                    s.good_samples += 1;
                }
                _ => {
                    s.reject += n;
                    s.ideal_reject_ns += ideal;
                }
            }
        });
    }
    add_failures(m, a, b, &mut s);
    s
}

/// Sets the failure fields of slice `[a, b)`: episodes that started in it.
fn add_failures(m: &Machine, a: Ms, b: Ms, s: &mut Sums) {
    failures_as_of(m, a, b, Ms::MAX, s);
}

/// Sets the failure fields of `[a, b)` as they stood at `as_of`: episodes that started in it,
/// counted closed only if they ended by `as_of`.
fn failures_as_of(m: &Machine, a: Ms, b: Ms, as_of: Ms, s: &mut Sums) {
    s.failures = 0;
    s.closed_failures = 0;
    s.open_failures = 0;
    s.ttr_ms = 0;
    let e0 = m.episodes.partition_point(|e| e.0 < a);
    for e in m.episodes[e0..].iter().take_while(|e| e.0 < b) {
        s.failures += 1;
        match e.1 {
            Some(end) if end <= as_of => {
                s.closed_failures += 1;
                s.ttr_ms += end - e.0;
            }
            _ => s.open_failures += 1,
        }
    }
}

/// The sums of a machine's window (see [`window_sums`]). A rolling window is the machine as
/// of its end: a failure still open then stays open in it. So it never changes once inputs
/// before its end are too late, and its slices can be compacted (see `prune`).
fn machine_window_sums(
    ctx: &Ctx<'_>,
    m: &Machine,
    kind: WindowKind,
    start: Ms,
    end: Ms,
) -> Option<Sums> {
    let mut sums = window_sums(ctx, m, m.origin?, start, end)?;
    if kind == WindowKind::Rolling {
        failures_as_of(m, start, end, end, &mut sums);
    }
    Some(sums)
}

/// Time in `[a, b)` as a machine without any input sees it: unknown where the calendar
/// schedules work, otherwise the calendar's own categories. A pure function of the calendar, so
/// a window's part before the machine's origin never depends on what was pruned since.
fn no_data_sums(ctx: &Ctx<'_>, a: Ms, b: Ms) -> Sums {
    let mut s = Sums::default();
    let timeline: &[(Ms, CalCat)] = ctx.site.map_or(&[], |c| &c.timeline);
    accumulate_time(&mut s, &[], a, b, timeline, ctx.tp);
    s
}

/// The sums of a machine's window `[start, end)`: its slices from `origin` on (they must cover
/// the rest exactly) plus time without data before `origin`.
fn window_sums(ctx: &Ctx<'_>, m: &Machine, origin: Ms, start: Ms, end: Ms) -> Option<Sums> {
    let mut sums = Sums::default();
    let mut t = start;
    if start < origin {
        sums = no_data_sums(ctx, start, origin);
        t = origin;
    }
    for (a, (b, s)) in m.slices.range(start..end) {
        if *a != t {
            return None;
        }
        sums += &s.unpack();
        t = *b;
    }
    (t == end).then_some(sums)
}

fn advance_machine(
    ctx: &Ctx<'_>,
    id: &MachineId,
    m: &mut Machine,
    w: Ms,
    out: &mut Vec<Output>,
    pending: &mut Vec<PendingLineWindow>,
    stats: &mut Stats,
) {
    let limit = unclassified_from(m.states.heads(), w, ctx.p.micro_stop_ms).map_or(w, |s| s.min(w));
    if m.origin.is_none() {
        if m.min_ts == Ms::MAX {
            return;
        }
        let o = ctx.origin_for(m.min_ts.max(limit.saturating_sub(ctx.keep)));
        if ctx.next_boundary(o) > limit {
            return;
        }
        m.origin = Some(o);
        m.horizon = o;
        m.dirty.clear();
    }
    // An input older than the origin (late data after the first windows were final, such as
    // store-and-forward data at start-up) moves the origin back, as far as inputs are kept: the
    // slices in between are made now, and every final window from there on is emitted or
    // revised below, as if the input had come first.
    let moved_back = m.origin.and_then(|o| {
        let back = ctx.origin_for(m.min_ts.max(limit.saturating_sub(ctx.keep)));
        (back < o).then(|| {
            let mut a = back;
            while a < o {
                let b = ctx.next_boundary(a).min(o);
                if b <= a {
                    break;
                }
                let s = compute_slice(ctx, m, a, b);
                m.slices.insert(a, (b, PackedSums::pack(&s)));
                a = b;
            }
            m.origin = Some(back);
            back
        })
    });
    let origin = m.origin.unwrap_or(Ms::MIN);
    let mut emit = |m: &mut Machine,
                    kind: WindowKind,
                    start: Ms,
                    end: Ms,
                    label: Option<Arc<str>>,
                    out: &mut Vec<Output>| {
        let Some(sums) = machine_window_sums(ctx, m, kind, start, end) else {
            return;
        };
        let fp = fingerprint(&sums);
        let revision = match m.emitted.get(&(kind, start)) {
            Some(e) if e.fingerprint == fp => return,
            Some(e) => e.revision + 1,
            None => 0,
        };
        if revision > 0 {
            stats.revisions += 1;
        }
        m.emitted.insert(
            (kind, start),
            Emitted {
                end,
                label: label.clone(),
                revision,
                fingerprint: fp,
            },
        );
        pending.push((id.line_id(), kind, start, end, label.clone()));
        out.push(Output::Window(WindowResult {
            scope: Scope::Machine(id.clone()),
            kind,
            start,
            end,
            label,
            revision,
            sums,
            kpis: sums.kpis(ctx.p.tbf_basis),
        }));
    };
    // Late inputs: recompute the final slices they touch.
    let mut touched: BTreeSet<(WindowKind, Ms)> = BTreeSet::new();
    let dirty = std::mem::take(&mut m.dirty);
    for (lo, hi) in dirty {
        let keys: Vec<Ms> = m
            .slices
            .range(..=hi)
            .rev()
            .take_while(|(_, (b, _))| *b > lo)
            .map(|(a, _)| *a)
            .collect();
        if lo < origin {
            stats.before_origin += 1;
        }
        for a in keys {
            let Some((b, old)) = m.slices.get(&a).map(|(b, p)| (*b, p.unpack())) else {
                continue;
            };
            let s = if a < m.pruned_before {
                let mut s = old;
                add_failures(m, a, b, &mut s);
                s
            } else {
                compute_slice(ctx, m, a, b)
            };
            if old != s {
                m.slices.insert(a, (b, PackedSums::pack(&s)));
                touched.extend(ctx.windows_containing(a, b));
            }
        }
    }
    for (kind, start) in touched {
        if let Some(e) = m.emitted.get(&(kind, start)) {
            let (end, label) = (e.end, e.label.clone());
            emit(m, kind, start, end, label, out);
        }
    }
    if let Some(back) = moved_back {
        let mut b = ctx.next_boundary(back);
        while b <= m.horizon {
            for (kind, start, end, label) in ctx.windows_ending(back, b) {
                emit(m, kind, start, end, label, out);
            }
            let next = ctx.next_boundary(b);
            if next <= b {
                break;
            }
            b = next;
        }
    }
    // New final slices. A jump of the watermark (or a garbage timestamp) never makes more
    // work than the slices that are kept anyway.
    let floor = limit.saturating_sub(ctx.keep);
    if m.horizon < floor {
        m.horizon = align(floor, ctx.step, ctx.phase(floor));
    }
    loop {
        let a = m.horizon;
        let b = ctx.next_boundary(a);
        if b > limit || b <= a {
            break;
        }
        let s = compute_slice(ctx, m, a, b);
        m.slices.insert(a, (b, PackedSums::pack(&s)));
        m.horizon = b;
        for (kind, start, end, label) in ctx.windows_ending(origin, b) {
            emit(m, kind, start, end, label, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `state.running` and `state.code` of one machine side by side (as the demo maps them):
    /// both say "running", so the engine keeps one change, not one per sample.
    #[test]
    fn running_flag_and_state_code_side_by_side_make_one_run() {
        let mut e = OeeEngine::new(OeeParams::default(), FaultParams::default());
        let m = MachineId::new("S", "L", "M");
        let mut out = Vec::new();
        for i in 0..1000 {
            let value = if i % 2 == 0 {
                StateValue::Running(true)
            } else {
                StateValue::Category(Category::Running, 7)
            };
            e.push(
                &OeeInput::State {
                    machine: m.clone(),
                    ts_ms: 1_700_000_000_000 + i * 50,
                    seq: 0,
                    value,
                },
                &mut out,
            );
        }
        assert_eq!(e.machines[&m].states.heads().len(), 1);
        assert_eq!(e.machines[&m].states.len(), 1000);
    }
}
