//! Cumulative counters to deltas, per (machine, counter) in event-time order.
//!
//! Never `last − first` or `max − min` over a window: each sample's delta is computed from the
//! sample before it (in event time) and attributed to the sample's own timestamp. The rules
//! (research/oee.md §7(a) "Counter rules"), with `M = 2^bits` from the Sparkplug datatype:
//!
//! 1. first sample: baseline, delta 0; a decrease across a session (bdSeq) change: baseline;
//! 2. `v ≥ prev`: delta `v − prev` (flag `gap_attributed` if the session changed);
//! 3. `v < prev`, `prev − v > M/2` and `(v − prev) mod M ≤ max_delta`: rollover;
//! 4. any other decrease: reset, delta `v` (if plausible, else quarantined);
//! 5. same timestamp and value (a birth re-send): delta 0;
//! 6. a delta above `max_delta` is quarantined: delta 0, flagged.
//!
//! After any sample, including a quarantined one, the next delta is taken from that sample: a
//! quarantined jump re-baselines, so a real preset is not quarantined forever and a glitch that
//! returns is not counted twice. That makes every delta a function of two adjacent samples only,
//! which is what lets late samples be re-attributed exactly.

use crate::types::{IdealCycle, Ms};

/// Which counter of a machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CounterKind {
    /// Total (produced) count.
    Total,
    /// Good count.
    Good,
    /// Reject (scrap) count.
    Reject,
}

impl CounterKind {
    /// Index 0..3 for per-counter arrays.
    pub fn index(self) -> usize {
        match self {
            CounterKind::Total => 0,
            CounterKind::Good => 1,
            CounterKind::Reject => 2,
        }
    }
}

/// One cumulative counter sample. The value is stored modulo `2^bits` (signed Sparkplug types
/// are interpreted modulo their width, so an Int16 at −32768 follows 32767).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterSample {
    /// Event time.
    pub ts: Ms,
    /// Tie-break for equal timestamps (e.g. bdSeq << 8 | seq, or a message index).
    pub seq: u64,
    /// Value modulo `2^bits`.
    pub value: u64,
    /// Datatype width in bits (8, 16, 32 or 64).
    pub bits: u8,
    /// Session id (Sparkplug bdSeq) the sample came in.
    pub session: u64,
}

impl CounterSample {
    /// Builds a sample, reducing `raw` modulo `2^bits` (`bits` is clamped to 1..=64).
    pub fn new(ts: Ms, seq: u64, raw: i128, bits: u8, session: u64) -> Self {
        let bits = bits.clamp(1, 64);
        // Two's complement masking is `raw mod 2^bits` (no 128-bit division).
        let mask = u64::MAX >> (64 - bits);
        Self {
            ts,
            seq,
            value: (raw as u64) & mask,
            bits,
            session,
        }
    }
}

/// Which rule produced a delta (recorded so it can be audited).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeltaKind {
    /// First sample, or a decrease across a session change: delta 0.
    Baseline,
    /// An increase (or no change).
    Normal,
    /// A wrap at the datatype width.
    Rollover,
    /// A decrease treated as a reset: the delta is the new value.
    Reset,
    /// An implausible jump: delta 0, flagged.
    Quarantined,
    /// Same timestamp and value as the previous sample (a birth re-send): delta 0.
    Duplicate,
}

/// The delta of one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Delta {
    /// Units counted by this sample.
    pub delta: u64,
    /// The rule that applied.
    pub kind: DeltaKind,
    /// The session changed since the previous sample (counts made offline land here).
    pub gap_attributed: bool,
}

/// Plausibility cap for counter jumps: `max_delta = ceil(Δt / ICT × k) + slack`, or `cap`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plausibility {
    /// Speed margin over the ideal rate (default 2).
    pub k: f64,
    /// Units always allowed on top (default 0).
    pub slack: u64,
    /// A fixed cap used when set (overrides the ICT rule).
    pub cap: Option<u64>,
}

impl Default for Plausibility {
    fn default() -> Self {
        Self {
            k: 2.0,
            slack: 0,
            cap: None,
        }
    }
}

impl Plausibility {
    /// The largest plausible delta over `dt_ms` at ideal cycle `ict`; `None` = no limit (no
    /// cap and no ICT known).
    pub fn max_delta(&self, dt_ms: Ms, ict: Option<IdealCycle>) -> Option<u64> {
        if let Some(cap) = self.cap {
            return Some(cap);
        }
        let ict = ict.filter(|i| i.ns > 0)?;
        let units = (dt_ms.max(0) as f64 * 1e6) / ict.ns as f64 * self.k;
        // Guard against float noise such as 9.999999 → 10.
        Some((units - 1e-9).ceil().max(0.0) as u64 + self.slack)
    }
}

/// The delta of `cur` given the sample before it (in event-time order).
pub fn delta(prev: Option<&CounterSample>, cur: &CounterSample, max_delta: Option<u64>) -> Delta {
    let baseline = Delta {
        delta: 0,
        kind: DeltaKind::Baseline,
        gap_attributed: false,
    };
    let Some(p) = prev else { return baseline };
    if cur.ts == p.ts && cur.value == p.value {
        return Delta {
            delta: 0,
            kind: DeltaKind::Duplicate,
            gap_attributed: false,
        };
    }
    let session_changed = cur.session != p.session;
    let plausible = |d: u64| max_delta.is_none_or(|m| d <= m);
    let quarantined = Delta {
        delta: 0,
        kind: DeltaKind::Quarantined,
        gap_attributed: false,
    };
    if cur.value >= p.value {
        let d = cur.value - p.value;
        if !plausible(d) {
            return quarantined;
        }
        return Delta {
            delta: d,
            kind: DeltaKind::Normal,
            gap_attributed: session_changed && d > 0,
        };
    }
    if session_changed || p.bits != cur.bits {
        // A decrease across a new session, or a changed datatype: start again from here.
        return baseline;
    }
    let m: u128 = 1u128 << cur.bits.clamp(1, 64);
    let drop = (p.value - cur.value) as u128;
    let wrapped = (m - drop) % m;
    if drop > m / 2 && plausible(wrapped as u64) {
        return Delta {
            delta: wrapped as u64,
            kind: DeltaKind::Rollover,
            gap_attributed: false,
        };
    }
    if plausible(cur.value) {
        Delta {
            delta: cur.value,
            kind: DeltaKind::Reset,
            gap_attributed: false,
        }
    } else {
        quarantined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ts: Ms, v: i128, bits: u8) -> CounterSample {
        CounterSample::new(ts, 0, v, bits, 1)
    }

    #[test]
    fn example_14_uint16_rollover() {
        let d = delta(Some(&s(0, 65_530, 16)), &s(1000, 4, 16), None);
        assert_eq!((d.delta, d.kind), (10, DeltaKind::Rollover));
    }

    #[test]
    fn example_15_uint32_rollover() {
        let d = delta(Some(&s(0, 4_294_967_286, 32)), &s(1000, 5, 32), None);
        assert_eq!((d.delta, d.kind), (15, DeltaKind::Rollover));
    }

    #[test]
    fn example_16_reset_counts_the_new_value() {
        let v = [s(1, 1000, 32), s(2, 1500, 32), s(3, 20, 32), s(4, 50, 32)];
        let deltas: Vec<Delta> = (1..4)
            .map(|i| delta(Some(&v[i - 1]), &v[i], None))
            .collect();
        assert_eq!(
            deltas.iter().map(|d| d.delta).collect::<Vec<_>>(),
            [500, 20, 30]
        );
        assert_eq!(deltas[1].kind, DeltaKind::Reset);
        assert_eq!(deltas.iter().map(|d| d.delta).sum::<u64>(), 550);
    }

    #[test]
    fn example_17_birth_resend_adds_nothing() {
        let d = delta(
            Some(&s(2, 1500, 32)),
            &CounterSample::new(2, 7, 1500, 32, 1),
            None,
        );
        assert_eq!((d.delta, d.kind), (0, DeltaKind::Duplicate));
    }

    #[test]
    fn example_19_implausible_jump_quarantined() {
        let p = Plausibility::default();
        let max = p.max_delta(10_000, Some(IdealCycle::from_millis(2000)));
        assert_eq!(max, Some(10));
        let d = delta(Some(&s(0, 100, 32)), &s(10_000, 5100, 32), max);
        assert_eq!((d.delta, d.kind), (0, DeltaKind::Quarantined));
        // The next sample is measured from the quarantined one (re-baseline).
        let d = delta(Some(&s(10_000, 5100, 32)), &s(20_000, 5105, 32), max);
        assert_eq!((d.delta, d.kind), (5, DeltaKind::Normal));
    }

    #[test]
    fn signed_int16_wraps_through_negative() {
        let d = delta(Some(&s(0, 32_767, 16)), &s(1, -32_768, 16), None);
        assert_eq!((d.delta, d.kind), (1, DeltaKind::Normal));
        let d = delta(Some(&s(0, -2, 16)), &s(1, 3, 16), None);
        assert_eq!((d.delta, d.kind), (5, DeltaKind::Rollover));
    }

    #[test]
    fn uint64_rollover_at_full_width() {
        let d = delta(Some(&s(0, u64::MAX as i128 - 1, 64)), &s(1, 3, 64), None);
        assert_eq!((d.delta, d.kind), (5, DeltaKind::Rollover));
    }

    #[test]
    fn implausible_reset_is_quarantined() {
        let d = delta(Some(&s(0, 60_000, 32)), &s(10_000, 50_000, 32), Some(10));
        assert_eq!(d.kind, DeltaKind::Quarantined);
    }

    #[test]
    fn decrease_after_session_change_is_a_baseline() {
        let prev = CounterSample::new(0, 0, 500, 32, 1);
        let cur = CounterSample::new(10, 0, 20, 32, 2);
        assert_eq!(delta(Some(&prev), &cur, None).kind, DeltaKind::Baseline);
        let cur = CounterSample::new(10, 0, 520, 32, 2);
        let d = delta(Some(&prev), &cur, None);
        assert_eq!((d.delta, d.gap_attributed), (20, true));
    }

    #[test]
    fn first_sample_is_a_baseline() {
        assert_eq!(delta(None, &s(0, 42, 32), None).kind, DeltaKind::Baseline);
    }
}
