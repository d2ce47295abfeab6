//! What the pipeline hands to the sinks: the telemetry and events streams, and the OEE window
//! and fault-instance tables. Each sink (PostgreSQL, SQLite, JSON lines) writes these records in
//! batches; the pipeline only ever sees a bounded queue of [`Record`]s.
//!
//! [`start`] opens the sink `database.url` selects and returns a [`SinkHandle`]: send records on
//! `handle.sender` (awaiting `send` is the back-pressure), read `handle.stats`, and call
//! [`SinkHandle::shutdown`] at the end, which drains everything to the database or the spool.
//! The queue → batch → writer/spool machinery is shared ([`runner`]); the database specifics
//! live in one folder per sink. Tables: docs/tables.md; operations: docs/operations.md.

mod batch;
mod codec;
pub mod jsonl;
pub mod memory;
pub mod postgres;
mod record;
mod runner;
pub mod spool;
pub mod sqlite;
mod stats;
#[doc(hidden)]
pub mod testdata;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::settings::{DatabaseTarget, Settings};

pub use batch::{Batch, BatchId, RowCounts};
pub use record::{EventKind, EventRow, FaultRow, OeeWindowRow, Record, TelemetryRow};
pub use runner::{WriteError, WriteOutcome};
pub use stats::{SinkStats, SinkStatsSnapshot};

/// Errors that stop a sink from starting or from shutting down cleanly.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("database.url: {0}")]
    Config(String),
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    #[error("SQLite {path}: {message}")]
    Sqlite { path: String, message: String },
    #[error("JSON lines output {path}: {source}")]
    Jsonl {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Spool(#[from] spool::SpoolError),
    #[error("sink task failed: {0}")]
    Task(String),
    #[error("spool {dir}: a batch cannot be decoded: {message}")]
    Undecodable { dir: String, message: String },
}

/// The batches waiting in the spool directory `dir`, oldest first, decoded: what the next
/// start replays. Reads only (see [`spool::read_frames`]); for inspecting the spool of a
/// stopped or killed process.
pub fn spooled_batches(dir: &std::path::Path) -> Result<Vec<Batch>, SinkError> {
    spool::read_frames(dir)?
        .iter()
        .map(|f| {
            codec::decode(f).map_err(|e| SinkError::Undecodable {
                dir: dir.display().to_string(),
                message: e.0,
            })
        })
        .collect()
}

/// The running sink.
pub struct SinkHandle {
    /// The bounded record queue (`database.queue_capacity` records).
    pub sender: mpsc::Sender<Record>,
    pub stats: Arc<SinkStats>,
    close: Arc<Notify>,
    shared: Arc<runner::Shared>,
    shutdown_timeout: Duration,
    batcher: JoinHandle<Result<(), SinkError>>,
    writer: JoinHandle<Result<(), SinkError>>,
}

impl SinkHandle {
    /// Stop taking records, write what is queued (retrying the database for up to
    /// `database.shutdown_timeout_ms`), and spool whatever could not be written. Records sent
    /// on clones of `sender` after this started are refused (`send` returns an error).
    pub async fn shutdown(self) -> Result<(), SinkError> {
        let SinkHandle {
            sender,
            close,
            shared,
            shutdown_timeout,
            batcher,
            writer,
            ..
        } = self;
        drop(sender);
        *shared.deadline.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(tokio::time::Instant::now() + shutdown_timeout);
        close.notify_one();
        shared.shutdown.notify_waiters();
        let b = batcher.await;
        let w = writer.await;
        b.map_err(|e| SinkError::Task(e.to_string()))??;
        w.map_err(|e| SinkError::Task(e.to_string()))??;
        Ok(())
    }

    /// Records waiting in the queue now.
    pub fn queue_depth(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }
}

/// The database side of a sink.
pub enum Backend {
    Postgres(Box<postgres::PgWriter>),
    Sqlite(sqlite::SqliteWriter),
    Jsonl(jsonl::JsonlWriter),
    /// In-memory, for tests of the shared machinery.
    Memory(memory::MemoryWriter),
}

impl Backend {
    async fn write(&mut self, batch: &Batch) -> Result<runner::WriteOutcome, runner::WriteError> {
        match self {
            Backend::Postgres(w) => w.write(batch).await,
            Backend::Sqlite(w) => blocking(|| w.write(batch)),
            Backend::Jsonl(w) => blocking(|| w.write(batch)),
            Backend::Memory(w) => w.write(batch),
        }
    }

    /// Drop the connection after a timeout; the next write reconnects.
    fn reset(&mut self) {
        if let Backend::Postgres(w) = self {
            w.reset()
        }
    }

    async fn finish(&mut self) {
        if let Backend::Jsonl(w) = self {
            w.flush();
        }
    }
}

/// Run blocking database work without stalling other tasks on a multi-threaded runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Open the sink `settings.database` selects (creating and migrating the schema), open or
/// create the spool, and start the batcher and writer tasks. A PostgreSQL server that cannot be
/// reached yet is not an error: records go to the spool until it can.
pub async fn start(settings: &Settings) -> Result<SinkHandle, SinkError> {
    let db = &settings.file.database;
    let backend = match &settings.database {
        DatabaseTarget::Postgres(url) => {
            Backend::Postgres(Box::new(postgres::PgWriter::start(url, db.clone()).await?))
        }
        DatabaseTarget::Sqlite(path) => Backend::Sqlite(sqlite::SqliteWriter::open(path)?),
        DatabaseTarget::JsonLines(path) => {
            Backend::Jsonl(jsonl::JsonlWriter::open(path.as_deref())?)
        }
    };
    start_with_backend(backend, db)
}

/// [`start`] with a backend built by the caller (tests, benchmarks).
pub fn start_with_backend(
    backend: Backend,
    db: &crate::settings::DatabaseConfig,
) -> Result<SinkHandle, SinkError> {
    let stats = Arc::new(SinkStats::default());
    let (spool, report) =
        spool::Spool::open(&db.spool.dir, db.spool.max_bytes, db.spool.segment_bytes)?;
    if report.frames > 0 {
        tracing::info!(
            batches = report.frames,
            segments = report.segments,
            dir = %db.spool.dir.display(),
            "spool holds batches from an earlier run; replaying them first"
        );
    }
    stats
        .spool_bytes
        .store(spool.bytes(), std::sync::atomic::Ordering::Relaxed);
    stats
        .spool_batches
        .store(spool.frames(), std::sync::atomic::Ordering::Relaxed);
    let shared = Arc::new(runner::Shared {
        spool: std::sync::Mutex::new(spool),
        spool_changed: Notify::new(),
        spool_room: Notify::new(),
        overflow: std::sync::atomic::AtomicBool::new(false),
        full_episode: std::sync::atomic::AtomicBool::new(false),
        stats: stats.clone(),
        deadline: std::sync::Mutex::new(None),
        shutdown: Notify::new(),
    });
    let cfg = Arc::new(runner::RunnerConfig {
        batch_size: db.batch_size.max(1) as usize,
        batch_max: db.queue_capacity.max(db.batch_size).max(1) as usize,
        linger: Duration::from_millis(db.batch_max_latency_ms.max(1)),
        retry_initial: Duration::from_millis(db.retry_initial_ms.max(1)),
        retry_max: Duration::from_millis(db.retry_max_ms.max(db.retry_initial_ms).max(1)),
        dead_letter_dir: db.spool.dir.join("dead-letter"),
    });
    let (sender, rx) = mpsc::channel(db.queue_capacity.max(1) as usize);
    let (btx, brx) = mpsc::channel(runner::HANDOFF_BATCHES);
    let close = Arc::new(Notify::new());
    let batcher = tokio::spawn(runner::batcher(
        rx,
        close.clone(),
        btx,
        shared.clone(),
        cfg.clone(),
    ));
    let writer = tokio::spawn(runner::writer(backend, brx, shared.clone(), cfg));
    Ok(SinkHandle {
        sender,
        stats,
        close,
        shared,
        shutdown_timeout: Duration::from_millis(db.shutdown_timeout_ms),
        batcher,
        writer,
    })
}
