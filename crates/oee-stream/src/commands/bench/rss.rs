//! The service's resident memory over the run: one sample a second, appended to `rss.csv` in
//! the work directory as it is taken (a long run can be plotted while it goes), and summarised
//! as RSS at start / after the warm-up / at the end plus a least-squares slope, so "flat" is
//! judged from numbers.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

pub struct RssLog {
    path: PathBuf,
    out: BufWriter<File>,
    /// (seconds since the simulator started, VmRSS kB)
    samples: Vec<(f64, u64)>,
}

impl RssLog {
    pub fn create(path: &Path) -> anyhow::Result<RssLog> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = BufWriter::new(file);
        writeln!(out, "elapsed_s,rss_kb,peak_rss_kb")?;
        Ok(RssLog {
            path: path.to_path_buf(),
            out,
            samples: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One sample: `VmRSS` and `VmHWM` of the service, kB. Written through at once.
    pub fn push(&mut self, elapsed_s: f64, rss_kb: u64, peak_kb: Option<u64>) {
        let peak = peak_kb.map(|k| k.to_string()).unwrap_or_default();
        let written =
            writeln!(self.out, "{elapsed_s:.3},{rss_kb},{peak}").and_then(|()| self.out.flush());
        if let Err(e) = written {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the RSS sample");
        }
        self.samples.push((elapsed_s, rss_kb));
    }

    pub fn summary(&self, warmup_s: f64) -> Option<RssSummary> {
        summarize(&self.samples, warmup_s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RssSummary {
    pub start_kb: u64,
    /// The first sample at or after the warm-up.
    pub after_warmup_kb: Option<u64>,
    pub end_kb: u64,
    /// Least-squares slope of RSS over the samples from the warm-up on, MB per 10 minutes.
    pub slope_mb_per_10min: Option<f64>,
    /// Samples in the fit.
    pub fitted: usize,
    pub samples: usize,
}

pub fn summarize(samples: &[(f64, u64)], warmup_s: f64) -> Option<RssSummary> {
    let first = samples.first()?;
    let last = samples.last()?;
    let steady: Vec<(f64, u64)> = samples
        .iter()
        .copied()
        .filter(|(t, _)| *t >= warmup_s)
        .collect();
    Some(RssSummary {
        start_kb: first.1,
        after_warmup_kb: steady.first().map(|s| s.1),
        end_kb: last.1,
        slope_mb_per_10min: slope(&steady).map(|kb_per_s| kb_per_s * 600.0 / 1024.0),
        fitted: steady.len(),
        samples: samples.len(),
    })
}

/// Ordinary least squares of kB over seconds: kB per second. `None` under two distinct times.
fn slope(points: &[(f64, u64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1 as f64).sum::<f64>() / n;
    let (mut sty, mut stt) = (0.0, 0.0);
    for (t, y) in points {
        sty += (t - mean_t) * (*y as f64 - mean_y);
        stt += (t - mean_t) * (t - mean_t);
    }
    (stt > 0.0).then(|| sty / stt)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_steady_climb_after_the_warm_up_gives_its_slope() {
        // 100 MB during a 10 s warm-up, then +1 MB (1024 kB) a minute: 10 MB per 10 minutes.
        let mut s = vec![(0.0, 10_000), (5.0, 102_400)];
        s.extend((0..=600).map(|i| (10.0 + i as f64, 102_400 + (i * 1024 / 60) as u64)));
        let r = summarize(&s, 10.0).unwrap();
        assert_eq!(r.start_kb, 10_000);
        assert_eq!(r.after_warmup_kb, Some(102_400));
        assert_eq!(r.end_kb, 102_400 + 10 * 1024);
        assert_eq!((r.fitted, r.samples), (601, 603));
        let slope = r.slope_mb_per_10min.unwrap();
        assert!((slope - 10.0).abs() < 0.01, "{slope}");
    }

    #[test]
    fn flat_is_zero_and_one_sample_has_no_slope() {
        let flat: Vec<(f64, u64)> = (0..100).map(|i| (i as f64, 20_480)).collect();
        assert_eq!(summarize(&flat, 0.0).unwrap().slope_mb_per_10min, Some(0.0));
        let one = summarize(&[(0.0, 1)], 0.0).unwrap();
        assert_eq!(one.slope_mb_per_10min, None);
        assert_eq!(
            summarize(&[(0.0, 1), (1.0, 2)], 5.0)
                .unwrap()
                .after_warmup_kb,
            None
        );
        assert_eq!(summarize(&[], 0.0), None);
    }

    #[test]
    fn samples_are_written_through_as_csv() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rss.csv");
        let mut log = RssLog::create(&path).unwrap();
        log.push(0.0, 1000, Some(1200));
        log.push(1.25, 1100, None);
        // Readable before the log is dropped: a long run can be plotted while it goes.
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "elapsed_s,rss_kb,peak_rss_kb\n0.000,1000,1200\n1.250,1100,\n"
        );
    }
}
