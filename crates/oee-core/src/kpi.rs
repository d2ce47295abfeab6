//! Additive window sums and the ratios computed from them (ratios last, never averaged).
//!
//! Every field of [`Sums`] is additive: the sums of `[a, c)` are the field-wise sums of `[a, b)`
//! and `[b, c)`. Roll-ups (hour → shift → day, machine → line) add sums and compute the ratios
//! again. A ratio whose denominator is zero is `None` (NULL), never 0 % or 100 %.

use std::ops::AddAssign;

use crate::types::Ms;

/// Flag bits of a window result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Flags(pub u32);

impl Flags {
    /// Performance above 1 (kept, not clamped).
    pub const PERFORMANCE_GT_1: Flags = Flags(1);
    /// Counts in the window but no run time.
    pub const COUNTS_WITHOUT_RUNTIME: Flags = Flags(1 << 1);
    /// Rejects exceed the total count (good is then 0).
    pub const REJECT_GT_TOTAL: Flags = Flags(1 << 2);
    /// Some planned time had no data (node dead, stale, before the first state).
    pub const UNKNOWN_TIME: Flags = Flags(1 << 3);
    /// The window ends after the watermark (a growing, provisional result).
    pub const PARTIAL_WINDOW: Flags = Flags(1 << 4);
    /// A counter decreased and was treated as a reset.
    pub const COUNTER_RESET: Flags = Flags(1 << 5);
    /// A counter wrapped at its datatype width.
    pub const COUNTER_ROLLOVER: Flags = Flags(1 << 6);
    /// An implausible counter jump was quarantined (counted as 0).
    pub const COUNTER_QUARANTINED: Flags = Flags(1 << 7);
    /// Counts made while the node was offline landed on the first sample of a new session.
    pub const GAP_ATTRIBUTED: Flags = Flags(1 << 8);

    /// True when every bit of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets the bits of `other`.
    pub fn insert(&mut self, other: Flags) {
        self.0 |= other.0;
    }

    /// Names of the set flags, for display and JSON.
    pub fn names(self) -> Vec<&'static str> {
        const ALL: [(Flags, &str); 9] = [
            (Flags::PERFORMANCE_GT_1, "performance_gt_1"),
            (Flags::COUNTS_WITHOUT_RUNTIME, "counts_without_runtime"),
            (Flags::REJECT_GT_TOTAL, "reject_gt_total"),
            (Flags::UNKNOWN_TIME, "unknown_time"),
            (Flags::PARTIAL_WINDOW, "partial_window"),
            (Flags::COUNTER_RESET, "counter_reset"),
            (Flags::COUNTER_ROLLOVER, "counter_rollover"),
            (Flags::COUNTER_QUARANTINED, "counter_quarantined"),
            (Flags::GAP_ATTRIBUTED, "gap_attributed"),
        ];
        ALL.iter()
            .filter(|(f, _)| self.contains(*f))
            .map(|(_, n)| *n)
            .collect()
    }
}

/// The additive quantities of one window (one machine, or re-summed over a line).
///
/// Durations are integer milliseconds, ideal times integer nanoseconds, counts integers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Sums {
    /// All time of the window (TEEP basis).
    pub at_ms: Ms,
    /// Planned production time.
    pub ppt_ms: Ms,
    /// Run time (running, plus micro-stops in the TPM convention).
    pub run_ms: Ms,
    /// Micro-stops (unplanned stops shorter than the threshold, classified on the whole stop).
    pub micro_stop_ms: Ms,
    /// Setup / changeover time (an availability loss).
    pub setup_ms: Ms,
    /// Unplanned stop time (real stops; micro-stops too in the ISO convention).
    pub unplanned_ms: Ms,
    /// Planned stops (breaks from the calendar, planned states): excluded from PPT.
    pub planned_stop_ms: Ms,
    /// Not scheduled (outside every shift): excluded from PPT.
    pub not_scheduled_ms: Ms,
    /// Scheduled time with no data. Excluded from PPT or counted as downtime, by policy.
    pub unknown_ms: Ms,
    /// Σ total-counter deltas.
    pub total: i64,
    /// Σ good-counter deltas (used when the machine has a good counter).
    pub good: i64,
    /// Σ reject-counter deltas.
    pub reject: i64,
    /// Σ ICT × total delta (ns).
    pub ideal_ns: i128,
    /// Σ ICT × good-counter delta (ns).
    pub ideal_good_ns: i128,
    /// Σ ICT × reject delta (ns).
    pub ideal_reject_ns: i128,
    /// Number of total-counter samples seen (0 = no total counter in the window).
    pub total_samples: i64,
    /// Number of good-counter samples seen (> 0 = good comes from the good counter).
    pub good_samples: i64,
    /// Failure episodes that started in the window (FE).
    pub failures: i64,
    /// Of those, the ones already closed.
    pub closed_failures: i64,
    /// Of those, the ones still open.
    pub open_failures: i64,
    /// Σ time to restoration of the closed episodes (ms).
    pub ttr_ms: Ms,
    /// Counter samples treated as resets.
    pub counter_resets: i64,
    /// Counter samples treated as rollovers.
    pub counter_rollovers: i64,
    /// Counter samples quarantined as implausible.
    pub counter_quarantined: i64,
    /// Counter samples whose delta spans a session change.
    pub gap_attributed: i64,
}

impl AddAssign<&Sums> for Sums {
    fn add_assign(&mut self, o: &Sums) {
        self.at_ms += o.at_ms;
        self.ppt_ms += o.ppt_ms;
        self.run_ms += o.run_ms;
        self.micro_stop_ms += o.micro_stop_ms;
        self.setup_ms += o.setup_ms;
        self.unplanned_ms += o.unplanned_ms;
        self.planned_stop_ms += o.planned_stop_ms;
        self.not_scheduled_ms += o.not_scheduled_ms;
        self.unknown_ms += o.unknown_ms;
        self.total += o.total;
        self.good += o.good;
        self.reject += o.reject;
        self.ideal_ns += o.ideal_ns;
        self.ideal_good_ns += o.ideal_good_ns;
        self.ideal_reject_ns += o.ideal_reject_ns;
        self.total_samples += o.total_samples;
        self.good_samples += o.good_samples;
        self.failures += o.failures;
        self.closed_failures += o.closed_failures;
        self.open_failures += o.open_failures;
        self.ttr_ms += o.ttr_ms;
        self.counter_resets += o.counter_resets;
        self.counter_rollovers += o.counter_rollovers;
        self.counter_quarantined += o.counter_quarantined;
        self.gap_attributed += o.gap_attributed;
    }
}

/// What counts as operating time for MTBF.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TbfBasis {
    /// ISO 22400 TBF: run time plus setup (no delays). Default.
    #[default]
    RunPlusSetup,
    /// Run time only.
    RunOnly,
}

/// The ratios of one window, computed from its [`Sums`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Kpis {
    /// Run time / PPT.
    pub availability: Option<f64>,
    /// Ideal time / run time (may exceed 1; flagged, not clamped).
    pub performance: Option<f64>,
    /// ICT-weighted quality: fully productive time / ideal time.
    pub quality: Option<f64>,
    /// Count quality: good / total.
    pub quality_count: Option<f64>,
    /// Fully productive time / PPT (= A × P × Q exactly).
    pub oee: Option<f64>,
    /// Fully productive time / all time.
    pub teep: Option<f64>,
    /// PPT / all time.
    pub utilization: Option<f64>,
    /// Operating time / failures, in ms.
    pub mtbf_ms: Option<f64>,
    /// Σ TTR / closed failures, in ms.
    pub mttr_ms: Option<f64>,
    /// Operating time (MTBF numerator), always reported.
    pub opt_ms: Ms,
    /// Effective total count.
    pub total: i64,
    /// Effective good count (never negative).
    pub good: i64,
    /// Effective ideal time (ns).
    pub ideal_ns: i128,
    /// Fully productive time (ns): ICT × good.
    pub fpt_ns: i128,
    /// Flags, including those raised while computing the sums.
    pub flags: Flags,
}

fn ratio(num: f64, den: f64) -> Option<f64> {
    if den == 0.0 { None } else { Some(num / den) }
}

impl Sums {
    /// Counts the counter anomalies into flags.
    pub fn sum_flags(&self) -> Flags {
        let mut f = Flags::default();
        if self.counter_resets > 0 {
            f.insert(Flags::COUNTER_RESET);
        }
        if self.counter_rollovers > 0 {
            f.insert(Flags::COUNTER_ROLLOVER);
        }
        if self.counter_quarantined > 0 {
            f.insert(Flags::COUNTER_QUARANTINED);
        }
        if self.gap_attributed > 0 {
            f.insert(Flags::GAP_ATTRIBUTED);
        }
        if self.unknown_ms > 0 {
            f.insert(Flags::UNKNOWN_TIME);
        }
        f
    }

    /// Computes every ratio from the sums.
    pub fn kpis(&self, basis: TbfBasis) -> Kpis {
        let mut flags = self.sum_flags();
        // Effective total: the total counter when there is one, else good + reject.
        let (total, ideal) = if self.total_samples > 0 || self.good_samples == 0 {
            (self.total, self.ideal_ns)
        } else {
            (
                self.good + self.reject,
                self.ideal_good_ns + self.ideal_reject_ns,
            )
        };
        // Effective good: the good counter when there is one, else total − reject.
        let (mut good, mut fpt) = if self.good_samples > 0 {
            (self.good, self.ideal_good_ns)
        } else {
            (total - self.reject, ideal - self.ideal_reject_ns)
        };
        if good < 0 || fpt < 0 {
            flags.insert(Flags::REJECT_GT_TOTAL);
            good = good.max(0);
            fpt = fpt.max(0);
        }
        let ppt = self.ppt_ms as f64 * 1e6; // ns
        let rt = self.run_ms as f64 * 1e6;
        let at = self.at_ms as f64 * 1e6;
        let performance = ratio(ideal as f64, rt);
        if performance.is_some_and(|p| p > 1.0 + 1e-9) {
            flags.insert(Flags::PERFORMANCE_GT_1);
        }
        if self.run_ms == 0 && total > 0 {
            flags.insert(Flags::COUNTS_WITHOUT_RUNTIME);
        }
        let opt_ms = match basis {
            TbfBasis::RunPlusSetup => self.run_ms + self.setup_ms,
            TbfBasis::RunOnly => self.run_ms,
        };
        let planned = self.ppt_ms > 0;
        Kpis {
            availability: ratio(rt, ppt),
            performance: if planned { performance } else { None },
            quality: if total > 0 && ideal > 0 {
                ratio(fpt as f64, ideal as f64)
            } else {
                None
            },
            quality_count: if total > 0 {
                ratio(good as f64, total as f64)
            } else {
                None
            },
            oee: ratio(fpt as f64, ppt),
            teep: ratio(fpt as f64, at),
            utilization: ratio(ppt, at),
            mtbf_ms: if self.failures > 0 && planned {
                Some(opt_ms as f64 / self.failures as f64)
            } else {
                None
            },
            mttr_ms: if self.closed_failures > 0 && planned {
                Some(self.ttr_ms as f64 / self.closed_failures as f64)
            } else {
                None
            },
            opt_ms,
            total,
            good,
            ideal_ns: ideal,
            fpt_ns: fpt,
            flags,
        }
    }
}

/// Line KPIs in "constraint mode" (a serial line seen as one asset): availability and speed
/// from the bottleneck machine, counts from the designated output machine.
///
/// A = RT_b / PPT_b, P = ICT_b × total_out / RT_b, Q = good_out / total_out,
/// OEE = ICT_b × good_out / PPT_b.
pub fn line_constraint_kpis(bottleneck: &Sums, bottleneck_ict_ns: u64, output: &Kpis) -> Kpis {
    let ict = bottleneck_ict_ns as f64;
    let ppt = bottleneck.ppt_ms as f64 * 1e6;
    let rt = bottleneck.run_ms as f64 * 1e6;
    let ideal = ict * output.total as f64;
    let fpt = ict * output.good as f64;
    let mut flags = Flags::default();
    let performance = ratio(ideal, rt);
    if performance.is_some_and(|p| p > 1.0 + 1e-9) {
        flags.insert(Flags::PERFORMANCE_GT_1);
    }
    Kpis {
        availability: ratio(rt, ppt),
        performance,
        quality: ratio(output.good as f64, output.total as f64),
        quality_count: ratio(output.good as f64, output.total as f64),
        oee: ratio(fpt, ppt),
        teep: ratio(fpt, bottleneck.at_ms as f64 * 1e6),
        utilization: ratio(ppt, bottleneck.at_ms as f64 * 1e6),
        mtbf_ms: None,
        mttr_ms: None,
        opt_ms: bottleneck.run_ms + bottleneck.setup_ms,
        total: output.total,
        good: output.good,
        ideal_ns: ideal as i128,
        fpt_ns: fpt as i128,
        flags,
    }
}
