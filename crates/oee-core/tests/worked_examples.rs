//! research/oee.md §7(b): every worked example that applies, asserting the stated numbers.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::*;
use jiff::civil::{date, time};
use oee_core::calendar::{Calendar, ShiftRule};
use oee_core::counters::CounterKind;
use oee_core::faults::{FaultParams, FaultState, FaultTracker, merge_episodes};
use oee_core::intervals::{Category, MinorStops, UnknownPolicy};
use oee_core::kpi::{Flags, Sums, line_constraint_kpis};
use oee_core::types::{IdealCycle, MachineId};
use oee_core::windows::{OeeInput, OeeParams, RollingParams, Scope, WindowKind};

fn with_ict(secs: f64) -> OeeParams {
    OeeParams {
        default_ideal_cycle: Some(IdealCycle::from_secs_f64(secs)),
        ..params()
    }
}

fn with_calendar(mut p: OeeParams, cal: Calendar) -> OeeParams {
    p.calendars = HashMap::from([(Arc::from("site"), cal)]);
    p
}

#[test]
fn example_01_vorne_canonical() {
    let shift = ShiftRule::daily("early", time(6, 0, 0, 0), time(14, 0, 0, 0))
        .with_break(time(9, 0, 0, 0), time(9, 30, 0, 0))
        .with_break(time(12, 0, 0, 0), time(12, 30, 0, 0));
    let cal = Calendar::new("UTC", vec![shift]).unwrap();
    let mut f = Feed::new(with_calendar(with_ict(1.0), cal));
    let m = m1();
    f.stop(&m, at(0, 0, 0));
    f.run(&m, at(6, 0, 0));
    f.stop(&m, at(7, 0, 0)); // 47 min unplanned
    f.run(&m, at(7, 47, 0));
    f.stop(&m, at(9, 0, 0)); // break
    f.run(&m, at(9, 30, 0));
    f.stop(&m, at(12, 0, 0)); // break
    f.run(&m, at(12, 30, 0));
    f.stop(&m, at(14, 0, 0));
    f.total(&m, at(5, 0, 0), 0);
    f.reject(&m, at(5, 0, 0), 0);
    f.total(&m, at(10, 0, 0), 9000);
    f.total(&m, at(13, 59, 0), 19_271);
    f.reject(&m, at(13, 59, 0), 423);
    f.wm(at(24, 0, 0));
    let w = f.win(&m, WindowKind::Shift, at(6, 0, 0));
    assert_eq!(w.label.as_deref(), Some("early"));
    assert_eq!(w.sums.ppt_ms, 25_200 * S);
    assert_eq!(w.sums.run_ms, 22_380 * S);
    assert_eq!(w.kpis.good, 18_848);
    approx(w.kpis.availability, 0.888095);
    approx(w.kpis.performance, 0.861081);
    approx(w.kpis.quality, 0.978050);
    approx(w.kpis.oee, 0.747937);
    let d = f.win(&m, WindowKind::Day, at(0, 0, 0));
    assert_eq!(d.sums.at_ms, 86_400 * S);
    approx(d.kpis.teep, 0.218148);
    approx(d.kpis.oee, 0.747937);
}

#[test]
fn example_02_performance_above_one_is_kept_and_flagged() {
    let mut f = Feed::new(with_ict(2.0));
    let m = m1();
    f.run(&m, at(7, 0, 0));
    f.total(&m, at(7, 30, 0), 0);
    f.total(&m, at(8, 30, 0), 2000);
    f.wm(at(9, 0, 0));
    let w = f.win(&m, WindowKind::Tumbling, at(8, 0, 0));
    approx(w.kpis.availability, 1.0);
    approx(w.kpis.performance, 1.111111);
    approx(w.kpis.quality, 1.0);
    approx(w.kpis.oee, 1.111111);
    assert!(w.kpis.flags.contains(Flags::PERFORMANCE_GT_1));
}

#[test]
fn example_03_zero_run_time() {
    let mut f = Feed::new(with_ict(2.0));
    let m = m1();
    f.stop(&m, at(7, 0, 0));
    f.wm(at(9, 0, 0));
    let w = f.win(&m, WindowKind::Tumbling, at(8, 0, 0));
    assert_eq!(w.sums.ppt_ms, 3600 * S);
    approx(w.kpis.availability, 0.0);
    assert_eq!(w.kpis.performance, None);
    assert_eq!(w.kpis.quality, None);
    approx(w.kpis.oee, 0.0);
}

#[test]
fn example_04_counts_without_run_time() {
    let mut f = Feed::new(with_ict(2.0));
    let m = m1();
    f.stop(&m, at(7, 0, 0));
    f.total(&m, at(7, 30, 0), 0);
    f.total(&m, at(8, 30, 0), 10);
    f.wm(at(9, 0, 0));
    let w = f.win(&m, WindowKind::Tumbling, at(8, 0, 0));
    approx(w.kpis.availability, 0.0);
    assert_eq!(w.kpis.performance, None);
    approx(w.kpis.quality, 1.0);
    approx(w.kpis.oee, 0.005556);
    assert!(w.kpis.flags.contains(Flags::COUNTS_WITHOUT_RUNTIME));
}

fn afternoon_calendar() -> Calendar {
    Calendar::new(
        "UTC",
        vec![ShiftRule::daily(
            "late",
            time(14, 0, 0, 0),
            time(22, 0, 0, 0),
        )],
    )
    .unwrap()
}

#[test]
fn example_05_nothing_planned_gives_null_not_zero() {
    let mut f = Feed::new(with_calendar(with_ict(2.0), afternoon_calendar()));
    let m = m1();
    f.stop(&m, at(7, 0, 0));
    f.wm(at(9, 0, 0));
    let w = f.win(&m, WindowKind::Tumbling, at(8, 0, 0));
    assert_eq!(w.sums.ppt_ms, 0);
    assert_eq!(w.sums.not_scheduled_ms, 3600 * S);
    let k = &w.kpis;
    assert_eq!(
        (k.availability, k.performance, k.quality, k.oee),
        (None, None, None, None)
    );
    assert_eq!((k.mtbf_ms, k.mttr_ms), (None, None));
}

#[test]
fn example_06_running_overrides_the_plan() {
    let mut f = Feed::new(with_calendar(with_ict(2.0), afternoon_calendar()));
    let m = m1();
    f.stop(&m, at(7, 0, 0));
    f.run(&m, at(8, 0, 0));
    f.stop(&m, at(8, 30, 0));
    f.total(&m, at(8, 0, 0), 0);
    f.total(&m, at(8, 29, 59), 900);
    f.wm(at(9, 0, 0));
    let w = f.win(&m, WindowKind::Tumbling, at(8, 0, 0));
    assert_eq!(w.sums.ppt_ms, 1800 * S);
    assert_eq!(w.sums.run_ms, 1800 * S);
    approx(w.kpis.availability, 1.0);
    approx(w.kpis.performance, 1.0);
    approx(w.kpis.quality, 1.0);
    approx(w.kpis.oee, 1.0);
}

#[test]
fn example_07_clipping_and_carry_in() {
    let mut f = Feed::new(params());
    let m = m1();
    f.run(&m, at(7, 50, 0));
    f.stop(&m, at(8, 20, 0));
    f.run(&m, at(8, 35, 0));
    f.wm(at(9, 0, 0));
    let w = f.win(&m, WindowKind::Tumbling, at(8, 0, 0));
    assert_eq!(w.sums.run_ms, 2700 * S);
    assert_eq!(w.sums.ppt_ms - w.sums.run_ms, 900 * S);
    approx(w.kpis.availability, 0.75);
}

fn zoom(micro_s: i64) -> (Sums, Sums, Sums) {
    let p = OeeParams {
        micro_stop_ms: micro_s * S,
        rolling: Some(RollingParams {
            len_ms: 2 * H,
            every_ms: H,
        }),
        ..with_ict(1.0)
    };
    let mut f = Feed::new(p);
    let m = m1();
    f.run(&m, at(8, 0, 0));
    f.stop(&m, at(8, 59, 30));
    f.run(&m, at(9, 0, 30));
    f.total(&m, at(8, 0, 0), 0);
    f.total(&m, at(8, 30, 0), 1500);
    f.total(&m, at(9, 30, 0), 3000);
    f.wm(at(10, 0, 0));
    let h8 = f.win(&m, WindowKind::Tumbling, at(8, 0, 0)).sums;
    let h9 = f.win(&m, WindowKind::Tumbling, at(9, 0, 0)).sums;
    let two = f.win(&m, WindowKind::Rolling, at(8, 0, 0)).sums;
    (h8, h9, two)
}

#[test]
fn example_08_zoom_invariance() {
    let (h8, h9, two) = zoom(45);
    let mut sum = h8;
    sum += &h9;
    assert_eq!(sum, two, "two hours = sum of the hours, field by field");
    assert_eq!(sum.kpis(Default::default()), two.kpis(Default::default()));
    // A 60 s stop across the hour with a 45 s threshold is a real stop, 30 s in each hour.
    assert_eq!((h8.unplanned_ms, h9.unplanned_ms), (30 * S, 30 * S));
    assert_eq!(h8.micro_stop_ms + h9.micro_stop_ms, 0);
    // With 120 s it is a micro-stop in both hours, counted as run time.
    let (h8, h9, two) = zoom(120);
    assert_eq!((h8.micro_stop_ms, h9.micro_stop_ms), (30 * S, 30 * S));
    assert_eq!((h8.run_ms, h9.run_ms), (3600 * S, 3600 * S));
    let mut sum = h8;
    sum += &h9;
    assert_eq!(sum, two);
}

fn micro_hour(micro_ms: i64) -> oee_core::kpi::Kpis {
    let mut f = Feed::new(OeeParams {
        micro_stop_ms: micro_ms,
        ..with_ict(2.0)
    });
    let m = m1();
    f.run(&m, at(8, 0, 0));
    f.stop(&m, at(8, 10, 0));
    f.run(&m, at(8, 11, 30)); // 90 s
    f.stop(&m, at(8, 30, 0));
    f.run(&m, at(8, 35, 0)); // 300 s
    f.total(&m, at(8, 0, 0), 0);
    f.total(&m, at(8, 59, 0), 1600);
    f.wm(at(9, 0, 0));
    f.win(&m, WindowKind::Tumbling, at(8, 0, 0)).kpis
}

#[test]
fn example_09_micro_stops() {
    let k = micro_hour(120_000);
    approx(k.availability, 0.916667);
    approx(k.performance, 0.969697);
    approx(k.oee, 0.888889);
    let k = micro_hour(0);
    approx(k.availability, 0.891667);
    approx(k.performance, 0.996885);
    approx(k.oee, 0.888889);
}

fn iso_tpm(mode: MinorStops) -> oee_core::kpi::Kpis {
    let p = OeeParams {
        tumbling_ms: 8 * H,
        minor_stops: mode,
        ..with_ict(1.0)
    };
    let mut f = Feed::new(p);
    let m = m1();
    f.run(&m, at(0, 0, 0));
    f.stop(&m, at(1, 0, 0));
    f.run(&m, at(1, 40, 0)); // breakdown 2400 s
    for i in 0..20 {
        // 20 minor stops of 60 s = 1200 s
        f.stop(&m, at(2 + i / 4, (i % 4) * 15, 0));
        f.run(&m, at(2 + i / 4, (i % 4) * 15 + 1, 0));
    }
    f.total(&m, at(0, 0, 0), 0);
    f.total(&m, at(7, 0, 0), 21_600);
    f.wm(at(8, 0, 0));
    f.win(&m, WindowKind::Tumbling, at(0, 0, 0)).kpis
}

#[test]
fn example_10_iso_vs_tpm_split() {
    let tpm = iso_tpm(MinorStops::Performance);
    approx(tpm.availability, 0.916667);
    approx(tpm.performance, 0.818182);
    approx(tpm.oee, 0.75);
    let iso = iso_tpm(MinorStops::Availability);
    approx(iso.availability, 0.875);
    approx(iso.performance, 0.857143);
    approx(iso.oee, 0.75);
}

fn sums(ppt_s: i64, rt_s: i64, ict_s: i64, total: i64, good: i64) -> Sums {
    let ns = ict_s as i128 * 1_000_000_000;
    Sums {
        at_ms: ppt_s * S,
        ppt_ms: ppt_s * S,
        run_ms: rt_s * S,
        total,
        reject: total - good,
        total_samples: 1,
        ideal_ns: ns * total as i128,
        ideal_reject_ns: ns * (total - good) as i128,
        ..Sums::default()
    }
}

#[test]
fn example_11_line_roll_up_is_not_an_average() {
    let a = sums(28_800, 25_200, 1, 24_000, 23_760);
    let b = sums(14_400, 7200, 2, 3000, 2700);
    approx(a.kpis(Default::default()).oee, 0.825);
    approx(b.kpis(Default::default()).oee, 0.375);
    let mut line = a;
    line += &b;
    let k = line.kpis(Default::default());
    approx(k.availability, 0.75);
    approx(k.performance, 0.925926);
    approx(k.quality, 0.972);
    approx(k.oee, 0.675);
    approx(k.quality_count, 0.98);
    let apq = k.availability.unwrap() * k.performance.unwrap() * k.quality_count.unwrap();
    approx(Some(apq), 0.680556);
}

#[test]
fn example_11_line_roll_up_through_the_engine() {
    let mut p = params();
    p.ideal_cycles.insert(m1(), IdealCycle::from_secs_f64(1.0));
    p.ideal_cycles.insert(m2(), IdealCycle::from_secs_f64(2.0));
    let mut f = Feed::new(p);
    let (a, b) = (m1(), m2());
    f.run(&a, at(8, 0, 0));
    f.stop(&a, at(8, 45, 0)); // RT 2700
    f.run(&b, at(8, 30, 0)); // no data before: PPT 1800
    f.stop(&b, at(8, 45, 0)); // RT 900
    for (m, total, rej) in [(&a, 2400, 24), (&b, 800, 80)] {
        f.total(m, at(8, 0, 0), 0);
        f.reject(m, at(8, 0, 0), 0);
        f.total(m, at(8, 44, 0), total);
        f.reject(m, at(8, 44, 0), rej);
    }
    f.wm(at(9, 0, 0));
    let l = f.scoped(&Scope::Line(a.line_id()), WindowKind::Tumbling, at(8, 0, 0));
    assert_eq!(l.sums.ppt_ms, 5400 * S);
    assert_eq!(l.sums.run_ms, 3600 * S);
    // FPT = 2376 × 1 + 720 × 2 = 3816 s over PPT 5400 s.
    approx(l.kpis.oee, 3816.0 / 5400.0);
    approx(l.kpis.availability, 3600.0 / 5400.0);
    let mean = (f
        .win(&a, WindowKind::Tumbling, at(8, 0, 0))
        .kpis
        .oee
        .unwrap()
        + f.win(&b, WindowKind::Tumbling, at(8, 0, 0))
            .kpis
            .oee
            .unwrap())
        / 2.0;
    assert!(
        (mean - l.kpis.oee.unwrap()).abs() > 1e-3,
        "the line is not the mean of machines"
    );
}

#[test]
fn example_12_line_constraint_mode() {
    let bottleneck = sums(3600, 3300, 3, 0, 0);
    let output = sums(3600, 3600, 1, 1000, 950).kpis(Default::default());
    let k = line_constraint_kpis(&bottleneck, 3_000_000_000, &output);
    approx(k.availability, 0.916667);
    approx(k.performance, 0.909091);
    approx(k.quality, 0.95);
    approx(k.oee, 0.791667);
}

#[test]
fn example_13_mixed_products() {
    let mut f = Feed::new(params());
    let m = m1();
    f.run(&m, at(8, 0, 0));
    f.ict(&m, at(7, 0, 0), 1.0); // product X
    f.ict(&m, at(8, 30, 0), 4.0); // product Y
    f.total(&m, at(8, 0, 0), 0);
    f.reject(&m, at(8, 0, 0), 0);
    f.total(&m, at(8, 29, 59), 1000);
    f.reject(&m, at(8, 29, 59), 100);
    f.total(&m, at(8, 59, 59), 1500);
    f.reject(&m, at(8, 59, 59), 100);
    f.wm(at(9, 0, 0));
    let k = f.win(&m, WindowKind::Tumbling, at(8, 0, 0)).kpis;
    assert_eq!(k.ideal_ns, 3000 * 1_000_000_000);
    assert_eq!(k.fpt_ns, 2900 * 1_000_000_000);
    approx(k.availability, 1.0);
    approx(k.performance, 0.833333);
    approx(k.quality, 0.966667);
    approx(k.quality_count, 0.933333);
    approx(k.oee, 0.805556);
    let apq = k.availability.unwrap() * k.performance.unwrap() * k.quality.unwrap();
    approx(Some(apq), 0.805556);
}

fn counter_hour(samples: &[(i64, i128, u8)]) -> Sums {
    let mut f = Feed::new(params());
    let m = m1();
    f.run(&m, at(8, 0, 0));
    for (i, (sec, v, bits)) in samples.iter().enumerate() {
        f.push(OeeInput::Counter {
            machine: m.clone(),
            counter: CounterKind::Total,
            ts_ms: at(8, 0, *sec),
            seq: i as u64,
            value: *v,
            bits: *bits,
            session: 1,
        });
    }
    f.wm(at(9, 0, 0));
    f.win(&m, WindowKind::Tumbling, at(8, 0, 0)).sums
}

#[test]
fn example_14_uint16_rollover() {
    let s = counter_hour(&[(1, 65_530, 16), (2, 4, 16)]);
    assert_eq!(s.total, 10);
    assert!(s.sum_flags().contains(Flags::COUNTER_ROLLOVER));
}

#[test]
fn example_15_uint32_rollover() {
    let s = counter_hour(&[(1, 4_294_967_286, 32), (2, 5, 32)]);
    assert_eq!(s.total, 15);
}

#[test]
fn example_16_reset() {
    let s = counter_hour(&[(1, 1000, 32), (2, 1500, 32), (3, 20, 32), (4, 50, 32)]);
    assert_eq!(s.total, 550);
    assert!(s.sum_flags().contains(Flags::COUNTER_RESET));
}

#[test]
fn example_17_birth_resend_adds_nothing() {
    let mut f = Feed::new(params());
    let m = m1();
    f.run(&m, at(8, 0, 0));
    f.total(&m, at(8, 0, 1), 1000);
    f.total(&m, at(8, 0, 2), 1500);
    f.total(&m, at(8, 0, 2), 1500); // DBIRTH re-send: same ts, same value, another seq
    f.total(&m, at(8, 0, 3), 1510);
    f.wm(at(9, 0, 0));
    assert_eq!(f.win(&m, WindowKind::Tumbling, at(8, 0, 0)).sums.total, 510);
}

#[test]
fn example_18_late_sample_reattribution() {
    let p = OeeParams {
        tumbling_ms: 20 * S,
        micro_stop_ms: 0,
        ..params()
    };
    let mut f = Feed::new(p);
    let m = m1();
    f.run(&m, T0);
    f.total(&m, T0, 100);
    f.total(&m, T0 + 30 * S, 130);
    f.wm(T0 + 40 * S);
    assert_eq!(f.win(&m, WindowKind::Tumbling, T0).sums.total, 0);
    assert_eq!(f.win(&m, WindowKind::Tumbling, T0 + 20 * S).sums.total, 30);
    f.total(&m, T0 + 15 * S, 115);
    f.wm(T0 + 40 * S);
    let w1 = f.win(&m, WindowKind::Tumbling, T0);
    let w2 = f.win(&m, WindowKind::Tumbling, T0 + 20 * S);
    assert_eq!((w1.sums.total, w1.revision), (15, 1));
    assert_eq!((w2.sums.total, w2.revision), (15, 1));
}

#[test]
fn example_19_implausible_jump_quarantined() {
    let mut f = Feed::new(with_ict(2.0));
    let m = m1();
    f.run(&m, at(8, 0, 0));
    f.total(&m, at(8, 0, 0), 100);
    f.total(&m, at(8, 0, 10), 5100);
    f.wm(at(9, 0, 0));
    let s = f.win(&m, WindowKind::Tumbling, at(8, 0, 0)).sums;
    assert_eq!(s.total, 0);
    assert_eq!(s.counter_quarantined, 1);
    assert!(s.sum_flags().contains(Flags::COUNTER_QUARANTINED));
}

#[test]
fn example_20_reject_above_total() {
    let mut f = Feed::new(with_ict(1.0));
    let m = m1();
    f.run(&m, at(8, 0, 0));
    f.total(&m, at(8, 0, 0), 0);
    f.reject(&m, at(8, 0, 0), 0);
    f.total(&m, at(8, 30, 0), 10);
    f.reject(&m, at(8, 30, 0), 12);
    f.wm(at(9, 0, 0));
    let k = f.win(&m, WindowKind::Tumbling, at(8, 0, 0)).kpis;
    assert_eq!(k.good, 0);
    approx(k.quality, 0.0);
    approx(k.quality_count, 0.0);
    assert!(k.flags.contains(Flags::REJECT_GT_TOTAL));
}

#[test]
fn example_21_dst_days_and_night_shifts_through_the_engine() {
    let night = ShiftRule::daily("night", time(22, 0, 0, 0), time(6, 0, 0, 0));
    let cal = Calendar::new("Europe/Berlin", vec![night]).unwrap();
    for (day, at_s, night_s) in [
        ((2025, 3, 30), 82_800, 25_200),
        ((2025, 10, 26), 90_000, 32_400),
    ] {
        let d = date(day.0, day.1, day.2);
        let day_start = cal.day_start(d);
        let night_start = cal.instant(d.yesterday().unwrap(), time(22, 0, 0, 0));
        let mut f = Feed::new(with_calendar(params(), cal.clone()));
        let m = m1();
        f.run(&m, day_start - 3 * H);
        f.wm(day_start + 26 * H);
        let w = f.win(&m, WindowKind::Day, day_start);
        assert_eq!((w.end - w.start) / S, at_s);
        assert_eq!(w.sums.at_ms / S, at_s);
        let n = f.win(&m, WindowKind::Shift, night_start);
        assert_eq!(n.sums.at_ms / S, night_s);
        assert_eq!(n.sums.ppt_ms / S, night_s);
        // Every hour window of the day is a real hour: 23 or 25 of them.
        let hours = f
            .windows()
            .iter()
            .filter(|w| {
                w.kind == WindowKind::Tumbling
                    && w.scope == Scope::Machine(m.clone())
                    && w.start >= day_start
                    && w.end <= day_start + at_s * S
            })
            .count();
        assert_eq!(hours as i64, at_s / 3600);
    }
}

fn shift_calendar() -> Calendar {
    Calendar::new(
        "UTC",
        vec![ShiftRule::daily("day", time(8, 0, 0, 0), time(16, 0, 0, 0))],
    )
    .unwrap()
}

#[test]
fn example_22_mtbf_and_mttr() {
    let mut f = Feed::new(with_calendar(params(), shift_calendar()));
    let m = m1();
    f.run(&m, at(8, 0, 0));
    for (s, e) in [
        (at(10, 0, 0), at(10, 12, 0)),
        (at(12, 0, 0), at(12, 30, 0)),
        (at(14, 0, 0), at(14, 6, 0)),
    ] {
        f.fault(&m, 42, true, s);
        f.stop(&m, s);
        f.fault(&m, 42, false, e);
        f.run(&m, e);
    }
    f.wm(at(16, 0, 0));
    let w = f.win(&m, WindowKind::Shift, at(8, 0, 0));
    assert_eq!(w.sums.ppt_ms, 28_800 * S);
    assert_eq!(w.sums.run_ms, 25_920 * S);
    assert_eq!(w.sums.failures, 3);
    approx(w.kpis.mttr_ms, 960_000.0);
    approx(w.kpis.mtbf_ms, 8_640_000.0);
    let (mtbf, mttr) = (w.kpis.mtbf_ms.unwrap(), w.kpis.mttr_ms.unwrap());
    approx(Some(mtbf / (mtbf + mttr)), 0.9);
}

#[test]
fn example_23_no_failures() {
    let mut f = Feed::new(with_calendar(params(), shift_calendar()));
    let m = m1();
    f.run(&m, at(8, 0, 0));
    f.wm(at(16, 0, 0));
    let w = f.win(&m, WindowKind::Shift, at(8, 0, 0));
    assert_eq!(w.sums.failures, 0);
    assert_eq!(w.kpis.mtbf_ms, None);
    assert_eq!(w.kpis.mttr_ms, None);
    assert_eq!(w.kpis.opt_ms, 28_800 * S);
}

#[test]
fn example_24_open_failure_at_window_end() {
    let mut f = Feed::new(with_calendar(params(), shift_calendar()));
    let m = m1();
    f.run(&m, at(8, 0, 0));
    f.fault(&m, 42, true, at(15, 50, 0));
    f.stop(&m, at(15, 50, 0));
    f.wm(at(16, 5, 0));
    let w = f.win(&m, WindowKind::Shift, at(8, 0, 0));
    assert_eq!(
        (w.sums.failures, w.sums.open_failures, w.revision),
        (1, 1, 0)
    );
    assert!(w.kpis.mtbf_ms.is_some());
    assert_eq!(w.kpis.mttr_ms, None);
    f.fault(&m, 42, false, at(16, 20, 0));
    f.run(&m, at(16, 20, 0));
    f.wm(at(16, 30, 0));
    let w = f.win(&m, WindowKind::Shift, at(8, 0, 0));
    assert_eq!(
        (w.sums.failures, w.sums.open_failures, w.revision),
        (1, 0, 1)
    );
    approx(w.kpis.mttr_ms, 1_800_000.0);
}

fn tracker_run(events: &[(i64, bool, i64)]) -> FaultTracker {
    let mut t = FaultTracker::new(FaultParams::default());
    let mut out = Vec::new();
    for (i, (code, active, ts)) in events.iter().enumerate() {
        t.fault(&m1(), *code, *active, *ts, i as u64, None, &mut out);
    }
    t
}

#[test]
fn example_25_dedup_within_five_minutes() {
    let t = tracker_run(&[
        (42, true, at(10, 0, 0)),
        (42, false, at(10, 1, 0)),
        (42, true, at(10, 4, 0)),
        (42, false, at(10, 10, 0)),
    ]);
    let all = t.instances();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].occurrence_count, 2);
    assert_eq!(all[0].duration_ms(), Some(600 * S));
    let ep = t.episodes(&m1());
    assert_eq!(ep, vec![(at(10, 0, 0), Some(at(10, 10, 0)))]);
}

#[test]
fn example_26_outside_five_minutes() {
    let t = tracker_run(&[
        (42, true, at(10, 0, 0)),
        (42, false, at(10, 1, 0)),
        (42, true, at(10, 6, 30)),
        (42, false, at(10, 10, 0)),
    ]);
    let all = t.instances();
    assert_eq!(all.len(), 2);
    let ttr: Vec<i64> = all.iter().map(|i| i.duration_ms().unwrap() / S).collect();
    assert_eq!(ttr, vec![60, 210]);
    assert_eq!(ttr.iter().sum::<i64>() / 2, 135);
    // The boundary: exactly 300 000 ms merges, 300 001 ms does not.
    let r = at(10, 1, 0);
    let t = tracker_run(&[
        (42, true, at(10, 0, 0)),
        (42, false, r),
        (42, true, r + 300_000),
    ]);
    assert_eq!(t.instances().len(), 1);
    let t = tracker_run(&[
        (42, true, at(10, 0, 0)),
        (42, false, r),
        (42, true, r + 300_001),
    ]);
    assert_eq!(t.instances().len(), 2);
}

#[test]
fn example_27_duplicate_active() {
    let t = tracker_run(&[(42, true, at(10, 0, 0)), (42, true, at(10, 2, 0))]);
    let all = t.instances();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].occurrence_count, 1);
    assert_eq!(all[0].state, FaultState::Active);
    assert_eq!(all[0].last_active_ms, at(10, 0, 0));
}

#[test]
fn example_28_ack_semantics() {
    let mut t = FaultTracker::new(FaultParams::default());
    let mut out = Vec::new();
    let m = m1();
    t.fault(&m, 42, true, at(10, 0, 0), 0, None, &mut out);
    let id = out[0].instance.id;
    t.ack(id, "alice", at(10, 0, 30), &mut out);
    let i = t.instance(id).unwrap();
    assert_eq!(i.state, FaultState::Acknowledged);
    assert_eq!(i.time_to_ack_ms(), Some(30 * S));
    t.fault(&m, 42, false, at(10, 1, 0), 1, None, &mut out);
    t.fault(&m, 42, true, at(10, 3, 0), 2, None, &mut out);
    let i = t.instance(id).unwrap();
    assert_eq!(
        i.state,
        FaultState::Active,
        "re-activation requires a new ack"
    );
    assert_eq!(i.acked_ms, None);
    assert_eq!(i.ack_history, vec![(at(10, 0, 30), Arc::from("alice"))]);
    // Resolved without ack stays visible as RESOLVED with acked_ms = NULL.
    t.fault(&m, 7, true, at(11, 0, 0), 3, None, &mut out);
    t.fault(&m, 7, false, at(11, 2, 0), 4, None, &mut out);
    let seven = t
        .instances()
        .into_iter()
        .find(|i| i.code == 7)
        .unwrap()
        .clone();
    assert_eq!((seven.state, seven.acked_ms), (FaultState::Resolved, None));
    // It can still be acknowledged later, and stays resolved.
    t.ack(seven.id, "bob", at(11, 5, 0), &mut out);
    let seven = t.instance(seven.id).unwrap();
    assert_eq!(
        (seven.state, seven.acked_ms),
        (FaultState::Resolved, Some(at(11, 5, 0)))
    );
}

#[test]
fn example_29_severity_on_merge_keeps_the_highest() {
    let mut t = FaultTracker::new(FaultParams::default());
    let mut out = Vec::new();
    let m = m1();
    let steps = [
        (true, 10, Some(300)),
        (false, 11, None),
        (true, 12, Some(850)),
        (false, 13, None),
        (true, 14, Some(300)),
    ];
    for (i, (active, minute, sev)) in steps.iter().enumerate() {
        t.fault(
            &m,
            42,
            *active,
            at(10, *minute, 0),
            i as u64,
            *sev,
            &mut out,
        );
    }
    let all = t.instances();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].occurrence_count, 3);
    assert_eq!(all[0].severity, 850);
}

#[test]
fn example_30_overlapping_faults_are_one_episode() {
    let t = tracker_run(&[
        (42, true, at(10, 0, 0)),
        (43, true, at(10, 5, 0)),
        (42, false, at(10, 20, 0)),
        (43, false, at(10, 25, 0)),
    ]);
    let ep = t.episodes(&m1());
    assert_eq!(ep.len(), 1);
    assert_eq!(ep[0].1.unwrap() - ep[0].0, 1500 * S);
    // Through the engine: FE 1 and TTR 1500 s, not FE 2 and 2700 s.
    let mut f = Feed::new(params());
    let m = m1();
    f.run(&m, at(9, 0, 0));
    f.fault(&m, 42, true, at(10, 0, 0));
    f.fault(&m, 43, true, at(10, 5, 0));
    f.fault(&m, 42, false, at(10, 20, 0));
    f.fault(&m, 43, false, at(10, 25, 0));
    f.wm(at(11, 0, 0));
    let s = f.win(&m, WindowKind::Tumbling, at(10, 0, 0)).sums;
    assert_eq!((s.failures, s.ttr_ms), (1, 1500 * S));
    assert_eq!(
        merge_episodes(vec![(0, Some(10)), (10, Some(20))]),
        vec![(0, Some(20))]
    );
}

#[test]
fn example_31_chattering() {
    let mut ev = Vec::new();
    for i in 0..4 {
        ev.push((7, true, at(10, 0, i * 15)));
        ev.push((7, false, at(10, 0, i * 15 + 4)));
    }
    let t = tracker_run(&ev);
    let all = t.instances();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].occurrence_count, 4);
    assert!(all[0].chattering);
    // Two activations are not chattering.
    let t = tracker_run(&ev[..4]);
    assert!(!t.instances()[0].chattering);
}

fn unknown_hour(policy: UnknownPolicy) -> Sums {
    let mut f = Feed::new(OeeParams {
        unknown_policy: policy,
        ..params()
    });
    let m = m1();
    f.run(&m, at(9, 30, 0));
    f.push(OeeInput::Offline {
        machine: m.clone(),
        ts_ms: at(10, 0, 0),
        seq: 0,
    });
    f.run(&m, at(10, 20, 0));
    f.wm(at(11, 0, 0));
    f.win(&m, WindowKind::Tumbling, at(10, 0, 0)).sums
}

#[test]
fn example_33_unknown_time() {
    let s = unknown_hour(UnknownPolicy::Exclude);
    assert_eq!(s.ppt_ms, 2400 * S);
    assert_eq!(s.unknown_ms, 1200 * S);
    approx(s.kpis(Default::default()).availability, 1.0);
    assert!(
        s.kpis(Default::default())
            .flags
            .contains(Flags::UNKNOWN_TIME)
    );
    let s = unknown_hour(UnknownPolicy::Downtime);
    assert_eq!(s.ppt_ms, 3600 * S);
    approx(s.kpis(Default::default()).availability, 0.666667);
}

#[test]
fn machines_of_other_lines_do_not_mix() {
    let mut f = Feed::new(params());
    let a = m1();
    let other = MachineId::new("site", "line2", "x");
    f.run(&a, at(8, 0, 0));
    f.state(&other, at(8, 0, 0), Category::Setup);
    f.wm(at(9, 0, 0));
    let l1 = f.scoped(&Scope::Line(a.line_id()), WindowKind::Tumbling, at(8, 0, 0));
    assert_eq!((l1.sums.run_ms, l1.sums.setup_ms), (3600 * S, 0));
}
