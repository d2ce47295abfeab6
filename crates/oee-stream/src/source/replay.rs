//! The source of `oee-stream replay`: a recording ([`crate::recording`]) instead of the MQTT
//! session. Each message goes to its shard exactly as the MQTT source routes it, with its
//! recorded receipt time as `received_at`; a recorded connection loss makes every metric
//! STALE as a live one does; every second of recorded time (and once at the end) the shards
//! get a [`ShardMsg::Tick`](crate::pipeline::ShardMsg::Tick) that stands in for the wall clock.
//!
//! Without a speed it runs as fast as the pipeline takes messages; with `speed` = N it waits so
//! that N seconds of recorded time take one second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::pipeline::{PipelineStats, Router};
use crate::recording::{Entry, Reader, Torn};

/// How often (recorded time) the shards are told the time.
const TICK_MS: u64 = 1_000;

/// What the replay has done so far, for the progress line and the summary.
#[derive(Debug, Default)]
pub struct Progress {
    /// Records read from the file.
    pub records: AtomicU64,
    /// MQTT messages among them.
    pub messages: AtomicU64,
    pub connection_losses: AtomicU64,
    /// The recorded time of the first and the latest record (0 before the first).
    pub first_ms: AtomicU64,
    pub last_ms: AtomicU64,
    /// Set when the replay ended: why, if it failed, and a torn tail, if the file had one.
    pub end: std::sync::Mutex<Option<End>>,
}

/// How a replay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Every record was replayed; `torn` if the file ended with a record that is not whole.
    Complete { torn: Option<Torn> },
    /// Stopped before the end (shutdown).
    Stopped,
    /// The file could not be read further.
    Failed(String),
}

impl Progress {
    pub fn end(&self) -> Option<End> {
        self.end.lock().map(|e| e.clone()).unwrap_or(None)
    }

    fn finish(&self, end: End) {
        if let Ok(mut e) = self.end.lock() {
            *e = Some(end);
        }
    }
}

/// Feeds `recording` to the shards until its end or until `stop` turns true.
pub(crate) async fn run(
    mut recording: Reader,
    speed: Option<f64>,
    router: Router,
    stats: Arc<PipelineStats>,
    progress: Arc<Progress>,
    stop: watch::Receiver<bool>,
) {
    let started = tokio::time::Instant::now();
    let mut first: Option<u64> = None;
    let mut last_tick: Option<u64> = None;
    let mut now = 0u64;
    let end = loop {
        if *stop.borrow() {
            break End::Stopped;
        }
        let entry = match recording.next_entry() {
            Ok(Some(e)) => e,
            Ok(None) => {
                break End::Complete {
                    torn: recording.torn(),
                };
            }
            Err(e) => break End::Failed(e.to_string()),
        };
        // Receipt times only move forward (a clock step back on the recording machine would
        // otherwise move the replay's time back).
        now = now.max(entry.at_ms());
        let t0 = *first.get_or_insert(now);
        progress.records.fetch_add(1, Ordering::Relaxed);
        progress.first_ms.store(t0, Ordering::Relaxed);
        progress.last_ms.store(now, Ordering::Relaxed);
        if let Some(speed) = speed {
            let due = Duration::from_secs_f64((now - t0) as f64 / 1000.0 / speed);
            tokio::time::sleep_until(started + due).await;
        }
        if last_tick.is_none_or(|t| now >= t + TICK_MS) {
            router.tick(now).await;
            last_tick = Some(now);
        }
        match entry {
            Entry::Message { topic, payload, .. } => {
                progress.messages.fetch_add(1, Ordering::Relaxed);
                route(&router, &stats, &topic, payload, now).await;
            }
            Entry::ConnectionLost { .. } => {
                progress.connection_losses.fetch_add(1, Ordering::Relaxed);
                stats.connection_losses.fetch_add(1, Ordering::Relaxed);
                router.connection_lost(now).await;
            }
            Entry::Connected { .. } => {
                stats.connects.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    if first.is_some() {
        router.tick(now).await;
    }
    progress.finish(end);
}

/// Routes one recorded message as the MQTT source routes a received one.
async fn route(
    router: &Router,
    stats: &PipelineStats,
    topic: &[u8],
    payload: bytes::Bytes,
    at: u64,
) {
    let Ok(topic) = std::str::from_utf8(topic) else {
        stats.count_invalid_topic();
        return;
    };
    if let Err(e) = super::route_message(router, stats, topic, payload, at).await {
        tracing::debug!(topic, error = %e, "not a Sparkplug B topic");
    }
}
