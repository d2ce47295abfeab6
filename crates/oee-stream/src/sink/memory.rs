//! An in-memory backend for tests of the shared machinery (queue, batcher, spool, retries): it
//! keeps a ledger of batch ids like the SQL sinks and can be told to fail.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use super::batch::{Batch, BatchId, split};
use super::runner::{WriteError, WriteOutcome};

#[derive(Clone, Default)]
pub struct MemoryWriter {
    /// Committed batches in commit order.
    pub committed: Arc<Mutex<Vec<Batch>>>,
    ledger: Arc<Mutex<HashSet<BatchId>>>,
    /// While true every write fails (a database outage).
    pub fail: Arc<AtomicBool>,
    /// The next N writes commit and then report a failure (the commit happened, the
    /// acknowledgement was lost).
    pub lose_acks: Arc<AtomicU64>,
    /// Write attempts.
    pub attempts: Arc<AtomicU64>,
}

impl MemoryWriter {
    pub fn write(&mut self, batch: &Batch) -> Result<WriteOutcome, WriteError> {
        self.attempts.fetch_add(1, SeqCst);
        if self.fail.load(SeqCst) {
            return Err(WriteError::retryable("simulated outage"));
        }
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        if !ledger.insert(batch.id) {
            return Ok(WriteOutcome::Duplicate);
        }
        let counts = split(&batch.records).counts();
        self.committed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(batch.clone());
        if self
            .lose_acks
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(WriteError::retryable("simulated lost acknowledgement"));
        }
        Ok(WriteOutcome::Written(counts))
    }
}
