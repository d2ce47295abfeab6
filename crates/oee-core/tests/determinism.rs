//! Example 32: the same inputs in any arrival order within the allowed lateness give the same
//! final window results and fault instances; a replay gives identical output.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use common::*;
use jiff::civil::time;
use oee_core::calendar::{Calendar, ShiftRule};
use oee_core::counters::CounterKind;
use oee_core::faults::FaultParams;
use oee_core::intervals::Category;
use oee_core::kpi::Sums;
use oee_core::types::{IdealCycle, MachineId, Ms};
use oee_core::windows::{
    OeeEngine, OeeInput, OeeParams, Output, RollingParams, Scope, StateValue, WindowKind,
};
use proptest::prelude::*;

const LATENESS: Ms = 10 * MIN;

fn engine_params() -> OeeParams {
    let shift = ShiftRule::daily("a", time(1, 0, 0, 0), time(2, 30, 0, 0))
        .with_break(time(1, 40, 0, 0), time(1, 50, 0, 0));
    OeeParams {
        allowed_lateness_ms: LATENESS,
        rolling: Some(RollingParams {
            len_ms: H,
            every_ms: 5 * MIN,
        }),
        default_ideal_cycle: Some(IdealCycle::from_secs_f64(1.5)),
        calendars: HashMap::from([(
            Arc::from("site"),
            Calendar::new("UTC", vec![shift]).unwrap(),
        )]),
        ..OeeParams::default()
    }
}

#[derive(Clone, Debug)]
enum Ev {
    State(usize, Ms, u8),
    Count(usize, Ms, u8, i128),
    Fault(usize, Ms, i64, bool),
    FaultCode(usize, Ms, i64),
    Ict(usize, Ms, u64),
}

fn machines() -> [MachineId; 2] {
    [m1(), m2()]
}

fn to_input(ev: &Ev, seq: u64) -> OeeInput {
    let ms = machines();
    match *ev {
        Ev::State(m, ts, c) => {
            let cat = [
                Category::Running,
                Category::Running,
                Category::UnplannedStop,
                Category::Setup,
                Category::PlannedStop,
                Category::Unknown,
            ][c as usize % 6];
            OeeInput::State {
                machine: ms[m].clone(),
                ts_ms: ts,
                seq,
                value: StateValue::Category(cat, 0),
            }
        }
        Ev::Count(m, ts, k, v) => OeeInput::Counter {
            machine: ms[m].clone(),
            counter: [CounterKind::Total, CounterKind::Reject][k as usize % 2],
            ts_ms: ts,
            seq,
            value: v,
            bits: 16,
            session: 1,
        },
        Ev::FaultCode(m, ts, code) => OeeInput::FaultCode {
            machine: ms[m].clone(),
            code,
            ts_ms: ts,
            seq,
        },
        Ev::Ict(m, ts, ms_per) => OeeInput::IdealCycle {
            machine: ms[m].clone(),
            ts_ms: ts,
            seq,
            cycle: IdealCycle::from_millis(ms_per),
        },
        Ev::Fault(m, ts, code, active) => OeeInput::Fault {
            machine: ms[m].clone(),
            code,
            active,
            ts_ms: ts,
            seq,
            severity: None,
        },
    }
}

fn events() -> impl Strategy<Value = Vec<(Ev, Ms)>> {
    let ev = prop_oneof![
        (0..2usize, 0..3 * H, 0..6u8).prop_map(|(m, t, c)| Ev::State(m, T0 + t / 1000 * 1000, c)),
        (0..2usize, 0..3 * H, 0..2u8, 0..70_000i128).prop_map(|(m, t, k, v)| Ev::Count(
            m,
            T0 + t,
            k,
            v
        )),
        (0..2usize, 0..3 * H, 1..3i64, any::<bool>()).prop_map(|(m, t, c, a)| Ev::Fault(
            m,
            T0 + t,
            c,
            a
        )),
        (0..2usize, 0..3 * H, 0..4i64).prop_map(|(m, t, c)| Ev::FaultCode(m, T0 + t, c * 10)),
        (0..2usize, 0..3 * H, 500..3000u64).prop_map(|(m, t, c)| Ev::Ict(m, T0 + t, c)),
    ];
    // Runs of one value re-sent at a fixed period (a gateway polling a PLC), which late inputs
    // of another value can land inside: the repeats after such an input bring the old value
    // back, so an engine may not drop them.
    let run = (0..2usize, 0..3 * H, 1..60i64, 2..10usize, 0..4u8, 0..6i64).prop_map(
        |(m, t, period_s, n, kind, v)| {
            (0..n as i64)
                .map(|k| {
                    let ts = T0 + t / 1000 * 1000 + k * period_s * 1000;
                    match kind {
                        0 => Ev::State(m, ts, v as u8),
                        1 => Ev::Ict(m, ts, 500 + v as u64 % 2 * 1000),
                        2 => Ev::FaultCode(m, ts, v % 2 * 10),
                        _ => Ev::Fault(m, ts, 1, v % 2 == 0),
                    }
                })
                .collect::<Vec<_>>()
        },
    );
    let item = prop_oneof![
        3 => ev.prop_map(|e| vec![e]),
        1 => run,
    ];
    prop::collection::vec((item, 0..LATENESS), 1..60).prop_map(|v| {
        let mut flat: Vec<(Ev, Ms)> = v
            .into_iter()
            .flat_map(|(evs, d)| evs.into_iter().map(move |e| (e, d)))
            .collect();
        flat.truncate(120);
        flat
    })
}

fn ts_of(e: &Ev) -> Ms {
    match e {
        Ev::State(_, t, _) | Ev::Count(_, t, _, _) | Ev::Fault(_, t, _, _) => *t,
        Ev::FaultCode(_, t, _) | Ev::Ict(_, t, _) => *t,
    }
}

/// Feeds the inputs in the given order, advancing the automatic watermark after each.
fn run(order: &[(Ev, u64)]) -> (Vec<Output>, OeeEngine) {
    let mut e = OeeEngine::new(engine_params(), FaultParams::default());
    let mut out = Vec::new();
    for (ev, seq) in order {
        e.push(&to_input(ev, *seq), &mut out);
        e.advance_watermark(Ms::MIN, &mut out);
    }
    e.advance_watermark(T0 + 30 * H, &mut out);
    (out, e)
}

fn finals(out: &[Output]) -> BTreeMap<(Scope, WindowKind, Ms), (Ms, Sums)> {
    let mut m = BTreeMap::new();
    for o in out {
        if let Output::Window(w) = o {
            m.insert((w.scope.clone(), w.kind, w.start), (w.end, w.sums));
        }
    }
    m
}

fn instances(e: &OeeEngine) -> Vec<String> {
    e.faults()
        .instances()
        .iter()
        .map(|i| format!("{i:?}"))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn example_32_replay_determinism(evs in events()) {
        let seqd: Vec<(Ev, u64, Ms)> = evs.iter().enumerate().map(|(i, (e, d))| (e.clone(), i as u64, *d)).collect();
        let mut in_order: Vec<(Ev, u64)> = seqd.iter().map(|(e, s, _)| (e.clone(), *s)).collect();
        in_order.sort_by_key(|(e, s)| (ts_of(e), *s));
        let mut shuffled: Vec<(Ev, u64, Ms)> = seqd.clone();
        shuffled.sort_by_key(|(e, s, d)| (ts_of(e) + d, *s));
        let shuffled: Vec<(Ev, u64)> = shuffled.into_iter().map(|(e, s, _)| (e, s)).collect();

        let (out_a, eng_a) = run(&in_order);
        let (out_b, eng_b) = run(&shuffled);
        let (fa, fb) = (finals(&out_a), finals(&out_b));
        prop_assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
        for (k, v) in &fa {
            prop_assert_eq!(Some(v), fb.get(k), "window {:?}", k);
        }
        prop_assert_eq!(instances(&eng_a), instances(&eng_b));

        // Replay of the same order is identical, output for output.
        let (out_c, _) = run(&shuffled);
        prop_assert_eq!(format!("{out_b:?}"), format!("{out_c:?}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Data later than the allowed lateness (but within the revision horizon) revises the
    /// windows it touches: the latest revision of every window equals the in-order result.
    #[test]
    fn late_data_revisions_converge_to_the_in_order_result(evs in events(), late in prop::collection::vec(0..4 * LATENESS, 120)) {
        let seqd: Vec<(Ev, u64, Ms)> = evs.iter().enumerate().map(|(i, (e, _))| (e.clone(), i as u64, late[i])).collect();
        let mut in_order: Vec<(Ev, u64)> = seqd.iter().map(|(e, s, _)| (e.clone(), *s)).collect();
        in_order.sort_by_key(|(e, s)| (ts_of(e), *s));
        let mut late_order = seqd.clone();
        late_order.sort_by_key(|(e, s, d)| (ts_of(e) + d, *s));
        let late_order: Vec<(Ev, u64)> = late_order.into_iter().map(|(e, s, _)| (e, s)).collect();
        let (out_a, eng_a) = run(&in_order);
        let (out_b, eng_b) = run(&late_order);
        let (fa, fb) = (finals(&out_a), finals(&out_b));
        for (k, v) in &fa {
            prop_assert_eq!(Some(v), fb.get(k), "window {:?}", k);
        }
        prop_assert_eq!(fa.len(), fb.len());
        prop_assert_eq!(instances(&eng_a), instances(&eng_b));
    }
}

#[test]
fn windows_wait_for_an_open_stop_to_be_classified() {
    // A stop starting 30 s before the hour: the hour is emitted only when the stop is known to
    // be a real stop (120 s) or has ended, so its classification never depends on timing.
    let mut f = Feed::new(params());
    let m = m1();
    f.run(&m, at(7, 0, 0));
    f.stop(&m, at(7, 59, 30));
    f.wm(at(8, 0, 30));
    assert!(
        f.windows().iter().all(|w| w.start != at(7, 0, 0)),
        "held back"
    );
    f.wm(at(8, 1, 30));
    let w = f.win(&m, WindowKind::Tumbling, at(7, 0, 0));
    assert_eq!((w.sums.unplanned_ms, w.revision), (30 * S, 0));
}

#[test]
fn a_short_stop_across_the_hour_is_a_micro_stop_in_both_hours() {
    let mut f = Feed::new(params());
    let m = m1();
    f.run(&m, at(7, 0, 0));
    f.stop(&m, at(7, 59, 30));
    f.run(&m, at(8, 0, 30));
    f.wm(at(9, 0, 0));
    let a = f.win(&m, WindowKind::Tumbling, at(7, 0, 0));
    let b = f.win(&m, WindowKind::Tumbling, at(8, 0, 0));
    assert_eq!(
        (a.sums.micro_stop_ms, b.sums.micro_stop_ms),
        (30 * S, 30 * S)
    );
    assert_eq!((a.sums.run_ms, b.sums.run_ms), (H, H));
}

#[test]
fn a_late_end_after_the_horizon_reclassifies_a_stop_as_micro() {
    // Regression (found by the late-data proptest): the event closing a stop lay after the
    // last final slice, so the slices holding the stop's start were not recomputed.
    let mut f = Feed::new(params());
    let m = m1();
    f.run(&m, at(7, 0, 0));
    f.stop(&m, at(7, 59, 0));
    f.wm(at(8, 1, 0)); // open for 120 s: a real stop
    assert_eq!(
        f.win(&m, WindowKind::Tumbling, at(7, 0, 0))
            .sums
            .unplanned_ms,
        MIN
    );
    f.run(&m, at(8, 0, 59)); // it lasted 119 s after all
    f.wm(at(8, 1, 0));
    let w = f.win(&m, WindowKind::Tumbling, at(7, 0, 0));
    assert_eq!(
        (w.sums.micro_stop_ms, w.sums.unplanned_ms, w.revision),
        (MIN, 0, 1)
    );
}

#[test]
fn a_late_stop_inside_a_run_of_repeated_states_lasts_until_the_next_repeat() {
    // A gateway re-sends "running" every 10 s. A stop arriving after the hour was emitted, 5 s
    // before one of those repeats, is a 5 s stop: the repeat says running again.
    let mut f = Feed::new(OeeParams {
        micro_stop_ms: 0,
        ..params()
    });
    let m = m1();
    for k in 0..360 {
        f.run(&m, at(7, 0, 0) + k * 10 * S);
    }
    f.wm(at(8, 0, 0));
    assert_eq!(f.win(&m, WindowKind::Tumbling, at(7, 0, 0)).sums.run_ms, H);
    f.stop(&m, at(7, 30, 5));
    f.wm(at(8, 0, 1));
    let w = f.win(&m, WindowKind::Tumbling, at(7, 0, 0));
    assert_eq!(
        (w.sums.run_ms, w.sums.unplanned_ms, w.revision),
        (H - 5 * S, 5 * S, 1)
    );
}

fn wild_ts() -> impl Strategy<Value = Ms> {
    prop_oneof![
        Just(Ms::MIN),
        Just(Ms::MAX),
        Just(0),
        any::<i64>(),
        (0..3 * H).prop_map(|t| T0 + t)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Garbage timestamps and values never panic and never make unbounded work.
    #[test]
    fn wild_inputs_do_not_panic(evs in prop::collection::vec((0..6u8, wild_ts(), any::<i64>(), any::<bool>()), 1..40)) {
        let started = std::time::Instant::now();
        let mut e = OeeEngine::new(engine_params(), FaultParams::default());
        let mut out = Vec::new();
        for (i, (kind, ts, v, b)) in evs.into_iter().enumerate() {
            let input = match kind {
                0 => OeeInput::State { machine: m1(), ts_ms: ts, seq: i as u64, value: StateValue::Code(v) },
                1 => OeeInput::Counter { machine: m1(), counter: CounterKind::Total, ts_ms: ts, seq: 0, value: v as i128, bits: (v as u8) % 70, session: 0 },
                2 => OeeInput::Fault { machine: m2(), code: v % 3, active: b, ts_ms: ts, seq: 0, severity: Some(v as u16) },
                3 => OeeInput::FaultCode { machine: m2(), code: v % 3, ts_ms: ts, seq: 0 },
                4 => OeeInput::IdealCycle { machine: m1(), ts_ms: ts, seq: 0, cycle: IdealCycle { ns: v as u64 } },
                _ => OeeInput::Watermark(ts),
            };
            e.push(&input, &mut out);
            e.advance_watermark(Ms::MIN, &mut out);
            // The live view asks for the growing window after every batch.
            let _ = (e.current_window(&m1()), e.current_window(&m2()), e.retained());
        }
        prop_assert!(started.elapsed().as_secs() < 20, "bounded work");
    }
}
