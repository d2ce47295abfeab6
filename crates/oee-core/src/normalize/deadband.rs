//! Deadband for analog signals: absolute, or percent of the configured span, with a maximum
//! silence after which a value is emitted anyway (event time).
//!
//! Rule (as OPC UA's data-change filter): a value is emitted when `|value − last emitted| >
//! band`; a change exactly equal to the band is suppressed. A zero band suppresses only exact
//! repeats. The first value, a value after a quality change, and a NaN/non-NaN switch are always
//! emitted.

/// Deadband settings of one rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Deadband {
    /// Band in target units; `None` = no deadband (every value is emitted).
    pub band: Option<f64>,
    /// Emit anyway after this much event time since the last emitted value.
    pub max_silence_ms: Option<i64>,
}

impl Deadband {
    pub const NONE: Deadband = Deadband {
        band: None,
        max_silence_ms: None,
    };

    pub fn absolute(band: f64, max_silence_ms: Option<i64>) -> Deadband {
        Deadband {
            band: Some(band.abs()),
            max_silence_ms,
        }
    }

    /// `percent` of `span_high − span_low`; a zero (or inverted) span gives a zero band.
    pub fn percent(
        percent: f64,
        span_low: f64,
        span_high: f64,
        max_silence_ms: Option<i64>,
    ) -> Deadband {
        let span = (span_high - span_low).max(0.0);
        Deadband {
            band: Some((percent / 100.0 * span).abs()),
            max_silence_ms,
        }
    }

    pub fn is_active(&self) -> bool {
        self.band.is_some()
    }

    /// Decide whether `value` at `ts_ms` is emitted, and remember it if so.
    #[inline]
    pub fn admit(&self, state: &mut DeadbandState, value: f64, ts_ms: i64) -> bool {
        let Some(band) = self.band else { return true };
        let Some((last, last_ts)) = state.last else {
            state.last = Some((value, ts_ms));
            return true;
        };
        if ts_ms < last_ts {
            // Out of order: pass it on, keep the newer reference.
            return true;
        }
        let changed = if value.is_nan() || last.is_nan() {
            value.is_nan() != last.is_nan()
        } else {
            (value - last).abs() > band
        };
        let silent_too_long = self
            .max_silence_ms
            .is_some_and(|m| ts_ms.saturating_sub(last_ts) >= m);
        if changed || silent_too_long {
            state.last = Some((value, ts_ms));
            true
        } else {
            false
        }
    }
}

/// The last emitted value and its time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DeadbandState {
    last: Option<(f64, i64)>,
}

impl DeadbandState {
    /// Forget the reference so the next value is emitted (after a quality change).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_band_edges() {
        let d = Deadband::absolute(2.0, None);
        let mut s = DeadbandState::default();
        assert!(d.admit(&mut s, 10.0, 0), "first value");
        assert!(
            !d.admit(&mut s, 12.0, 1),
            "exactly at the band is suppressed"
        );
        assert!(!d.admit(&mut s, 8.0, 2), "exactly at the band below");
        assert!(!d.admit(&mut s, 11.9, 3));
        assert!(d.admit(&mut s, 12.000_001, 4), "just beyond the band");
        assert!(
            !d.admit(&mut s, 10.5, 5),
            "compared with the last emitted value (12.000001)"
        );
        assert!(d.admit(&mut s, 9.9, 6));
    }

    #[test]
    fn percent_of_span() {
        let d = Deadband::percent(1.0, 0.0, 200.0, None); // 2.0
        assert_eq!(d.band, Some(2.0));
        let mut s = DeadbandState::default();
        assert!(d.admit(&mut s, 50.0, 0));
        assert!(!d.admit(&mut s, 52.0, 1));
        assert!(d.admit(&mut s, 52.5, 2));
    }

    #[test]
    fn percent_of_a_zero_span_suppresses_only_repeats() {
        let d = Deadband::percent(5.0, 10.0, 10.0, None);
        assert_eq!(d.band, Some(0.0));
        let mut s = DeadbandState::default();
        assert!(d.admit(&mut s, 1.0, 0));
        assert!(!d.admit(&mut s, 1.0, 1));
        assert!(d.admit(&mut s, 1.000_000_1, 2));
    }

    #[test]
    fn max_silence_emits_anyway() {
        let d = Deadband::absolute(5.0, Some(60_000));
        let mut s = DeadbandState::default();
        assert!(d.admit(&mut s, 1.0, 0));
        assert!(!d.admit(&mut s, 1.0, 59_999));
        assert!(d.admit(&mut s, 1.0, 60_000), "exactly at max silence");
        assert!(
            !d.admit(&mut s, 1.0, 60_001),
            "silence restarts at the emitted value"
        );
    }

    #[test]
    fn no_band_passes_everything_and_nan_switches_are_changes() {
        let mut s = DeadbandState::default();
        assert!(Deadband::NONE.admit(&mut s, 1.0, 0));
        assert!(Deadband::NONE.admit(&mut s, 1.0, 1));
        let d = Deadband::absolute(1.0, None);
        let mut s = DeadbandState::default();
        assert!(d.admit(&mut s, 1.0, 0));
        assert!(d.admit(&mut s, f64::NAN, 1));
        assert!(!d.admit(&mut s, f64::NAN, 2));
        assert!(d.admit(&mut s, 1.0, 3));
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        // regression: found by the normalizer property test
        let d = Deadband::absolute(1.0, Some(1000));
        let mut s = DeadbandState::default();
        assert!(d.admit(&mut s, 1.0, i64::MIN));
        assert!(d.admit(&mut s, 1.0, i64::MAX));
    }

    #[test]
    fn out_of_order_passes_without_moving_the_reference() {
        let d = Deadband::absolute(1.0, None);
        let mut s = DeadbandState::default();
        assert!(d.admit(&mut s, 1.0, 100));
        assert!(d.admit(&mut s, 1.0, 50));
        assert!(!d.admit(&mut s, 1.5, 150));
        s.reset();
        assert!(d.admit(&mut s, 1.5, 160));
    }
}
