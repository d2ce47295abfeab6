//! One test per rule of issue 4 not already pinned by a worked example.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::*;
use oee_core::calendar::Calendar;
use oee_core::counters::CounterKind;
use oee_core::faults::{FaultParams, FaultState, FaultTracker, FaultTransition, SeverityRule};
use oee_core::intervals::Category;
use oee_core::kpi::Flags;
use oee_core::windows::{
    OeeInput, OeeParams, Output, RollingParams, Scope, StateValue, WindowKind,
};

fn fault_events(f: &Feed) -> Vec<(FaultTransition, i64, u32)> {
    f.out
        .iter()
        .filter_map(|o| match o {
            Output::Fault(e) => Some((e.transition, e.instance.code, e.instance.occurrence_count)),
            Output::Window(_) => None,
        })
        .collect()
}

#[test]
fn fault_code_signal_opens_and_closes_instances() {
    let mut f = Feed::new(params());
    let m = m1();
    for (i, (min, code)) in [(0, 42), (5, 43), (10, 0)].into_iter().enumerate() {
        f.push(OeeInput::FaultCode {
            machine: m.clone(),
            code,
            ts_ms: at(10, min, 0),
            seq: i as u64,
        });
    }
    use FaultTransition::*;
    assert_eq!(
        fault_events(&f),
        vec![
            (Activated, 42, 1),
            (Resolved, 42, 1),
            (Activated, 43, 1),
            (Resolved, 43, 1)
        ]
    );
}

#[test]
fn ack_is_an_explicit_input_with_who_and_when() {
    let mut f = Feed::new(params());
    let m = m1();
    f.fault(&m, 42, true, at(10, 0, 0));
    let id = match &f.out[0] {
        Output::Fault(e) => e.instance.id,
        Output::Window(_) => unreachable!(),
    };
    f.push(OeeInput::Ack {
        instance: id,
        who: Arc::from("alice"),
        ts_ms: at(10, 1, 0),
    });
    let Output::Fault(e) = f.out.last().unwrap() else {
        panic!()
    };
    assert_eq!(e.transition, FaultTransition::Acknowledged);
    assert_eq!(e.instance.acked_by.as_deref(), Some("alice"));
    assert_eq!(e.instance.state, FaultState::Acknowledged);
    // The id is derived, not random: the same machine, code and time give the same id.
    assert_eq!(
        id,
        oee_core::faults::FaultInstanceId::derive(&m, 42, at(10, 0, 0))
    );
}

#[test]
fn out_of_order_fault_inputs_give_the_same_instances() {
    let inputs = [
        (42, true, at(10, 0, 0)),
        (42, false, at(10, 1, 0)),
        (42, true, at(10, 3, 0)),
        (42, false, at(10, 9, 0)),
    ];
    let mut sorted = FaultTracker::new(FaultParams::default());
    let mut shuffled = FaultTracker::new(FaultParams::default());
    let mut out = Vec::new();
    for (i, (c, a, t)) in inputs.iter().enumerate() {
        sorted.fault(&m1(), *c, *a, *t, i as u64, None, &mut out);
    }
    out.clear();
    for i in [1, 3, 0, 2] {
        let (c, a, t) = inputs[i];
        shuffled.fault(&m1(), c, a, t, i as u64, None, &mut out);
    }
    assert!(out.iter().any(|e| e.transition == FaultTransition::Revised));
    let a: Vec<String> = sorted
        .instances()
        .iter()
        .map(|i| format!("{i:?}"))
        .collect();
    let b: Vec<String> = shuffled
        .instances()
        .iter()
        .map(|i| format!("{i:?}"))
        .collect();
    assert_eq!(a, b);
    assert_eq!(sorted.instances()[0].occurrence_count, 2);
}

#[test]
fn severity_rules_by_code_range_and_pattern() {
    let p = FaultParams {
        severity_rules: vec![
            SeverityRule {
                code: Some(1801),
                severity: Some(900),
                ..Default::default()
            },
            SeverityRule {
                code: Some(1802),
                machine_pattern: Some("press-*".into()),
                severity: Some(950),
                ..Default::default()
            },
            SeverityRule {
                range: Some((1800, 1899)),
                severity: Some(400),
                failure: Some(false),
                ..Default::default()
            },
            SeverityRule {
                code_pattern: Some("18*".into()),
                severity: Some(700),
                ..Default::default()
            },
        ],
        ..FaultParams::default()
    };
    assert_eq!(p.classify("m1", 1801, None), (900, true), "by code");
    assert_eq!(
        p.classify("press-7", 1802, None),
        (950, true),
        "by code and machine"
    );
    assert_eq!(
        p.classify("m1", 1802, None),
        (400, false),
        "first match in list order: the range"
    );
    assert_eq!(p.classify("m1", 18_000, None), (700, true), "by pattern");
    assert_eq!(p.classify("m1", 5, None), (500, true), "default");
    assert_eq!(
        p.classify("m1", 1850, Some(999)).0,
        999,
        "a severity carried by the signal wins"
    );
    // A warning (failure = false) does not form an episode.
    let mut t = FaultTracker::new(p);
    let mut out = Vec::new();
    t.fault(&m1(), 1850, true, 0, 0, None, &mut out);
    assert!(t.episodes(&m1()).is_empty());
}

#[test]
fn inputs_behind_the_revision_horizon_are_counted_and_dropped() {
    let mut f = Feed::new(OeeParams {
        revision_horizon_ms: H,
        ..params()
    });
    let m = m1();
    f.run(&m, at(8, 0, 0));
    f.wm(at(12, 0, 0));
    f.total(&m, at(9, 0, 0), 5);
    assert_eq!(f.engine.stats.too_late, 1);
    // Fault flags and codes too: the instances behind the horizon are what they were at it.
    f.fault(&m, 42, true, at(12, 0, 0));
    f.fault(&m, 42, false, at(12, 30, 0));
    f.wm(at(14, 30, 0));
    let instances = |f: &Feed| -> Vec<String> {
        let all = f.engine.faults().instances();
        all.iter().map(|i| format!("{i:?}")).collect()
    };
    let before = instances(&f);
    f.out.clear();
    f.fault(&m, 42, false, at(12, 10, 0));
    f.push(OeeInput::FaultCode {
        machine: m.clone(),
        code: 43,
        ts_ms: at(13, 29, 59),
        seq: 0,
    });
    assert_eq!(f.engine.stats.too_late, 3);
    assert!(f.out.is_empty());
    assert_eq!(instances(&f), before);
    // At the horizon: taken.
    f.fault(&m, 42, true, at(13, 30, 0));
    assert_eq!(f.engine.stats.too_late, 3);
    let all = f.engine.faults().instances();
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[1].first_active_ms, all[1].state),
        (at(13, 30, 0), FaultState::Active)
    );
}

#[test]
fn a_fault_flag_re_sent_for_days_keeps_a_bounded_log() {
    // A gateway re-sends a fault flag every 10 s: `false` for a day, active for 10 minutes,
    // then `false` again for a day. The engine keeps the inputs of the revision horizon only
    // (without it, 17,280 a day), and the instance.
    let mut f = Feed::new(params());
    let m = m1();
    let mut peak = 0;
    for k in 0..2 * 24 * 360 {
        let t = T0 + k * 10 * S;
        let active = (24 * H..24 * H + 10 * MIN).contains(&(t - T0));
        f.fault(&m, 42, active, t);
        f.wm(t);
        peak = peak.max(f.engine.retained().inputs);
    }
    // 2 h of horizon + the prune period (the 1 h step without rolling windows) at one input
    // per 10 s.
    assert!(peak <= 3 * 360 + 2, "inputs {peak}");
    let all = f.engine.faults().instances();
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].first_active_ms, all[0].duration_ms()),
        (T0 + 24 * H, Some(10 * MIN))
    );
    assert_eq!(f.engine.stats.too_late, 0);
}

#[test]
fn rolling_window_is_re_emitted_every_interval() {
    let p = OeeParams {
        rolling: Some(RollingParams {
            len_ms: H,
            every_ms: 5 * MIN,
        }),
        ..params()
    };
    let mut f = Feed::new(p);
    let m = m1();
    f.run(&m, at(8, 0, 0));
    f.wm(at(9, 30, 0));
    let ends: Vec<i64> = f
        .windows()
        .iter()
        .filter(|w| w.kind == WindowKind::Rolling && w.scope == Scope::Machine(m.clone()))
        .map(|w| (w.end - at(8, 0, 0)) / MIN)
        .collect();
    assert_eq!(ends, (60..=90).step_by(5).collect::<Vec<_>>());
    assert!(
        f.windows()
            .iter()
            .all(|w| w.kind != WindowKind::Rolling || w.end - w.start == H)
    );
}

#[test]
fn current_window_grows_to_the_watermark_and_is_flagged_partial() {
    let mut f = Feed::new(params());
    let m = m1();
    f.run(&m, at(8, 0, 0));
    f.stop(&m, at(9, 10, 0));
    f.wm(at(9, 40, 0));
    let w = f.engine.current_window(&m).unwrap();
    assert_eq!(w.start, at(9, 0, 0));
    assert_eq!(w.sums.at_ms, 40 * MIN);
    assert_eq!(w.sums.run_ms, 10 * MIN);
    assert!(w.kpis.flags.contains(Flags::PARTIAL_WINDOW));
}

#[test]
fn current_window_while_a_stop_before_the_hour_holds_the_horizon_back() {
    // Found by a 30-minute soak: a stop at 09:59:30 (not yet known to be a micro-stop) holds the
    // horizon before 10:00 while the watermark is past it; the current window starts at 10:00.
    let mut f = Feed::new(params());
    let m = m1();
    f.run(&m, at(8, 0, 0));
    f.stop(&m, at(9, 59, 30));
    f.wm(at(10, 0, 30));
    let w = f.engine.current_window(&m).unwrap();
    assert_eq!(w.start, at(10, 0, 0));
    assert_eq!(w.sums.at_ms, 30 * S);
}

#[test]
fn counts_across_a_session_change_are_attributed_and_flagged() {
    let mut f = Feed::new(params());
    let m = m1();
    f.run(&m, at(8, 0, 0));
    for (sec, v, session) in [(0, 100, 1), (10, 110, 1), (20, 150, 2)] {
        f.push(OeeInput::Counter {
            machine: m.clone(),
            counter: CounterKind::Total,
            ts_ms: at(8, 0, sec),
            seq: 0,
            value: v,
            bits: 32,
            session,
        });
    }
    f.wm(at(9, 0, 0));
    let s = f.win(&m, WindowKind::Tumbling, at(8, 0, 0)).sums;
    assert_eq!(s.total, 50);
    assert!(s.sum_flags().contains(Flags::GAP_ATTRIBUTED));
}

#[test]
fn state_codes_map_to_categories() {
    let mut p = params();
    p.state_codes.exact.insert(100_000, Category::Setup);
    p.state_codes
        .ranges
        .push((10_000, 19_999, Category::Running));
    let mut f = Feed::new(p);
    let m = m1();
    f.push(OeeInput::State {
        machine: m.clone(),
        ts_ms: at(8, 0, 0),
        seq: 0,
        value: StateValue::Code(10_000),
    });
    f.push(OeeInput::State {
        machine: m.clone(),
        ts_ms: at(8, 45, 0),
        seq: 0,
        value: StateValue::Code(100_000),
    });
    f.wm(at(9, 0, 0));
    let s = f.win(&m, WindowKind::Tumbling, at(8, 0, 0)).sums;
    assert_eq!((s.run_ms, s.setup_ms, s.ppt_ms), (45 * MIN, 15 * MIN, H));
}

#[test]
fn a_late_state_revises_machine_and_line_windows() {
    let mut f = Feed::new(OeeParams {
        micro_stop_ms: 0,
        ..params()
    });
    let m = m1();
    f.run(&m, at(8, 0, 0));
    f.wm(at(9, 0, 0));
    f.stop(&m, at(8, 30, 0));
    f.run(&m, at(8, 40, 0));
    f.wm(at(9, 0, 0));
    let w = f.win(&m, WindowKind::Tumbling, at(8, 0, 0));
    assert_eq!((w.sums.run_ms, w.revision), (50 * MIN, 1));
    let l = f.scoped(&Scope::Line(m.line_id()), WindowKind::Tumbling, at(8, 0, 0));
    assert_eq!((l.sums.run_ms, l.revision), (50 * MIN, 1));
    assert_eq!(f.engine.stats.revisions, 2);
}

#[test]
fn a_resend_that_changes_nothing_does_not_bump_the_revision() {
    let mut f = Feed::new(params());
    let m = m1();
    f.run(&m, at(8, 0, 0));
    let exact = OeeInput::Counter {
        machine: m.clone(),
        counter: CounterKind::Total,
        ts_ms: at(8, 20, 0),
        seq: 7,
        value: 10,
        bits: 32,
        session: 1,
    };
    f.push(exact.clone());
    f.wm(at(9, 0, 0));
    f.push(exact); // delivered twice
    f.total(&m, at(8, 20, 0), 10); // a birth re-send: same time and value, another seq
    f.wm(at(9, 0, 0));
    assert_eq!(f.engine.stats.duplicates, 1);
    assert_eq!(f.engine.stats.revisions, 0);
}

#[test]
fn hour_windows_follow_local_hours_in_half_hour_zones() {
    let mut p = params();
    p.calendars = HashMap::from([(
        Arc::from("site"),
        Calendar::new("Asia/Kolkata", vec![]).unwrap(),
    )]);
    let mut f = Feed::new(p);
    let m = m1();
    f.run(&m, at(8, 0, 0));
    f.wm(at(11, 0, 0));
    let w = f
        .windows()
        .into_iter()
        .find(|w| w.kind == WindowKind::Tumbling)
        .unwrap();
    assert_eq!((w.start - T0).rem_euclid(H), 30 * MIN);
}

#[test]
fn zero_denominators_are_null() {
    let s = oee_core::kpi::Sums::default();
    let k = s.kpis(Default::default());
    assert_eq!(
        (
            k.availability,
            k.performance,
            k.quality,
            k.quality_count,
            k.oee,
            k.teep,
            k.utilization,
            k.mtbf_ms,
            k.mttr_ms
        ),
        (None, None, None, None, None, None, None, None, None)
    );
}

#[test]
fn planned_stop_states_can_be_a_loss() {
    for (loss, ppt) in [(false, 45 * MIN), (true, H)] {
        let mut f = Feed::new(OeeParams {
            planned_stop_is_loss: loss,
            ..params()
        });
        let m = m1();
        f.run(&m, at(8, 0, 0));
        f.state(&m, at(8, 45, 0), Category::PlannedStop);
        f.wm(at(9, 0, 0));
        let s = f.win(&m, WindowKind::Tumbling, at(8, 0, 0)).sums;
        assert_eq!((s.ppt_ms, s.planned_stop_ms), (ppt, 15 * MIN));
    }
}

#[test]
fn sites_without_a_calendar_can_have_utc_days() {
    let mut f = Feed::new(OeeParams {
        utc_days_without_calendar: true,
        ..params()
    });
    let m = m1();
    f.run(&m, at(8, 0, 0));
    f.wm(at(24, 0, 0));
    let d = f.win(&m, WindowKind::Day, T0);
    assert_eq!(
        (d.sums.at_ms, d.sums.ppt_ms, d.sums.run_ms),
        (24 * H, 16 * H, 16 * H)
    );
    assert_eq!(d.sums.unknown_ms, 8 * H, "before the first state");
}

#[test]
fn a_machine_first_seen_late_in_the_day_emits_no_empty_windows_before_its_hour() {
    // A service started at 14:30 must not emit the day's earlier hours and every rolling
    // window since midnight at once (issue 7: 1.47 M empty rows for 1,000 machines); the day
    // window still covers the whole day, its time before the first input unknown.
    let mut f = Feed::new(OeeParams {
        utc_days_without_calendar: true,
        rolling: Some(RollingParams {
            len_ms: H,
            every_ms: MIN,
        }),
        ..params()
    });
    let m = m1();
    f.run(&m, at(14, 30, 0));
    f.wm(at(24, 0, 0));
    let mine: Vec<&oee_core::windows::WindowResult> = f
        .windows()
        .into_iter()
        .filter(|w| w.scope == Scope::Machine(m.clone()))
        .collect();
    let first = |k: WindowKind| mine.iter().filter(|w| w.kind == k).map(|w| w.start).min();
    assert_eq!(first(WindowKind::Tumbling), Some(at(14, 0, 0)));
    assert_eq!(first(WindowKind::Rolling), Some(at(14, 0, 0)));
    let rolling = mine
        .iter()
        .filter(|w| w.kind == WindowKind::Rolling)
        .count();
    assert_eq!(rolling, 9 * 60 + 1, "one per minute from 15:00 to 24:00");
    let d = f.win(&m, WindowKind::Day, T0);
    assert_eq!(
        (d.sums.at_ms, d.sums.unknown_ms, d.sums.run_ms),
        (24 * H, 14 * H + 30 * MIN, 9 * H + 30 * MIN)
    );
}

#[test]
fn memory_levels_off_and_old_windows_stay_exact() {
    // 30 hours of one machine, a counter every minute, rolling windows every minute and UTC day
    // windows. Slices behind the revision horizon are merged per hour, so what is kept levels
    // off; a failure that closes 4 h after it started (behind the horizon) still revises its
    // hour window and counts in the day window.
    let mut f = Feed::new(OeeParams {
        utc_days_without_calendar: true,
        rolling: Some(RollingParams {
            len_ms: H,
            every_ms: MIN,
        }),
        ..params()
    });
    let m = m1();
    f.run(&m, T0);
    let mut peak = oee_core::windows::Retained::default();
    for minute in 0..30 * 60 {
        let t = T0 + minute * MIN;
        f.total(&m, t, minute as i128);
        if t == at(1, 0, 0) {
            f.fault(&m, 42, true, t);
        }
        if t == at(5, 0, 0) {
            f.fault(&m, 42, false, t);
        }
        f.wm(t);
        let r = f.engine.retained();
        peak.slices = peak.slices.max(r.slices);
        peak.windows = peak.windows.max(r.windows);
        peak.inputs = peak.inputs.max(r.inputs);
    }
    // Minute slices for the 2 h revision horizon plus the 1 h rolling length (+ the prune
    // period), one per hour for the rest of the 28 h kept; without compaction, 1,680.
    assert!(peak.slices <= 3 * 60 + 10 + 28, "slices {peak:?}");
    // Machine and line: rolling windows ending within the horizon, 28 hours, 2 days.
    assert!(
        peak.windows <= 2 * (2 * 60 + 10 + 28 + 2),
        "windows {peak:?}"
    );
    assert!(peak.inputs <= 2 * 60 + 10 + 4, "inputs {peak:?}");

    let hour = f
        .windows()
        .into_iter()
        .filter(|w| {
            w.scope == Scope::Machine(m.clone())
                && w.kind == WindowKind::Tumbling
                && w.start == at(1, 0, 0)
        })
        .max_by_key(|w| w.revision)
        .map(|w| (w.revision, w.sums.closed_failures, w.sums.ttr_ms));
    assert_eq!(hour, Some((1, 1, 4 * H)));
    let d = f.win(&m, WindowKind::Day, T0);
    // The 00:00 sample is the counter's baseline: 1,439 deltas of 1 in the day.
    assert_eq!(
        (d.sums.at_ms, d.sums.run_ms, d.sums.total),
        (24 * H, 24 * H, 24 * 60 - 1)
    );
    assert_eq!((d.sums.closed_failures, d.sums.ttr_ms), (1, 4 * H));
}
