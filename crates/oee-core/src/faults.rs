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
    /// Resolved instances older than this (behind the watermark) are forgotten. Default 24 h.
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
#[derive(Debug, Default)]
struct KeyState {
    edges: StepSeries<Edge>,
    acks: Vec<KeyInput>,
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

    /// Folds every input in order (see the type's documentation for why heads suffice).
    fn fold(&self, machine: &MachineId, code: i64, p: &FaultParams) -> Vec<FaultInstance> {
        let mut inst = Vec::new();
        let mut acks = self.acks.iter().peekable();
        for e in self.edges.heads() {
            let e = e.input();
            while let Some(a) = acks.next_if(|a| **a < e) {
                apply(&mut inst, machine, code, a, p);
            }
            apply(&mut inst, machine, code, &e, p);
        }
        for a in acks {
            apply(&mut inst, machine, code, a, p);
        }
        inst
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
#[derive(Debug, Default)]
pub struct FaultTracker {
    params: FaultParams,
    keys: FastMap<(MachineId, i64), KeyState>,
    by_id: FastMap<FaultInstanceId, (MachineId, i64)>,
    by_machine: FastMap<MachineId, Vec<i64>>,
    /// Acks naming an instance id that is not known.
    pub unknown_acks: u64,
}

impl FaultTracker {
    /// A tracker with these parameters.
    pub fn new(params: FaultParams) -> Self {
        Self {
            params,
            ..Default::default()
        }
    }

    /// The parameters.
    pub fn params(&self) -> &FaultParams {
        &self.params
    }

    /// A fault bit of `(machine, code)` changed at `ts`. Returns true when the failure spans
    /// of the machine may have changed.
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
        let kind = if active {
            InputKind::Activate { severity }
        } else {
            InputKind::Deactivate
        };
        self.input(machine, code, KeyInput { ts, seq, kind }, out)
    }

    /// An explicit acknowledgement. Returns the machine whose instance it named, if known.
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

    /// Forgets instances resolved before `horizon` (keeping the last one of each key, which
    /// the dedup window may re-open) and their inputs.
    pub fn prune(&mut self, watermark: Ms) {
        let horizon = watermark.saturating_sub(self.params.retention_ms);
        let by_id = &mut self.by_id;
        for st in self.keys.values_mut() {
            let n = st.instances.len();
            let keep_from = st.instances[..n.saturating_sub(1)]
                .iter()
                .position(|i| i.resolved_ms.is_none_or(|r| r >= horizon))
                .unwrap_or(n.saturating_sub(1));
            if keep_from == 0 {
                continue;
            }
            for i in st.instances.drain(..keep_from) {
                by_id.remove(&i.id);
            }
            let first = st.instances[0].first_active_ms;
            st.edges.drop_before(first);
            st.acks.retain(|x| x.ts >= first);
        }
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
