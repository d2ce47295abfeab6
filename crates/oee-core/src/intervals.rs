//! Machine state intervals: categories, micro-stops on whole stops, unknown time, and the
//! overlay with the shift calendar, accumulated into a window slice.
//!
//! A state event starts an interval that lasts until the next state event of the machine (the
//! last one stays open). Micro-stop classification looks at the *whole* unplanned stop (the run
//! of consecutive unplanned-stop intervals, whatever their reasons) before the stop is clipped to
//! a window, so the result does not depend on where the windows are cut.
//!
//! The functions over `&[StateEvent]` depend only on where the state changes: an event with
//! the category of the one before it only splits an interval in two of the same kind (and a stop's extent walks over it). So the engine passes only the changes of its
//! step series (`compact/steps.rs`), and `state_dirty_range` is the one place that looks at
//! every sample.

use std::collections::HashMap;

use crate::calendar::CalCat;
use crate::compact::{Gap, Pos, Step, StepSeries};
use crate::kpi::Sums;
use crate::types::Ms;

/// The category of a machine state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// Producing: run time.
    Running,
    /// Failure, starvation, blockage…: availability loss (or a micro-stop if short).
    UnplannedStop,
    /// Setup / changeover: availability loss.
    Setup,
    /// Break, planned maintenance, no order: excluded from planned time.
    PlannedStop,
    /// Not scheduled: excluded from planned time.
    NotScheduled,
    /// No data (node dead, stale, before the first state).
    Unknown,
}

/// One state change of a machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateEvent {
    /// Event time.
    pub ts: Ms,
    /// Tie-break for equal timestamps.
    pub seq: u64,
    /// The category from this time on.
    pub category: Category,
}

/// How micro-stops count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MinorStops {
    /// TPM / Vorne: micro-stops are run time (a performance loss). Default.
    #[default]
    Performance,
    /// ISO 22400: micro-stops are delays outside the actual production time (availability).
    Availability,
}

/// How unknown time (no data) counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum UnknownPolicy {
    /// Removed from planned time (reported in `unknown_ms`). Default.
    #[default]
    Exclude,
    /// Counted as downtime inside planned time.
    Downtime,
}

/// Maps integer state codes (`state.code`) to categories: exact codes first, then ranges (first
/// match), then the default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateCodeTable {
    /// Exact code → category.
    pub exact: HashMap<i64, Category>,
    /// Inclusive ranges `(lo, hi, category)`, first match wins.
    pub ranges: Vec<(i64, i64, Category)>,
    /// Category of an unmapped code (default: unplanned stop).
    pub default: Category,
}

impl Default for StateCodeTable {
    fn default() -> Self {
        Self {
            exact: HashMap::new(),
            ranges: Vec::new(),
            default: Category::UnplannedStop,
        }
    }
}

impl StateCodeTable {
    /// The category of a code.
    pub fn category(&self, code: i64) -> Category {
        if let Some(c) = self.exact.get(&code) {
            return *c;
        }
        self.ranges
            .iter()
            .find(|(lo, hi, _)| (*lo..=*hi).contains(&code))
            .map_or(self.default, |r| r.2)
    }
}

/// Parameters of the time accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeParams {
    /// An unplanned stop shorter than this (whole duration) is a micro-stop; 0 disables.
    pub micro_stop_ms: Ms,
    /// Micro-stops as run time (TPM) or as downtime (ISO).
    pub minor_stops: MinorStops,
    /// Unknown time excluded or counted as downtime.
    pub unknown_policy: UnknownPolicy,
    /// Planned-stop *states* are a loss inside planned time (Vorne) instead of being excluded
    /// (calendar breaks stay excluded either way).
    pub planned_stop_is_loss: bool,
}

/// Where the unplanned stop containing `states[i]` starts and ends (`None` = still open).
fn stop_extent(states: &[StateEvent], i: usize) -> (Ms, Option<Ms>) {
    let mut j = i;
    while j > 0 && states[j - 1].category == Category::UnplannedStop {
        j -= 1;
    }
    let end = states[i + 1..]
        .iter()
        .find(|e| e.category != Category::UnplannedStop)
        .map(|e| e.ts);
    (states[j].ts, end)
}

impl Step for StateEvent {
    fn key(&self) -> (Ms, u64) {
        (self.ts, self.seq)
    }
    fn at(self, (ts, seq): (Ms, u64)) -> Self {
        StateEvent { ts, seq, ..self }
    }
    fn same_value(&self, o: &Self) -> bool {
        self.category == o.category
    }
}

/// Where inserting `ev` at `gap` of `s` can change slices: the intervals around it, and the
/// whole stops they belong to (even an event after the horizon can close a stop whose start is
/// in final slices). Computed over every sample, repeats included, exactly as over a sorted
/// `Vec` of them: from the sample before the stop that ends two samples before `ev` to the one
/// after the first sample after `ev` that is not an unplanned stop.
pub(crate) fn state_dirty_range(
    s: &StepSeries<StateEvent>,
    gap: Gap,
    ev: &StateEvent,
    horizon: Ms,
) -> (Ms, Ms) {
    let stop = |e: &StateEvent| e.category == Category::UnplannedStop;
    let heads = s.heads();
    // A run is one value, so a walk over stop samples is a walk over heads.
    let lo = match gap.0 {
        None => ev.ts,
        Some(p1) => match s.prev(p1) {
            None => s.get(p1).ts,
            Some(p2) if !stop(&s.get(p2)) => s.get(p2).ts,
            Some(p2) => (0..p2.h)
                .rev()
                .find(|&h| !stop(&heads[h]))
                .map_or(heads[0].ts, |h| s.get(s.run_end(h)).ts),
        },
    };
    let end = s.after(gap).and_then(|n1| {
        if !stop(&s.get(n1)) {
            return Some(n1);
        }
        (n1.h + 1..heads.len())
            .find(|&h| !stop(&heads[h]))
            .map(|h| Pos { h, j: 0 })
    });
    let hi = end.and_then(|q| s.next(q)).map_or(horizon, |p| s.get(p).ts);
    (lo, hi)
}

/// True when the unplanned stop containing `states[i]` is a micro-stop.
pub fn is_micro_stop(states: &[StateEvent], i: usize, micro_stop_ms: Ms) -> bool {
    if micro_stop_ms <= 0 {
        return false;
    }
    let (start, end) = stop_extent(states, i);
    end.is_some_and(|e| e - start < micro_stop_ms)
}

/// The earliest start of an open unplanned stop that is still too short to classify at
/// `watermark` (slices from there on must wait), or `None`.
pub fn unclassified_from(states: &[StateEvent], watermark: Ms, micro_stop_ms: Ms) -> Option<Ms> {
    let last = states.len().checked_sub(1)?;
    if micro_stop_ms <= 0 || states[last].category != Category::UnplannedStop {
        return None;
    }
    let (start, _) = stop_extent(states, last);
    (watermark - start < micro_stop_ms).then_some(start)
}

/// The effective category of a piece of time, after micro-stop classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Eff {
    Cat(Category),
    Micro,
}

fn add_piece(s: &mut Sums, eff: Eff, cal: CalCat, len: Ms, p: &TimeParams) {
    s.at_ms += len;
    match (eff, cal) {
        // Running overrides the plan: produced parts always have time.
        (Eff::Cat(Category::Running), _) => {
            s.run_ms += len;
            s.ppt_ms += len;
        }
        (_, CalCat::NotScheduled) => s.not_scheduled_ms += len,
        (_, CalCat::Break) => s.planned_stop_ms += len,
        (Eff::Micro, CalCat::Scheduled) => {
            s.micro_stop_ms += len;
            s.ppt_ms += len;
            match p.minor_stops {
                MinorStops::Performance => s.run_ms += len,
                MinorStops::Availability => s.unplanned_ms += len,
            }
        }
        (Eff::Cat(c), CalCat::Scheduled) => match c {
            Category::Running => unreachable!("handled above"),
            Category::UnplannedStop => {
                s.unplanned_ms += len;
                s.ppt_ms += len;
            }
            Category::Setup => {
                s.setup_ms += len;
                s.ppt_ms += len;
            }
            Category::PlannedStop => {
                s.planned_stop_ms += len;
                if p.planned_stop_is_loss {
                    s.ppt_ms += len;
                }
            }
            Category::NotScheduled => s.not_scheduled_ms += len,
            Category::Unknown => {
                s.unknown_ms += len;
                if p.unknown_policy == UnknownPolicy::Downtime {
                    s.ppt_ms += len;
                }
            }
        },
    }
}

/// Splits `[x, y)` by the calendar timeline and adds each piece.
fn add_span(s: &mut Sums, eff: Eff, x: Ms, y: Ms, cal: &[(Ms, CalCat)], p: &TimeParams) {
    if x >= y {
        return;
    }
    if cal.is_empty() {
        add_piece(s, eff, CalCat::Scheduled, y - x, p);
        return;
    }
    // `k` = number of segments starting at or before `t`.
    let mut k = cal.partition_point(|c| c.0 <= x);
    let mut t = x;
    while t < y {
        let cat = if k == 0 {
            CalCat::NotScheduled
        } else {
            cal[k - 1].1
        };
        let end = cal.get(k).map_or(y, |c| c.0.min(y));
        add_piece(s, eff, cat, end - t, p);
        t = end;
        k += 1;
    }
}

/// Adds the time accounting of `[a, b)` to `sums`. `states` must be sorted and hold every event
/// needed: the last one at or before `a` and the whole stops around the slice. `cal` is the
/// calendar timeline (segment starts, sorted; empty = everything scheduled).
pub fn accumulate_time(
    sums: &mut Sums,
    states: &[StateEvent],
    a: Ms,
    b: Ms,
    cal: &[(Ms, CalCat)],
    p: &TimeParams,
) {
    let first = states.partition_point(|e| e.ts <= a);
    let mut t = a;
    if first == 0 {
        // Before the first state: unknown.
        let end = states.first().map_or(b, |e| e.ts.min(b));
        add_span(sums, Eff::Cat(Category::Unknown), t, end, cal, p);
        t = end;
    }
    let mut i = first.saturating_sub(1);
    // Cached micro-stop decision for the current stop (valid while the run continues).
    let mut run_micro: Option<bool> = None;
    while t < b && i < states.len() {
        let e = &states[i];
        let end = states.get(i + 1).map_or(b, |n| n.ts.min(b));
        let eff = if e.category == Category::UnplannedStop {
            let micro = *run_micro.get_or_insert_with(|| is_micro_stop(states, i, p.micro_stop_ms));
            if micro {
                Eff::Micro
            } else {
                Eff::Cat(Category::UnplannedStop)
            }
        } else {
            run_micro = None;
            Eff::Cat(e.category)
        };
        add_span(sums, eff, t.max(e.ts), end, cal, p);
        t = end;
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: TimeParams = TimeParams {
        micro_stop_ms: 120_000,
        minor_stops: MinorStops::Performance,
        unknown_policy: UnknownPolicy::Exclude,
        planned_stop_is_loss: false,
    };

    fn ev(ts: Ms, category: Category) -> StateEvent {
        StateEvent {
            ts,
            seq: 0,
            category,
        }
    }

    #[test]
    fn calendar_split_and_running_override() {
        use Category::*;
        let states = [
            ev(0, UnplannedStop),
            ev(1000, Running),
            ev(3000, UnplannedStop),
        ];
        let cal = [
            (0, CalCat::NotScheduled),
            (2000, CalCat::Scheduled),
            (3500, CalCat::Break),
        ];
        let mut s = Sums::default();
        let p = TimeParams {
            micro_stop_ms: 0,
            ..P
        };
        accumulate_time(&mut s, &states, 0, 4000, &cal, &p);
        assert_eq!(s.at_ms, 4000);
        assert_eq!(s.not_scheduled_ms, 1000);
        assert_eq!(s.run_ms, 2000);
        assert_eq!(s.unplanned_ms, 500);
        assert_eq!(s.planned_stop_ms, 500);
        assert_eq!(s.ppt_ms, 2500);
    }

    #[test]
    fn before_first_state_is_unknown() {
        let states = [ev(1000, Category::Running)];
        let mut s = Sums::default();
        accumulate_time(&mut s, &states, 0, 3000, &[], &P);
        assert_eq!((s.unknown_ms, s.run_ms, s.ppt_ms), (1000, 2000, 2000));
    }

    /// The dirty range as the engine computed it over a sorted `Vec` of every state event.
    fn vec_dirty_range(s: &[StateEvent], ev: &StateEvent, horizon: Ms) -> (Ms, Ms) {
        let i = s.partition_point(|e| e < ev);
        let mut s = s.to_vec();
        s.insert(i, *ev);
        let mut lo = i.saturating_sub(1);
        while lo > 0 && s[lo - 1].category == Category::UnplannedStop {
            lo -= 1;
        }
        let mut hi = i + 1;
        while hi < s.len() && s[hi].category == Category::UnplannedStop {
            hi += 1;
        }
        let lo_ts = s[lo.saturating_sub(1)].ts.min(ev.ts);
        let hi_ts = s.get(hi + 1).map_or(horizon, |e| e.ts);
        (lo_ts, hi_ts)
    }

    #[test]
    fn dirty_ranges_are_those_over_every_sample() {
        use Category::*;
        let cats = [Running, UnplannedStop, UnplannedStop, Setup];
        let mut rng = 11u64;
        let mut next = || {
            rng = rng
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            rng >> 33
        };
        for _ in 0..40 {
            let mut series = StepSeries::default();
            let mut all: Vec<StateEvent> = Vec::new();
            for n in 0..300i64 {
                let r = next();
                // Long runs (the category changes rarely), late events.
                let c = cats[(n / 25 + (r % 29 == 0) as i64) as usize % 4];
                let ts = if r % 5 == 0 {
                    n * 10 - (r % 400) as i64
                } else {
                    n * 10
                };
                let ev = StateEvent {
                    ts,
                    seq: r % 3,
                    category: c,
                };
                let horizon = n * 10 - 50;
                match series.find(&ev) {
                    Ok(_) => assert!(all.contains(&ev)),
                    Err(gap) => {
                        assert_eq!(
                            state_dirty_range(&series, gap, &ev, horizon),
                            vec_dirty_range(&all, &ev, horizon),
                            "{ev:?}"
                        );
                        series.insert_at(gap, ev);
                        all.insert(all.partition_point(|e| e < &ev), ev);
                    }
                }
            }
            assert!(
                series.heads().len() < all.len() / 2,
                "mostly repeats: {} of {}",
                series.heads().len(),
                all.len()
            );
        }
    }

    #[test]
    fn code_table_exact_then_range_then_default() {
        let mut t = StateCodeTable::default();
        t.exact.insert(7, Category::Setup);
        t.ranges.push((10_000, 19_999, Category::Running));
        assert_eq!(t.category(7), Category::Setup);
        assert_eq!(t.category(10_500), Category::Running);
        assert_eq!(t.category(3), Category::UnplannedStop);
    }
}
