//! Helpers for feeding the OEE engine in tests.
#![allow(dead_code)]

use oee_core::counters::CounterKind;
use oee_core::faults::FaultParams;
use oee_core::intervals::Category;
use oee_core::types::{IdealCycle, MachineId, Ms};
use oee_core::windows::{
    OeeEngine, OeeInput, OeeParams, Output, Scope, StateValue, WindowKind, WindowResult,
};

pub const S: Ms = 1000;
pub const MIN: Ms = 60 * S;
pub const H: Ms = 60 * MIN;
/// 2025-01-06T00:00:00Z (a Monday).
pub const T0: Ms = 1_736_121_600_000;

pub fn at(h: i64, m: i64, s: i64) -> Ms {
    T0 + h * H + m * MIN + s * S
}

pub fn m1() -> MachineId {
    MachineId::new("site", "line", "m1")
}

pub fn m2() -> MachineId {
    MachineId::new("site", "line", "m2")
}

/// Parameters for tests: no rolling window, no lateness.
pub fn params() -> OeeParams {
    OeeParams {
        rolling: None,
        allowed_lateness_ms: 0,
        ..OeeParams::default()
    }
}

pub struct Feed {
    pub engine: OeeEngine,
    pub out: Vec<Output>,
    seq: u64,
}

impl Feed {
    pub fn new(p: OeeParams) -> Self {
        Self::with_faults(p, FaultParams::default())
    }

    pub fn with_faults(p: OeeParams, f: FaultParams) -> Self {
        Self {
            engine: OeeEngine::new(p, f),
            out: Vec::new(),
            seq: 0,
        }
    }

    pub fn push(&mut self, input: OeeInput) {
        self.engine.push(&input, &mut self.out);
    }

    fn seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn state(&mut self, m: &MachineId, ts: Ms, c: Category) {
        let seq = self.seq();
        self.push(OeeInput::State {
            machine: m.clone(),
            ts_ms: ts,
            seq,
            value: StateValue::Category(c, 0),
        });
    }

    pub fn run(&mut self, m: &MachineId, ts: Ms) {
        self.state(m, ts, Category::Running);
    }

    pub fn stop(&mut self, m: &MachineId, ts: Ms) {
        self.state(m, ts, Category::UnplannedStop);
    }

    pub fn count(&mut self, m: &MachineId, k: CounterKind, ts: Ms, v: i128) {
        let seq = self.seq();
        self.push(OeeInput::Counter {
            machine: m.clone(),
            counter: k,
            ts_ms: ts,
            seq,
            value: v,
            bits: 32,
            session: 1,
        });
    }

    pub fn total(&mut self, m: &MachineId, ts: Ms, v: i128) {
        self.count(m, CounterKind::Total, ts, v);
    }

    pub fn reject(&mut self, m: &MachineId, ts: Ms, v: i128) {
        self.count(m, CounterKind::Reject, ts, v);
    }

    pub fn ict(&mut self, m: &MachineId, ts: Ms, secs: f64) {
        let seq = self.seq();
        self.push(OeeInput::IdealCycle {
            machine: m.clone(),
            ts_ms: ts,
            seq,
            cycle: IdealCycle::from_secs_f64(secs),
        });
    }

    pub fn fault(&mut self, m: &MachineId, code: i64, active: bool, ts: Ms) {
        let seq = self.seq();
        self.push(OeeInput::Fault {
            machine: m.clone(),
            code,
            active,
            ts_ms: ts,
            seq,
            severity: None,
        });
    }

    pub fn wm(&mut self, ts: Ms) {
        self.engine.advance_watermark(ts, &mut self.out);
    }

    pub fn windows(&self) -> Vec<&WindowResult> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Window(w) => Some(w),
                Output::Fault(_) => None,
            })
            .collect()
    }

    /// The latest revision of a machine window.
    pub fn win(&self, m: &MachineId, kind: WindowKind, start: Ms) -> &WindowResult {
        self.scoped(&Scope::Machine(m.clone()), kind, start)
    }

    pub fn scoped(&self, scope: &Scope, kind: WindowKind, start: Ms) -> &WindowResult {
        self.windows()
            .into_iter()
            .filter(|w| &w.scope == scope && w.kind == kind && w.start == start)
            .max_by_key(|w| w.revision)
            .unwrap_or_else(|| panic!("no {kind:?} window at {start} for {scope:?}"))
    }
}

#[track_caller]
pub fn approx(got: Option<f64>, want: f64) {
    let g = got.unwrap_or_else(|| panic!("expected {want}, got NULL"));
    assert!((g - want).abs() < 5e-7, "expected {want:.6}, got {g:.6}");
}
