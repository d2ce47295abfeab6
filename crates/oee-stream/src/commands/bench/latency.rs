//! Latency distributions in bounded memory: an HDR histogram (3 significant digits) per figure,
//! so a two-hour run at 20,000 messages/s costs the bench a few kilobytes, not a vector per row.

use hdrhistogram::Histogram;

/// p50 / p99 / max of a latency distribution, ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    pub n: u64,
    pub p50: i64,
    pub p99: i64,
    pub max: i64,
}

/// Latencies in ms. A negative value (a timestamp ahead of the clock that reads it) counts as 0.
pub struct LatencyHist(Histogram<u64>);

impl LatencyHist {
    /// Auto-resizing (any value fits), 3 significant digits: ±0.1 %, exact below 2,048 ms.
    pub fn new() -> anyhow::Result<LatencyHist> {
        Ok(LatencyHist(Histogram::new(3)?))
    }

    pub fn record(&mut self, ms: i64) {
        self.0.saturating_record(ms.max(0) as u64);
    }

    pub fn percentiles(&self) -> Option<Percentiles> {
        if self.0.is_empty() {
            return None;
        }
        let at = |q: f64| self.0.value_at_quantile(q) as i64;
        Some(Percentiles {
            n: self.0.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: self.0.max() as i64,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn percentiles_of_one_to_a_thousand() {
        let mut h = LatencyHist::new().unwrap();
        assert_eq!(h.percentiles(), None);
        for ms in 1..=1000 {
            h.record(ms);
        }
        h.record(-5);
        assert_eq!(
            h.percentiles(),
            Some(Percentiles {
                n: 1001,
                p50: 500,
                p99: 990,
                max: 1000
            })
        );
    }
}
