//! Signals per second through OEE windows and fault tracking, for 1,000 machines.
//!
//! Twenty simulated minutes of a plant: 1,000 machines on 50 lines, each sending its total
//! counter every second, its reject counter every 10 s, a state change every few minutes and a
//! fault (activation and clear) now and then; the watermark advances every simulated second,
//! so hour and rolling windows (1 h every 5 min), line roll-ups and fault events are all
//! produced inside the measured loop. Run with `cargo bench -p oee-core --bench oee`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oee_core::calendar::{Calendar, ShiftRule};
use oee_core::counters::CounterKind;
use oee_core::faults::FaultParams;
use oee_core::types::{IdealCycle, MachineId, Ms};
use oee_core::windows::{OeeEngine, OeeInput, OeeParams, Output, RollingParams, StateValue};

const MACHINES: usize = 1000;
const SECONDS: i64 = 20 * 60;
const T0: Ms = 1_736_121_600_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// The inputs, in arrival order, with `None` marking "advance the watermark".
fn workload() -> Vec<Option<OeeInput>> {
    let ids: Vec<MachineId> = (0..MACHINES)
        .map(|i| MachineId::new("plant", &format!("line{:02}", i / 20), &format!("m{i:04}")))
        .collect();
    let mut rng = Rng(42);
    let mut totals = vec![0i128; MACHINES];
    let mut rejects = vec![0i128; MACHINES];
    let mut running = vec![true; MACHINES];
    let mut fault_on = vec![false; MACHINES];
    let mut v = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        v.push(Some(OeeInput::State {
            machine: id.clone(),
            ts_ms: T0 + i as i64,
            seq: 0,
            value: StateValue::Running(true),
        }));
    }
    for s in 0..SECONDS {
        for (i, id) in ids.iter().enumerate() {
            let ts = T0 + s * 1000 + i as i64 % 1000;
            let r = rng.next();
            if running[i] {
                totals[i] += 1;
            }
            v.push(Some(OeeInput::Counter {
                machine: id.clone(),
                counter: CounterKind::Total,
                ts_ms: ts,
                seq: s as u64,
                value: totals[i] % 65_536,
                bits: 16,
                session: 1,
            }));
            if s.rem_euclid(10) == 0 {
                if r.is_multiple_of(7) {
                    rejects[i] += 1;
                }
                v.push(Some(OeeInput::Counter {
                    machine: id.clone(),
                    counter: CounterKind::Reject,
                    ts_ms: ts,
                    seq: s as u64,
                    value: rejects[i],
                    bits: 32,
                    session: 1,
                }));
            }
            if r.is_multiple_of(240) {
                running[i] = !running[i];
                v.push(Some(OeeInput::State {
                    machine: id.clone(),
                    ts_ms: ts,
                    seq: s as u64,
                    value: StateValue::Running(running[i]),
                }));
            }
            if r % 900 == 1 {
                fault_on[i] = !fault_on[i];
                v.push(Some(OeeInput::Fault {
                    machine: id.clone(),
                    code: 100 + (r % 5) as i64,
                    active: fault_on[i],
                    ts_ms: ts,
                    seq: s as u64,
                    severity: None,
                }));
            }
        }
        v.push(None);
    }
    v
}

fn params() -> OeeParams {
    OeeParams {
        default_ideal_cycle: Some(IdealCycle::from_millis(800)),
        ..OeeParams::default()
    }
}

/// The config defaults instead: rolling window re-emitted every 60 s, and a site calendar
/// (two shifts with breaks, Europe/Berlin) so shift and day windows are cut too.
fn params_calendar() -> OeeParams {
    let t = |h, m| jiff::civil::time(h, m, 0, 0);
    let shifts = vec![
        ShiftRule::daily("early", t(6, 0), t(14, 0)).with_break(t(10, 0), t(10, 30)),
        ShiftRule::daily("late", t(14, 0), t(22, 0)).with_break(t(18, 0), t(18, 30)),
    ];
    let cal = Calendar::new("Europe/Berlin", shifts).expect("known zone");
    OeeParams {
        rolling: Some(RollingParams {
            len_ms: 3_600_000,
            every_ms: 60_000,
        }),
        calendars: HashMap::from([(Arc::from("plant"), cal)]),
        ..params()
    }
}

fn run(inputs: &[Option<OeeInput>], p: &OeeParams) -> usize {
    let mut e = OeeEngine::new(p.clone(), FaultParams::default());
    let mut out: Vec<Output> = Vec::with_capacity(1 << 16);
    let mut emitted = 0;
    for i in inputs {
        match i {
            Some(i) => e.push(i, &mut out),
            None => {
                e.advance_watermark(Ms::MIN, &mut out);
                emitted += out.len();
                out.clear();
            }
        }
    }
    emitted
}

fn bench(c: &mut Criterion) {
    let inputs = workload();
    let signals = inputs.iter().filter(|i| i.is_some()).count() as u64;
    let mut g = c.benchmark_group("oee");
    g.throughput(Throughput::Elements(signals));
    g.sample_size(10);
    let (p, pc) = (params(), params_calendar());
    g.bench_function("1000_machines_20min", |b| {
        b.iter(|| black_box(run(black_box(&inputs), &p)))
    });
    g.bench_function("1000_machines_20min_calendar_rolling_60s", |b| {
        b.iter(|| black_box(run(black_box(&inputs), &pc)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
