//! Counters shared between the sink tasks and whoever exports them (the HTTP `/metrics` part).
//! Plain atomics: cheap to bump, read with [`SinkStats::snapshot`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::batch::RowCounts;

#[derive(Debug, Default)]
pub struct SinkStats {
    /// Rows committed per table (rows of batches found already committed are not counted).
    pub rows_telemetry: AtomicU64,
    pub rows_events: AtomicU64,
    pub rows_oee_windows: AtomicU64,
    pub rows_faults: AtomicU64,
    /// Batches committed.
    pub batches_written: AtomicU64,
    /// Batches found in the ledger already (a retry after an unacknowledged commit, a replay).
    pub batches_duplicate: AtomicU64,
    /// Failed write attempts (each retry counts).
    pub database_errors: AtomicU64,
    /// Batches the database refused for good (data errors), written to `spool/dead-letter/`.
    pub batches_dead_lettered: AtomicU64,
    /// Records waiting in the in-memory queue (gauge).
    pub queue_depth: AtomicU64,
    /// Spool content not yet written (gauges).
    pub spool_bytes: AtomicU64,
    pub spool_batches: AtomicU64,
    /// Batches appended to / replayed from the spool.
    pub spool_appended_batches: AtomicU64,
    pub spool_replayed_batches: AtomicU64,
    /// Times the spool reached `spool.max_bytes` (each episode once) and the sink stopped taking
    /// records from the queue.
    pub spool_full: AtomicU64,
    /// Spool I/O failures (each retry counts).
    pub spool_errors: AtomicU64,
    /// 1 during a spool-full episode (gauge): from reaching `max_bytes` until the spool is below
    /// 75 % of it again.
    pub spool_full_now: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkStatsSnapshot {
    pub rows_telemetry: u64,
    pub rows_events: u64,
    pub rows_oee_windows: u64,
    pub rows_faults: u64,
    pub batches_written: u64,
    pub batches_duplicate: u64,
    pub database_errors: u64,
    pub batches_dead_lettered: u64,
    pub queue_depth: u64,
    pub spool_bytes: u64,
    pub spool_batches: u64,
    pub spool_appended_batches: u64,
    pub spool_replayed_batches: u64,
    pub spool_full: u64,
    pub spool_errors: u64,
    pub spool_full_now: u64,
}

impl SinkStats {
    pub fn snapshot(&self) -> SinkStatsSnapshot {
        SinkStatsSnapshot {
            rows_telemetry: self.rows_telemetry.load(Relaxed),
            rows_events: self.rows_events.load(Relaxed),
            rows_oee_windows: self.rows_oee_windows.load(Relaxed),
            rows_faults: self.rows_faults.load(Relaxed),
            batches_written: self.batches_written.load(Relaxed),
            batches_duplicate: self.batches_duplicate.load(Relaxed),
            database_errors: self.database_errors.load(Relaxed),
            batches_dead_lettered: self.batches_dead_lettered.load(Relaxed),
            queue_depth: self.queue_depth.load(Relaxed),
            spool_bytes: self.spool_bytes.load(Relaxed),
            spool_batches: self.spool_batches.load(Relaxed),
            spool_appended_batches: self.spool_appended_batches.load(Relaxed),
            spool_replayed_batches: self.spool_replayed_batches.load(Relaxed),
            spool_full: self.spool_full.load(Relaxed),
            spool_errors: self.spool_errors.load(Relaxed),
            spool_full_now: self.spool_full_now.load(Relaxed),
        }
    }

    pub(crate) fn add_rows(&self, c: RowCounts) {
        self.rows_telemetry.fetch_add(c.telemetry, Relaxed);
        self.rows_events.fetch_add(c.events, Relaxed);
        self.rows_oee_windows.fetch_add(c.oee_windows, Relaxed);
        self.rows_faults.fetch_add(c.faults, Relaxed);
    }
}
