//! The machinery every sink shares: the batcher (bounded record queue → batches by size and
//! latency), the hand-off to the writer (a small in-memory channel, or the spool when the writer
//! is behind), and the writer loop (retry with backoff, spool replay in order, shutdown).
//!
//! Order: a batch goes to the in-memory channel only while the spool is empty; once something
//! is spooled every later batch is spooled too, until the writer has replayed the spool. The
//! writer takes the channel first (its batches are older than anything spooled), then the spool.
//! So batches reach the database in the order they were formed. When a write from memory fails,
//! that batch and the channel's go to the front of the spool before the retry, so an outage
//! never holds batches in memory only.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::batch::{Batch, IdSource, RowCounts};
use super::spool::Spool;
use super::stats::SinkStats;
use super::{Backend, SinkError, codec};
use crate::sink::record::Record;

/// Batches held between the batcher and the writer before the spool takes over.
pub const HANDOFF_BATCHES: usize = 2;
/// A write that takes longer than this is abandoned and retried on a new connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// A spool-full episode ends when the spool is below this share of `max_bytes` (per cent).
pub const FULL_CLEARS_AT: u64 = 75;
/// While the writer is behind (the spool holds batches) a batch may grow to this many times
/// `batch_size` rows and wait this many times `batch_max_latency_ms`: rows wait in the spool
/// anyway, and one transaction per `batch_size` rows is what keeps the writer behind (each
/// commit waits for the database's WAL flush).
pub const CATCH_UP_GROWTH: usize = 10;

/// What a writer reports.
pub enum WriteOutcome {
    Written(RowCounts),
    /// The ledger already had this batch.
    Duplicate,
}

/// Why a write failed.
#[derive(Debug)]
pub struct WriteError {
    /// The database refused the data itself (retrying cannot help): the batch is dead-lettered.
    pub permanent: bool,
    pub message: String,
}

impl WriteError {
    pub fn retryable(m: impl std::fmt::Display) -> WriteError {
        WriteError {
            permanent: false,
            message: m.to_string(),
        }
    }
}

pub struct RunnerConfig {
    pub batch_size: usize,
    /// The most rows a batch takes while catching up (see [`CATCH_UP_GROWTH`]): at least
    /// `batch_size`, at most what the record queue holds.
    pub batch_max: usize,
    pub linger: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub dead_letter_dir: std::path::PathBuf,
}

pub struct Shared {
    pub spool: Mutex<Spool>,
    /// The batcher appended to the spool.
    pub spool_changed: Notify,
    /// The writer consumed from the spool.
    pub spool_room: Notify,
    /// Shutdown: the spool limit no longer applies (nothing may be lost).
    pub overflow: AtomicBool,
    /// A spool-full episode is on: from reaching `max_bytes` until the writer has brought the
    /// spool below [`FULL_CLEARS_AT`] of it. While the writer replays and new batches keep
    /// coming the spool hovers at the limit; this keeps that one episode (one log line).
    pub full_episode: AtomicBool,
    pub stats: Arc<SinkStats>,
    /// Set by shutdown: when the writer gives up retrying.
    pub deadline: Mutex<Option<Instant>>,
    pub shutdown: Notify,
}

impl Shared {
    pub fn spool(&self) -> MutexGuard<'_, Spool> {
        // A panic while holding the lock leaves the spool consistent on disk; keep going.
        self.spool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish_spool_gauges(&self, s: &Spool) {
        self.stats.spool_bytes.store(s.bytes(), Relaxed);
        self.stats.spool_batches.store(s.frames(), Relaxed);
    }

    fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub async fn batcher(
    mut rx: mpsc::Receiver<Record>,
    close: Arc<Notify>,
    tx: mpsc::Sender<Batch>,
    shared: Arc<Shared>,
    cfg: Arc<RunnerConfig>,
) -> Result<(), SinkError> {
    let mut ids = IdSource::new();
    let mut closed = false;
    let mut buf: Vec<Record> = Vec::with_capacity(cfg.batch_size);
    loop {
        let (size, linger) = if shared.spool().is_empty() {
            (cfg.batch_size, cfg.linger)
        } else {
            (
                cfg.batch_size
                    .saturating_mul(CATCH_UP_GROWTH)
                    .min(cfg.batch_max),
                cfg.linger.saturating_mul(CATCH_UP_GROWTH as u32),
            )
        };
        // Wait for the first record of a batch.
        let got = tokio::select! {
            n = rx.recv_many(&mut buf, size) => n,
            _ = close.notified(), if !closed => {
                // Stop accepting; what is queued is still received.
                rx.close();
                closed = true;
                continue;
            }
        };
        if got == 0 {
            break; // closed and drained
        }
        let deadline = Instant::now() + linger;
        while buf.len() < size {
            let want = size - buf.len();
            tokio::select! {
                biased;
                n = rx.recv_many(&mut buf, want) => if n == 0 { break },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        shared.stats.queue_depth.store(rx.len() as u64, Relaxed);
        let batch = Batch {
            id: ids.next_id(),
            records: std::mem::replace(&mut buf, Vec::with_capacity(cfg.batch_size)),
        };
        dispatch(batch, &tx, &shared).await;
    }
    shared.stats.queue_depth.store(0, Relaxed);
    Ok(())
}

/// Hand a batch to the writer, or to the spool when the writer is behind. Waits (back-pressure)
/// while the spool is full or failing; never drops.
async fn dispatch(batch: Batch, tx: &mpsc::Sender<Batch>, shared: &Shared) {
    // The lock is held across the check and the send (see `spool_in_front`).
    let batch = {
        let spool = shared.spool();
        if spool.is_empty() {
            match tx.try_send(batch) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b)) => b,
            }
        } else {
            batch
        }
    };
    let mut bytes = Vec::with_capacity(64 * batch.records.len());
    codec::encode(&batch, &mut bytes);
    drop(batch);
    loop {
        let room = {
            let mut s = shared.spool();
            if !s.is_full() || shared.overflow.load(Relaxed) {
                match s.append(&bytes) {
                    Ok(()) => {
                        shared.stats.spool_appended_batches.fetch_add(1, Relaxed);
                        shared.publish_spool_gauges(&s);
                        None
                    }
                    Err(e) => Some(Err(e)),
                }
            } else {
                Some(Ok(s.max_bytes()))
            }
        };
        match room {
            None => break,
            Some(Ok(max)) => {
                if !shared.full_episode.swap(true, Relaxed) {
                    shared.stats.spool_full.fetch_add(1, Relaxed);
                    shared.stats.spool_full_now.store(1, Relaxed);
                    tracing::error!(
                        max_bytes = max,
                        "SPOOL FULL: the database is not keeping up and the spool reached \
                         database.spool.max_bytes; no more records are taken from the queue \
                         (back-pressure to the source) until the writer frees space"
                    );
                }
                tokio::select! {
                    _ = shared.spool_room.notified() => {}
                    _ = shared.shutdown.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            Some(Err(e)) => {
                shared.stats.spool_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "cannot append to the spool; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    shared.spool_changed.notify_one();
}

enum Next {
    Mem(Batch),
    Spooled(Batch, usize),
}

pub async fn writer(
    mut backend: Backend,
    mut rx: mpsc::Receiver<Batch>,
    shared: Arc<Shared>,
    cfg: Arc<RunnerConfig>,
) -> Result<(), SinkError> {
    // Batches taken from the channel that could not be spooled (a spool I/O error): the oldest.
    let mut held: VecDeque<Batch> = VecDeque::new();
    'batches: loop {
        // Shutting down: finish the channel, and keep replaying the spool until the deadline;
        // what is left in the spool then waits for the next start.
        let deadline = shared.deadline();
        let past_deadline = deadline.is_some_and(|d| Instant::now() >= d);
        let next = match held.pop_front().map_or_else(|| rx.try_recv(), Ok) {
            Ok(b) => Next::Mem(b),
            Err(_)
                if deadline.is_some()
                    && rx.is_closed()
                    && rx.is_empty()
                    && (past_deadline || shared.spool().is_empty()) =>
            {
                break;
            }
            Err(_) => {
                let peeked = shared.spool().peek();
                match peeked {
                    // The batcher may have filled the channel (while the spool was empty)
                    // between our `try_recv` and this peek: those batches are older than any
                    // spooled one, so they go first. After the peek found a spooled batch no new
                    // batch can enter the channel until the spool is drained again.
                    Ok(Some(_)) if !rx.is_empty() => match rx.try_recv() {
                        Ok(b) => Next::Mem(b),
                        Err(_) => continue,
                    },
                    Ok(Some(bytes)) => match codec::decode(&bytes) {
                        Ok(b) => Next::Spooled(b, bytes.len()),
                        Err(e) => {
                            tracing::error!(error = %e, "undecodable spooled batch; dead-lettering it");
                            dead_letter_raw(&cfg, &bytes);
                            shared.stats.batches_dead_lettered.fetch_add(1, Relaxed);
                            pop_spool(&shared, bytes.len());
                            continue;
                        }
                    },
                    Err(e) => {
                        shared.stats.spool_errors.fetch_add(1, Relaxed);
                        tracing::error!(error = %e, "cannot read the spool; retrying in 1 s");
                        if past_deadline {
                            break;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    Ok(None) => {
                        tokio::select! {
                            b = rx.recv() => match b {
                                Some(b) => Next::Mem(b),
                                None => if shared.spool().is_empty() { break } else { continue },
                            },
                            _ = shared.spool_changed.notified() => continue,
                            _ = shared.shutdown.notified() => continue,
                        }
                    }
                }
            }
        };
        let (batch, spooled_len) = match next {
            Next::Mem(b) => (b, None),
            Next::Spooled(b, n) => (b, Some(n)),
        };
        let mut backoff = cfg.retry_initial;
        loop {
            let res = match tokio::time::timeout(WRITE_TIMEOUT, backend.write(&batch)).await {
                Ok(r) => r,
                Err(_) => {
                    backend.reset();
                    Err(WriteError::retryable("write timed out"))
                }
            };
            match res {
                Ok(outcome) => {
                    match outcome {
                        WriteOutcome::Written(c) => {
                            shared.stats.batches_written.fetch_add(1, Relaxed);
                            shared.stats.add_rows(c);
                        }
                        WriteOutcome::Duplicate => {
                            shared.stats.batches_duplicate.fetch_add(1, Relaxed);
                        }
                    }
                    if let Some(n) = spooled_len {
                        shared.stats.spool_replayed_batches.fetch_add(1, Relaxed);
                        pop_spool(&shared, n);
                    }
                    break;
                }
                Err(e) if e.permanent => {
                    tracing::error!(
                        batch = ?batch.id, error = %e.message,
                        "the database refused a batch for good; writing it to the dead-letter directory"
                    );
                    dead_letter(&cfg, &batch);
                    shared.stats.batches_dead_lettered.fetch_add(1, Relaxed);
                    if let Some(n) = spooled_len {
                        pop_spool(&shared, n);
                    }
                    break;
                }
                Err(e) => {
                    shared.stats.database_errors.fetch_add(1, Relaxed);
                    let deadline = shared.deadline();
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        if spooled_len.is_none() {
                            held.push_front(batch);
                            spool_rest_at_shutdown(held, &mut rx, &shared).await?;
                        }
                        return Ok(());
                    }
                    tracing::warn!(
                        error = %e.message, retry_in_ms = backoff.as_millis() as u64,
                        "database write failed; retrying (new records go to the spool meanwhile)"
                    );
                    let mut wake = Instant::now() + backoff;
                    if let Some(d) = deadline {
                        wake = wake.min(d);
                    }
                    // A batch from memory is spooled (with those behind it) before waiting, so
                    // that a crash during the outage does not lose it; it is retried from there.
                    if spooled_len.is_none() {
                        spool_in_front(batch, &mut held, &mut rx, &shared);
                        wait_until(wake, &shared).await;
                        continue 'batches;
                    }
                    wait_until(wake, &shared).await;
                    backoff = (backoff * 2).min(cfg.retry_max);
                }
            }
        }
    }
    backend.finish().await;
    Ok(())
}

/// Sleeps until `wake` or shutdown.
async fn wait_until(wake: Instant, shared: &Shared) {
    tokio::select! {
        _ = tokio::time::sleep_until(wake) => {}
        _ = shared.shutdown.notified() => {}
    }
}

fn pop_spool(shared: &Shared, n: usize) {
    let mut s = shared.spool();
    if let Err(e) = s.pop(n) {
        shared.stats.spool_errors.fetch_add(1, Relaxed);
        tracing::error!(error = %e, "cannot delete a replayed spool segment");
    }
    shared.publish_spool_gauges(&s);
    if shared.full_episode.load(Relaxed) && s.bytes() < s.max_bytes() / 100 * FULL_CLEARS_AT {
        shared.full_episode.store(false, Relaxed);
        shared.stats.spool_full_now.store(0, Relaxed);
        tracing::warn!(
            "the spool is below {FULL_CLEARS_AT} % of database.spool.max_bytes again; the \
             spool-full episode is over"
        );
    }
    drop(s);
    shared.spool_room.notify_one();
}

/// The database failed a batch taken from memory: it, the batches held after a spool error and
/// those waiting in the channel are older than anything spooled, so they go to the front of the
/// spool, in order, where they survive a crash during the outage; the writer retries them from
/// there. The spool lock is held while the channel is drained: the batcher checks for an empty
/// spool and sends under the same lock, so no newer batch can slip into the channel meanwhile.
/// If the spool cannot be written they stay in `held`, oldest first.
fn spool_in_front(
    first: Batch,
    held: &mut VecDeque<Batch>,
    rx: &mut mpsc::Receiver<Batch>,
    shared: &Shared,
) {
    let mut s = shared.spool();
    held.push_front(first);
    while let Ok(b) = rx.try_recv() {
        held.push_back(b);
    }
    let frames: Vec<Vec<u8>> = held
        .iter()
        .map(|b| {
            let mut v = Vec::with_capacity(64 * b.records.len());
            codec::encode(b, &mut v);
            v
        })
        .collect();
    match s.prepend(&frames) {
        Ok(()) => {
            shared
                .stats
                .spool_appended_batches
                .fetch_add(frames.len() as u64, Relaxed);
            shared.publish_spool_gauges(&s);
            held.clear();
        }
        Err(e) => {
            shared.stats.spool_errors.fetch_add(1, Relaxed);
            tracing::error!(
                error = %e,
                "cannot spool the batches the database refused; keeping them in memory"
            );
        }
    }
}

/// Shutdown deadline passed with the database still failing: the batches in hand (oldest first)
/// and whatever is still in the channel go to the front of the spool, in order.
async fn spool_rest_at_shutdown(
    first: VecDeque<Batch>,
    rx: &mut mpsc::Receiver<Batch>,
    shared: &Shared,
) -> Result<(), SinkError> {
    shared.overflow.store(true, Relaxed);
    shared.spool_room.notify_waiters();
    let mut frames = Vec::new();
    let mut enc = |b: &Batch| {
        let mut v = Vec::new();
        codec::encode(b, &mut v);
        frames.push(v);
    };
    first.iter().for_each(&mut enc);
    while let Some(b) = rx.recv().await {
        enc(&b);
    }
    let mut s = shared.spool();
    let n = frames.len();
    s.prepend(&frames).map_err(SinkError::Spool)?;
    shared
        .stats
        .spool_appended_batches
        .fetch_add(n as u64, Relaxed);
    shared.publish_spool_gauges(&s);
    tracing::warn!(
        batches = n,
        "database still failing at shutdown; the remaining batches were spooled"
    );
    Ok(())
}

fn dead_letter(cfg: &RunnerConfig, batch: &Batch) {
    let mut out = Vec::new();
    for r in &batch.records {
        out.extend_from_slice(super::jsonl::record_json(r).to_string().as_bytes());
        out.push(b'\n');
    }
    write_dead_letter(
        cfg,
        &format!("{:016x}-{}.jsonl", batch.id.writer, batch.id.seq),
        &out,
    );
}

fn dead_letter_raw(cfg: &RunnerConfig, bytes: &[u8]) {
    let name = format!("undecodable-{:08x}.bin", crc32fast::hash(bytes));
    write_dead_letter(cfg, &name, bytes);
}

fn write_dead_letter(cfg: &RunnerConfig, name: &str, bytes: &[u8]) {
    let r = std::fs::create_dir_all(&cfg.dead_letter_dir).and_then(|_| {
        let p = cfg.dead_letter_dir.join(name);
        let mut f = std::fs::File::create(&p)?;
        std::io::Write::write_all(&mut f, bytes)?;
        f.sync_all()
    });
    if let Err(e) = r {
        tracing::error!(error = %e, file = name, "cannot write the dead-letter file");
    }
}
