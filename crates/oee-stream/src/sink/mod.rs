//! What the pipeline hands to the sinks: the telemetry and events streams, and the OEE window
//! and fault-instance tables. Each sink (PostgreSQL, SQLite, JSON lines) writes these records in
//! batches; the pipeline only ever sees a bounded queue of [`Record`]s.

mod record;

pub use record::{EventKind, EventRow, FaultRow, OeeWindowRow, Record, TelemetryRow};
