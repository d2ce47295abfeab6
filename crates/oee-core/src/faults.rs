//! Fault instances per (machine, code): ACTIVE → ACKNOWLEDGED → RESOLVED, in event time.
//!
//! Two orthogonal bits (ISA-18.2 / OPC UA A&C): `active` and `acked`. RESOLVED with
//! `acked_ms = None` is ISA's "returned to normal unacknowledged" and stays visible. A
//! re-activation of the same (machine, code) at most `dedup_window_ms` after its resolution
//! (inclusive) re-opens the same instance: `occurrence_count + 1`, state ACTIVE (a new ack is
//! required; the first ack stays in `ack_history`). An activation while open is a no-op (MQTT
//! at-least-once, birth re-sends). The instance keeps its highest severity. ≥ `chatter_count`
//! activations within `chatter_window_ms` set `chattering`.
//!
//! The instances of a key are a pure function of that key's inputs sorted by
//! `(ts, seq, kind)`: inputs in order are applied one by one, and an input older than the last
//! applied one re-folds the key from its inputs (emitting `Revised` / `Superseded` events), so the
//! final instances do not depend on arrival order. Instance ids are derived from machine, code
//! and first activation time (FNV-1a), never random.
//!
//! Late data has a horizon, as for the windows: [`FaultTracker::prune`] is given the time before
//! which inputs are too late (the engine's `watermark − revision_horizon_ms`). Activations and
//! clears before it are ignored and counted; the inputs before it are folded into the instances
//! *as they were at the horizon* and dropped, since every input still accepted sorts after them.
//! A key's log is then its inputs within the horizon, whatever the uptime.

use std::sync::Arc;

use crate::compact::{Step, StepSeries};
use crate::types::{FastMap, MachineId, Ms};

/// A severity rule: every condition given must hold; the first matching rule (list order)
/// wins, the same semantics as the `faults.severity_rules` config section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeverityRule {
    /// Exactly this code.
    pub code: Option<i64>,
    /// An inclusive code range.
    pub range: Option<(i64, i64)>,
    /// A glob over the decimal code (`*` any run, `?` one character), e.g. `"18*"`.
    pub code_pattern: Option<String>,
    /// A glob over the machine id, e.g. `"press-*"`.
    pub machine_pattern: Option<String>,
    /// Severity 1–1000 (OPC UA bands: 801–1000 high … 1–200 low); `None` = default.
    pub severity: Option<u16>,
    /// Whether these faults are failures (count for MTBF/MTTR); `None` = by severity threshold.
    pub failure: Option<bool>,
}

impl SeverityRule {
    /// True when every condition given holds.
    pub fn matches(&self, machine: &str, code: i64) -> bool {
        self.code.is_none_or(|c| c == code)
            && self.range.is_none_or(|(lo, hi)| (lo..=hi).contains(&code))
            && self
                .code_pattern
                .as_ref()
                .is_none_or(|p| glob(p.as_bytes(), code.to_string().as_bytes()))
            && self
                .machine_pattern
                .as_ref()
                .is_none_or(|p| glob(p.as_bytes(), machine.as_bytes()))
    }
}

/// Fault tracking parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultParams {
    /// Re-activation within this time after resolution merges (inclusive). Default 300 000.
    pub dedup_window_ms: Ms,
    /// Severity rules, first match wins.
    pub severity_rules: Vec<SeverityRule>,
    /// Severity when no rule matches and the input carries none. Default 500.
    pub default_severity: u16,
    /// Faults at or above this severity are failures unless a rule says otherwise. Default 1
    /// (every fault is a failure).
    pub failure_min_severity: u16,
    /// Activations within `chatter_window_ms` that make an instance chattering. Default 3.
    pub chatter_count: usize,
    /// Default 60 000.
    pub chatter_window_ms: Ms,
    /// Resolved instances older than this (behind the watermark) are forgotten, but never
    /// before the horizon of late data has passed their resolution (nor the last instance of a
    /// key, which the dedup window may re-open). Default 24 h.
    pub retention_ms: Ms,
}

impl Default for FaultParams {
    fn default() -> Self {
        Self {
            dedup_window_ms: 300_000,
            severity_rules: Vec::new(),
            default_severity: 500,
            failure_min_severity: 1,
            chatter_count: 3,
            chatter_window_ms: 60_000,
            retention_ms: 86_400_000,
        }
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

impl FaultParams {
    /// The first rule matching a machine id and code, if any.
    pub fn rule(&self, machine: &str, code: i64) -> Option<&SeverityRule> {
        self.severity_rules
            .iter()
            .find(|r| r.matches(machine, code))
    }

    /// Severity and failure class of one activation (a severity carried by the signal wins).
    pub fn classify(&self, machine: &str, code: i64, explicit: Option<u16>) -> (u16, bool) {
        let rule = self.rule(machine, code);
        let sev = explicit
            .or(rule.and_then(|r| r.severity))
            .unwrap_or(self.default_severity);
        let failure = rule
            .and_then(|r| r.failure)
            .unwrap_or(sev >= self.failure_min_severity);
        (sev, failure)
    }
}

/// Stable instance id: FNV-1a 64 over machine, code and first activation time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FaultInstanceId(pub u64);

impl FaultInstanceId {
    /// Derives the id.
    pub fn derive(machine: &MachineId, code: i64, first_active_ms: Ms) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        for part in [&machine.site, &machine.line, &machine.machine] {
            eat(part.as_bytes());
            eat(&[0]);
        }
        eat(&code.to_le_bytes());
        eat(&first_active_ms.to_le_bytes());
        Self(h)
    }
}

impl std::fmt::Display for FaultInstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultState {
    /// Active, not acknowledged.
    Active,
    /// Active and acknowledged.
    Acknowledged,
    /// Cleared (acknowledged or not: see `acked_ms`).
    Resolved,
}

/// One fault instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultInstance {
    /// Stable id.
    pub id: FaultInstanceId,
    /// Machine.
    pub machine: MachineId,
    /// Fault code.
    pub code: i64,
    /// Current state.
    pub state: FaultState,
    /// First activation.
    pub first_active_ms: Ms,
    /// Latest activation.
    pub last_active_ms: Ms,
    /// Resolution time (None while open).
    pub resolved_ms: Option<Ms>,
    /// Ack of the current occurrence (None = unacknowledged).
    pub acked_ms: Option<Ms>,
    /// Who acknowledged the current occurrence.
    pub acked_by: Option<Arc<str>>,
    /// Every ack `(ts, who)`, including those of earlier occurrences.
    pub ack_history: Vec<(Ms, Arc<str>)>,
    /// Activations merged into this instance.
    pub occurrence_count: u32,
    /// Highest severity seen.
    pub severity: u16,
    /// Counts for MTBF/MTTR.
    pub failure: bool,
    /// Activated `chatter_count` times within `chatter_window_ms`.
    pub chattering: bool,
    recent: Vec<Ms>,
}

impl FaultInstance {
    /// Duration from first activation to resolution (None while open).
    pub fn duration_ms(&self) -> Option<Ms> {
        self.resolved_ms.map(|r| r - self.first_active_ms)
    }

    /// Time to the first acknowledgement (MTTA sample).
    pub fn time_to_ack_ms(&self) -> Option<Ms> {
        self.ack_history.first().map(|a| a.0 - self.first_active_ms)
    }
}

/// What happened to an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultTransition {
    /// A new instance.
    Activated,
    /// A resolved instance re-opened within the dedup window.
    Reactivated,
    /// Acknowledged.
    Acknowledged,
    /// Cleared.
    Resolved,
    /// Late input changed the instance (snapshot is the new content).
    Revised,
    /// Late input removed the instance (its activations now belong to another one).
    Superseded,
}

/// A fault event: the transition and a snapshot of the instance after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultEvent {
    /// What happened.
    pub transition: FaultTransition,
    /// Event time of the transition.
    pub ts_ms: Ms,
    /// The instance after the transition.
    pub instance: FaultInstance,
}

/// One input of a key, sorted by `(ts, seq, kind)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct KeyInput {
    ts: Ms,
    seq: u64,
    kind: InputKind,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum InputKind {
    Deactivate,
    Activate { severity: Option<u16> },
    Ack { id: FaultInstanceId, who: Arc<str> },
}

impl KeyInput {
    fn edge(&self) -> Option<Edge> {
        let kind = match self.kind {
            InputKind::Deactivate => EdgeKind::Deactivate,
            InputKind::Activate { severity } => EdgeKind::Activate { severity },
            InputKind::Ack { .. } => return None,
        };
        Some(Edge {
            ts: self.ts,
            seq: self.seq,
            kind,
        })
    }
}

/// An activation or clear of a key, ordered as its [`KeyInput`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    ts: Ms,
    seq: u64,
    kind: EdgeKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum EdgeKind {
    Deactivate,
    Activate { severity: Option<u16> },
}

impl Edge {
    fn input(&self) -> KeyInput {
        let kind = match self.kind {
            EdgeKind::Deactivate => InputKind::Deactivate,
            EdgeKind::Activate { severity } => InputKind::Activate { severity },
        };
        KeyInput {
            ts: self.ts,
            seq: self.seq,
            kind,
        }
    }
}

impl Step for Edge {
    fn key(&self) -> (Ms, u64) {
        (self.ts, self.seq)
    }
    fn at(self, (ts, seq): (Ms, u64)) -> Self {
        Edge { ts, seq, ..self }
    }
    fn same_value(&self, o: &Self) -> bool {
        self.kind == o.kind
    }
}

/// The inputs of a key: its activations and clears as a step series, its acks apart. An edge
/// equal to the edge before it (acks between them or not) changes nothing when folded: after an
/// activation the last instance is open, so another activation is a no-op; after a clear it is
/// resolved (or there is none), so another clear is one too. So folding the heads and the acks
/// gives the instances of folding every input, and a flag re-sent 20 times a second costs a
/// few bytes per sample; the repeats are kept because a late input can land between them.
///
/// Inputs before the tracker's horizon are gone: `base` is what folding them gave, and the
/// fold goes on from there. The first edge kept may repeat the last one folded into `base`
/// (it is then a head of `edges` without being a change): by the argument above, a no-op.
#[derive(Debug, Default)]
struct KeyState {
    base: Vec<FaultInstance>,
    edges: StepSeries<Edge>,
    acks: Vec<KeyInput>,
    /// `base` with every input of `edges` and `acks` folded in.
    instances: Vec<FaultInstance>,
}

impl KeyState {
    /// Adds an input; `None` for an exact duplicate, else whether it came after every other.
    fn add(&mut self, input: &KeyInput) -> Option<bool> {
        let last_edge = self.edges.last().map(|e| e.input());
        let after_all =
            last_edge.is_none_or(|e| e < *input) && self.acks.last().is_none_or(|a| a < input);
        match input.edge() {
            Some(e) => {
                if !self.edges.insert(e) {
                    return None;
                }
            }
            None => {
                let pos = self.acks.partition_point(|x| x <= input);
                if pos > 0 && self.acks[pos - 1] == *input {
                    return None;
                }
                self.acks.insert(pos, input.clone());
            }
        }
        Some(after_all)
    }

    /// Folds every input in order onto `base` (see the type's documentation for why heads
    /// suffice).
    fn fold(&self, machine: &MachineId, code: i64, p: &FaultParams) -> Vec<FaultInstance> {
        let mut inst = self.base.clone();
        fold_into(&mut inst, self.edges.heads(), &self.acks, machine, code, p);
        inst
    }

    /// Folds the inputs before `horizon` into `base` and drops them. Edges before it cannot come
    /// any more; an ack before it still can (see [`FaultTracker::ack`]) and then sorts before
    /// every kept edge, as it would have had it come before the collapse.
    fn collapse(&mut self, horizon: Ms, machine: &MachineId, code: i64, p: &FaultParams) {
        let heads = self.edges.heads();
        let n_edges = heads.partition_point(|e| e.ts < horizon);
        let n_acks = self.acks.partition_point(|a| a.ts < horizon);
        if n_edges == 0 && n_acks == 0 {
            return;
        }
        fold_into(
            &mut self.base,
            &heads[..n_edges],
            &self.acks[..n_acks],
            machine,
            code,
            p,
        );
        self.edges.drop_before(horizon);
        self.acks.drain(..n_acks);
    }

    /// Inputs held: edges (repeats included) and acks.
    fn inputs(&self) -> usize {
        self.edges.len() + self.acks.len()
    }
}

/// Applies edges and acks (each sorted), merged in input order.
fn fold_into(
    inst: &mut Vec<FaultInstance>,
    edges: &[Edge],
    acks: &[KeyInput],
    machine: &MachineId,
    code: i64,
    p: &FaultParams,
) {
    let mut acks = acks.iter().peekable();
    for e in edges {
        let e = e.input();
        while let Some(a) = acks.next_if(|a| **a < e) {
            apply(inst, machine, code, a, p);
        }
        apply(inst, machine, code, &e, p);
    }
    for a in acks {
        apply(inst, machine, code, a, p);
    }
}

fn apply(
    inst: &mut Vec<FaultInstance>,
    machine: &MachineId,
    code: i64,
    input: &KeyInput,
    p: &FaultParams,
) -> Option<(FaultTransition, usize)> {
    let t = input.ts;
    match &input.kind {
        InputKind::Activate { severity } => {
            let (sev, failure) = p.classify(&machine.machine, code, *severity);
            if let Some(last) = inst.last_mut() {
                match last.state {
                    FaultState::Active | FaultState::Acknowledged => return None,
                    FaultState::Resolved => {
                        if last.resolved_ms.is_some_and(|r| t - r <= p.dedup_window_ms) {
                            last.state = FaultState::Active;
                            last.resolved_ms = None;
                            last.acked_ms = None;
                            last.acked_by = None;
                            last.last_active_ms = t;
                            last.occurrence_count += 1;
                            last.severity = last.severity.max(sev);
                            last.failure |= failure;
                            last.recent.retain(|r| t - r < p.chatter_window_ms);
                            last.recent.push(t);
                            if last.recent.len() >= p.chatter_count {
                                last.chattering = true;
                            }
                            return Some((FaultTransition::Reactivated, inst.len() - 1));
                        }
                    }
                }
            }
            inst.push(FaultInstance {
                id: FaultInstanceId::derive(machine, code, t),
                machine: machine.clone(),
                code,
                state: FaultState::Active,
                first_active_ms: t,
                last_active_ms: t,
                resolved_ms: None,
                acked_ms: None,
                acked_by: None,
                ack_history: Vec::new(),
                occurrence_count: 1,
                severity: sev,
                failure,
                chattering: p.chatter_count <= 1,
                recent: vec![t],
            });
            Some((FaultTransition::Activated, inst.len() - 1))
        }
        InputKind::Deactivate => {
            let last = inst.last_mut()?;
            if last.state == FaultState::Resolved {
                return None;
            }
            last.state = FaultState::Resolved;
            last.resolved_ms = Some(t);
            Some((FaultTransition::Resolved, inst.len() - 1))
        }
        InputKind::Ack { id, who } => {
            let i = inst.iter().position(|x| x.id == *id)?;
            let x = &mut inst[i];
            if x.acked_ms.is_some() || t < x.last_active_ms {
                return None;
            }
            x.acked_ms = Some(t);
            x.acked_by = Some(who.clone());
            x.ack_history.push((t, who.clone()));
            if x.state == FaultState::Active {
                x.state = FaultState::Acknowledged;
            }
            Some((FaultTransition::Acknowledged, i))
        }
    }
}

/// The fault tracker over all machines.
#[derive(Debug)]
pub struct FaultTracker {
    params: FaultParams,
    keys: FastMap<(MachineId, i64), KeyState>,
    by_id: FastMap<FaultInstanceId, (MachineId, i64)>,
    by_machine: FastMap<MachineId, Vec<i64>>,
    /// Activations and clears before this are too late (see [`FaultTracker::prune`]).
    horizon: Ms,
    /// Acks naming an instance id that is not known.
    pub unknown_acks: u64,
    /// Activations and clears older than the horizon of the last prune, ignored. (The engine
    /// drops them before they get here and counts them in its own `too_late`.)
    pub too_late: u64,
}

impl Default for FaultTracker {
    fn default() -> Self {
        Self::new(FaultParams::default())
    }
}

impl FaultTracker {
    /// A tracker with these parameters.
    pub fn new(params: FaultParams) -> Self {
        Self {
            params,
            keys: FastMap::default(),
            by_id: FastMap::default(),
            by_machine: FastMap::default(),
            horizon: Ms::MIN,
            unknown_acks: 0,
            too_late: 0,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &FaultParams {
        &self.params
    }

    /// A fault bit of `(machine, code)` changed at `ts`. Returns true when the failure spans
    /// of the machine may have changed. Before the horizon of the last [`prune`](Self::prune),
    /// ignored and counted in `too_late`.
    #[allow(clippy::too_many_arguments)]
    pub fn fault(
        &mut self,
        machine: &MachineId,
        code: i64,
        active: bool,
        ts: Ms,
        seq: u64,
        severity: Option<u16>,
        out: &mut Vec<FaultEvent>,
    ) -> bool {
        if ts < self.horizon {
            self.too_late += 1;
            return false;
        }
        let kind = if active {
            InputKind::Activate { severity }
        } else {
            InputKind::Deactivate
        };
        self.input(machine, code, KeyInput { ts, seq, kind }, out)
    }

    /// An explicit acknowledgement. Returns the machine whose instance it named, if known.
    /// It is never too late (it carries the operator's time, which may lag the machines'):
    /// one stamped before the horizon applies to the instance as it was at the horizon.
    pub fn ack(
        &mut self,
        id: FaultInstanceId,
        who: &str,
        ts: Ms,
        out: &mut Vec<FaultEvent>,
    ) -> Option<MachineId> {
        let Some((m, code)) = self.by_id.get(&id).cloned() else {
            self.unknown_acks += 1;
            return None;
        };
        let kind = InputKind::Ack {
            id,
            who: who.into(),
        };
        self.input(&m, code, KeyInput { ts, seq: 0, kind }, out);
        Some(m)
    }

    fn input(
        &mut self,
        machine: &MachineId,
        code: i64,
        input: KeyInput,
        out: &mut Vec<FaultEvent>,
    ) -> bool {
        let key = (machine.clone(), code);
        let st = match self.keys.get_mut(&key) {
            Some(s) => s,
            None => {
                self.by_machine
                    .entry(machine.clone())
                    .or_default()
                    .push(code);
                self.keys.entry(key).or_default()
            }
        };
        let Some(in_order) = st.add(&input) else {
            return false; // exact duplicate
        };
        if in_order {
            let Some((tr, i)) = apply(&mut st.instances, machine, code, &input, &self.params)
            else {
                return false;
            };
            let snap = st.instances[i].clone();
            self.by_id.insert(snap.id, (machine.clone(), code));
            let failure = snap.failure;
            out.push(FaultEvent {
                transition: tr,
                ts_ms: input.ts,
                instance: snap,
            });
            return failure;
        }
        // Out of order: re-fold the key from its inputs.
        let fresh = st.fold(machine, code, &self.params);
        let old = std::mem::replace(&mut st.instances, fresh);
        let mut changed_failure = false;
        for o in &old {
            if !st.instances.iter().any(|n| n.id == o.id) {
                self.by_id.remove(&o.id);
                changed_failure |= o.failure;
                out.push(FaultEvent {
                    transition: FaultTransition::Superseded,
                    ts_ms: o.first_active_ms,
                    instance: o.clone(),
                });
            }
        }
        for n in &st.instances {
            if old.iter().find(|o| o.id == n.id) != Some(n) {
                self.by_id.insert(n.id, (machine.clone(), code));
                changed_failure |= n.failure;
                out.push(FaultEvent {
                    transition: FaultTransition::Revised,
                    ts_ms: n.last_active_ms,
                    instance: n.clone(),
                });
            }
        }
        changed_failure
    }

    /// An instance by id.
    pub fn instance(&self, id: FaultInstanceId) -> Option<&FaultInstance> {
        let key = self.by_id.get(&id)?;
        self.keys.get(key)?.instances.iter().find(|i| i.id == id)
    }

    /// Every instance, sorted by (machine, code, first activation).
    pub fn instances(&self) -> Vec<&FaultInstance> {
        let mut v: Vec<&FaultInstance> = self
            .keys
            .values()
            .flat_map(|k| k.instances.iter())
            .collect();
        v.sort_by(|a, b| {
            (&a.machine, a.code, a.first_active_ms).cmp(&(&b.machine, b.code, b.first_active_ms))
        });
        v
    }

    /// The failure episodes of a machine: unions of overlapping (or touching) failure-class
    /// instances, as `(start, end)` with `end = None` while open, sorted by start.
    pub fn episodes(&self, machine: &MachineId) -> Vec<(Ms, Option<Ms>)> {
        let mut spans: Vec<(Ms, Option<Ms>)> = Vec::new();
        for code in self.by_machine.get(machine).into_iter().flatten() {
            if let Some(k) = self.keys.get(&(machine.clone(), *code)) {
                spans.extend(
                    k.instances
                        .iter()
                        .filter(|i| i.failure)
                        .map(|i| (i.first_active_ms, i.resolved_ms)),
                );
            }
        }
        merge_episodes(spans)
    }

    /// Activations and clears before `horizon` become too late (the engine passes
    /// `watermark − revision_horizon_ms`; it never moves back): the inputs before it are folded
    /// into the state at the horizon and dropped. Forgets instances resolved before both
    /// `watermark − retention_ms` and `horizon`, except the last of each key (the dedup window
    /// may re-open it) and the last one the horizon state holds (the fold goes on from it).
    pub fn prune(&mut self, watermark: Ms, horizon: Ms) {
        self.horizon = self.horizon.max(horizon);
        let horizon = self.horizon;
        let forget_before = watermark
            .saturating_sub(self.params.retention_ms)
            .min(horizon);
        let by_id = &mut self.by_id;
        for ((machine, code), st) in self.keys.iter_mut() {
            st.collapse(horizon, machine, *code, &self.params);
            // `base` is a prefix of `instances` (a fold only changes the last instance or adds
            // one, and acks by id): the same instances, older versions.
            let keep_from = st.instances[..st.base.len().saturating_sub(1)]
                .iter()
                .position(|i| i.resolved_ms.is_none_or(|r| r >= forget_before))
                .unwrap_or(st.base.len().saturating_sub(1));
            if keep_from == 0 {
                continue;
            }
            st.base.drain(..keep_from);
            for i in st.instances.drain(..keep_from) {
                by_id.remove(&i.id);
            }
        }
    }

    /// Inputs (activations, clears, acks; re-sent values included) held for late data, over
    /// all keys: those within the horizon.
    pub fn retained_inputs(&self) -> usize {
        self.keys.values().map(KeyState::inputs).sum()
    }
}

/// Unions spans into episodes (overlapping or touching spans merge; an open span absorbs every
/// later one).
pub fn merge_episodes(mut spans: Vec<(Ms, Option<Ms>)>) -> Vec<(Ms, Option<Ms>)> {
    spans.sort_unstable();
    let mut out: Vec<(Ms, Option<Ms>)> = Vec::new();
    for (s, e) in spans {
        if let Some(last) = out.last_mut() {
            match last.1 {
                None => continue,
                Some(le) if s <= le => {
                    last.1 = e.map(|e| e.max(le));
                    continue;
                }
                _ => {}
            }
        }
        out.push((s, e));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Ms = 1000;
    const MIN: Ms = 60 * S;
    const H: Ms = 60 * MIN;
    const DAY: Ms = 24 * H;
    /// The engine's defaults: 5 min allowed lateness, a 2 h revision horizon, a prune every
    /// 10 minutes of watermark.
    const LATENESS: Ms = 5 * MIN;
    const HORIZON: Ms = 2 * H;
    const PRUNE_EVERY: Ms = 10 * MIN;

    fn m() -> MachineId {
        MachineId::new("site", "line", "m1")
    }

    /// Drives a tracker as the engine does: the watermark follows the newest input, and every
    /// 10 minutes of it the tracker is pruned with the engine's horizon.
    struct Driver {
        t: FaultTracker,
        max_ts: Ms,
        last_prune: Ms,
        out: Vec<FaultEvent>,
    }

    impl Driver {
        fn new(p: FaultParams) -> Self {
            Driver {
                t: FaultTracker::new(p),
                max_ts: Ms::MIN,
                last_prune: Ms::MIN,
                out: Vec::new(),
            }
        }

        fn fault(&mut self, code: i64, active: bool, ts: Ms, seq: u64) {
            self.t
                .fault(&m(), code, active, ts, seq, None, &mut self.out);
            self.max_ts = self.max_ts.max(ts);
            let w = self.max_ts - LATENESS;
            if w >= self.last_prune.saturating_add(PRUNE_EVERY) {
                self.t.prune(w, w - HORIZON);
                self.last_prune = w;
            }
        }
    }

    /// The most a driven key may hold: the horizon, the lateness and a prune period of inputs.
    fn bound(period: Ms) -> usize {
        ((HORIZON + LATENESS + PRUNE_EVERY) / period + 2) as usize
    }

    #[test]
    fn a_flag_re_sent_false_for_days_keeps_a_bounded_log() {
        let mut d = Driver::new(FaultParams::default());
        let mut peak = 0;
        for k in 0..3 * DAY / S {
            d.fault(7, false, k * S, k as u64);
            peak = peak.max(d.t.retained_inputs());
        }
        // Without the horizon, all 259 200 samples.
        assert!(peak <= bound(S), "peak {peak}");
        assert!(d.t.instances().is_empty());
        assert!(d.out.is_empty());
        assert_eq!(d.t.too_late, 0);
    }

    #[test]
    fn a_resolved_instance_re_sent_for_days_keeps_a_bounded_log_and_its_instance() {
        let mut d = Driver::new(FaultParams::default());
        d.fault(7, true, 0, 0);
        d.fault(7, true, S, 1);
        let id = d.out[0].instance.id;
        let mut peak = 0;
        for k in 60..3 * DAY / S {
            d.fault(7, false, k * S, k as u64);
            peak = peak.max(d.t.retained_inputs());
        }
        assert!(peak <= bound(S), "peak {peak}");
        // The instance is the key's last one: kept, unchanged, with its id.
        let all = d.t.instances();
        assert_eq!(all.len(), 1);
        assert_eq!(
            (all[0].id, all[0].state, all[0].resolved_ms),
            (id, FaultState::Resolved, Some(60 * S))
        );
        // A new activation is a new instance, the old one forgotten once it is a day old.
        let t = 3 * DAY;
        d.fault(7, true, t, 1 << 40);
        d.fault(7, true, t + DAY, 1 << 40);
        let all = d.t.instances();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].first_active_ms, t);
        assert!(d.t.instance(id).is_none());
    }

    #[test]
    fn an_input_behind_the_horizon_is_counted_and_ignored() {
        let mut t = FaultTracker::new(FaultParams::default());
        let mut out = Vec::new();
        t.fault(&m(), 7, true, 0, 0, None, &mut out);
        t.fault(&m(), 7, false, 10 * MIN, 1, None, &mut out);
        t.prune(5 * H, 3 * H);
        let before: Vec<FaultInstance> = t.instances().into_iter().cloned().collect();
        out.clear();
        // Would resolve the instance at 5 min and open another at 3 h − 1 ms.
        assert!(!t.fault(&m(), 7, false, 5 * MIN, 2, None, &mut out));
        assert!(!t.fault(&m(), 7, true, 3 * H - 1, 3, None, &mut out));
        assert_eq!(t.too_late, 2);
        assert!(out.is_empty());
        let after: Vec<FaultInstance> = t.instances().into_iter().cloned().collect();
        assert_eq!(after, before);
    }

    #[test]
    fn an_input_at_the_horizon_still_revises() {
        // Active from 0, `true` re-sent every 10 s, cleared at 3 h; pruned at a horizon of 2 h.
        let feed = |t: &mut FaultTracker, out: &mut Vec<FaultEvent>, prune: bool| {
            for k in 0..3 * H / (10 * S) {
                t.fault(&m(), 7, true, k * 10 * S, k as u64, None, out);
            }
            t.fault(&m(), 7, false, 3 * H, 0, None, out);
            if prune {
                t.prune(4 * H, 2 * H);
            }
        };
        let mut pruned = FaultTracker::default();
        let mut full = FaultTracker::default();
        let (mut out_p, mut out_f) = (Vec::new(), Vec::new());
        feed(&mut pruned, &mut out_p, true);
        feed(&mut full, &mut out_f, false);
        assert!(pruned.retained_inputs() < full.retained_inputs() / 2);
        // A late clear at the horizon, 5 s before a repeat: resolved at 2 h, re-opened (the
        // dedup window) at 2 h + 5 s, as with every input kept.
        out_p.clear();
        out_f.clear();
        pruned.fault(&m(), 7, false, 2 * H, 1 << 40, None, &mut out_p);
        full.fault(&m(), 7, false, 2 * H, 1 << 40, None, &mut out_f);
        assert_eq!(pruned.too_late, 0);
        assert_eq!(out_p, out_f);
        assert_eq!(out_p.len(), 1);
        assert_eq!(out_p[0].transition, FaultTransition::Revised);
        assert_eq!(
            (
                out_p[0].instance.occurrence_count,
                out_p[0].instance.first_active_ms
            ),
            (2, 0)
        );
        assert_eq!(pruned.instances(), full.instances());
        // One millisecond earlier is too late.
        pruned.fault(&m(), 7, true, 2 * H - 1, 0, None, &mut out_p);
        assert_eq!(pruned.too_late, 1);
    }

    #[test]
    fn the_instance_the_horizon_state_ends_with_is_kept_for_the_dedup_window() {
        // A dedup window longer than retention − horizon: X resolved at 1 min can still be
        // re-opened at the horizon (10 h) although it is older than the retention (3 h) and a
        // later instance Y exists.
        let p = FaultParams {
            dedup_window_ms: 10 * H,
            retention_ms: 3 * H,
            ..FaultParams::default()
        };
        let feed = |t: &mut FaultTracker, out: &mut Vec<FaultEvent>| {
            t.fault(&m(), 7, true, 0, 0, None, out);
            t.fault(&m(), 7, false, MIN, 0, None, out);
            t.fault(&m(), 7, true, 10 * H + 2 * MIN, 0, None, out);
            t.fault(&m(), 7, false, 10 * H + 3 * MIN, 0, None, out);
        };
        let mut pruned = FaultTracker::new(p.clone());
        let mut full = FaultTracker::new(p);
        let (mut out_p, mut out_f) = (Vec::new(), Vec::new());
        feed(&mut pruned, &mut out_p);
        feed(&mut full, &mut out_f);
        pruned.prune(12 * H, 10 * H);
        assert_eq!(pruned.instances(), full.instances());
        out_p.clear();
        out_f.clear();
        pruned.fault(&m(), 7, true, 10 * H + MIN, 1, None, &mut out_p);
        full.fault(&m(), 7, true, 10 * H + MIN, 1, None, &mut out_f);
        assert_eq!(out_p, out_f);
        let all = pruned.instances();
        assert_eq!(all, full.instances());
        assert_eq!((all.len(), all[0].first_active_ms), (1, 0));
    }

    /// A small deterministic generator (no dependency for one test).
    fn lcg(x: &mut u64) -> u64 {
        *x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *x >> 33
    }

    #[test]
    fn every_input_within_the_horizon_gives_the_events_of_a_tracker_that_keeps_every_input() {
        // Two flags re-sent every 10 s for 12 h, toggling at random, with inputs up to 3 h late
        // and operator acks (at the operator's time, after the instance's last change, as the
        // service sends them). The pruned tracker must emit what a tracker that never forgets
        // emits for every input it does not count as too late.
        let p = FaultParams {
            retention_ms: 100 * DAY, // forgetting instances is not what is compared here
            ..FaultParams::default()
        };
        for seed in 0..6u64 {
            let mut rng = seed;
            let mut d = Driver::new(p.clone());
            let mut full = FaultTracker::new(p.clone());
            let mut out_f = Vec::new();
            let mut value = [false, true];
            let (mut seen_late, mut acks_behind) = (0, 0);
            for k in 0..12 * H / (10 * S) {
                for (code, v) in value.iter_mut().enumerate() {
                    let r = lcg(&mut rng);
                    if r.is_multiple_of(50) {
                        *v = !*v;
                    }
                    let (ts, active) = if r.is_multiple_of(7) {
                        (k * 10 * S - (r as Ms % (3 * H)), r.is_multiple_of(2))
                    } else {
                        (k * 10 * S, *v)
                    };
                    let seq = (k as u64) << 8 | code as u64;
                    let late_before = d.t.too_late;
                    d.out.clear();
                    out_f.clear();
                    d.fault(code as i64, active, ts, seq);
                    if d.t.too_late > late_before {
                        seen_late += 1;
                        continue;
                    }
                    full.fault(&m(), code as i64, active, ts, seq, None, &mut out_f);
                    assert_eq!(d.out, out_f, "seed {seed} input {k}/{code} at {ts}");
                    if r.is_multiple_of(11) {
                        let all = d.t.instances();
                        let Some(x) = all.get(r as usize / 11 % all.len().max(1)) else {
                            continue;
                        };
                        let x = (*x).clone();
                        if x.acked_ms.is_some() {
                            continue;
                        }
                        // The operator's clock may lag: an ack behind the horizon.
                        let at = (k * 10 * S - 3 * H)
                            .max(x.last_active_ms + 1)
                            .max(x.resolved_ms.map_or(Ms::MIN, |r| r + 1));
                        acks_behind += usize::from(at < d.t.horizon);
                        d.out.clear();
                        out_f.clear();
                        d.t.ack(x.id, "op", at, &mut d.out);
                        full.ack(x.id, "op", at, &mut out_f);
                        assert_eq!(d.out, out_f, "seed {seed} ack {k} at {at}");
                    }
                }
            }
            assert!(
                seen_late > 0,
                "the generator sends inputs behind the horizon"
            );
            assert!(acks_behind > 0, "and acks behind it");
            assert_eq!(d.t.instances(), full.instances(), "seed {seed}");
            assert!(d.t.retained_inputs() <= 2 * bound(10 * S) + 2 * 100);
        }
    }
}
