//! Rate-limited logging of bad input: a flood of malformed messages must not turn into a flood
//! of log lines. Every rejection is still counted in `/metrics`; the log shows the first few of
//! each interval with their topic, and the next line logged says how many were left out.

use std::time::{Duration, Instant};

/// Log lines allowed per interval by [`LogLimiter::standard`].
pub const LINES_PER_INTERVAL: u32 = 10;
/// The interval of [`LogLimiter::standard`].
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Admits at most `per_interval` log lines per `interval` (a fixed window, restarted by the
/// first event after it ends).
#[derive(Debug)]
pub struct LogLimiter {
    per_interval: u32,
    interval: Duration,
    window_start: Option<Instant>,
    logged: u32,
    left_out: u64,
}

impl LogLimiter {
    pub fn new(per_interval: u32, interval: Duration) -> LogLimiter {
        LogLimiter {
            per_interval,
            interval,
            window_start: None,
            logged: 0,
            left_out: 0,
        }
    }

    /// [`LINES_PER_INTERVAL`] lines per [`INTERVAL`].
    pub fn standard() -> LogLimiter {
        LogLimiter::new(LINES_PER_INTERVAL, INTERVAL)
    }

    /// `Some(n)` when this event is to be logged, `n` being the events left out since the last
    /// one logged; `None` when it is left out.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        let expired = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.interval);
        if expired {
            self.window_start = Some(now);
            self.logged = 0;
        }
        if self.logged < self.per_interval {
            self.logged += 1;
            Some(std::mem::take(&mut self.left_out))
        } else {
            self.left_out += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_the_first_lines_of_each_interval_and_reports_the_rest() {
        let mut l = LogLimiter::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.admit(t0), Some(0));
        assert_eq!(l.admit(t0 + Duration::from_secs(1)), Some(0));
        for i in 0..5 {
            assert_eq!(l.admit(t0 + Duration::from_secs(2 + i)), None);
        }
        // A new interval: the first line carries the count of what was left out.
        assert_eq!(l.admit(t0 + Duration::from_secs(10)), Some(5));
        assert_eq!(l.admit(t0 + Duration::from_secs(11)), Some(0));
        assert_eq!(l.admit(t0 + Duration::from_secs(12)), None);
    }
}
