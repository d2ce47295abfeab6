//! The rows of the four tables (see docs/tables.md once the sinks exist).

use std::sync::Arc;

use oee_core::normalize::SignalTag;

/// One normalized sample for the `telemetry` table. The tag (asset, signal type, unit and the
/// Sparkplug identity) is shared between all samples of one metric, so a row costs no string
/// copies.
#[derive(Clone, Debug, PartialEq)]
pub struct TelemetryRow {
    pub tag: Arc<SignalTag>,
    /// Event time (the Sparkplug metric timestamp), ms since the Unix epoch.
    pub time_ms: i64,
    /// Numeric value (booleans as 0/1); `None` for text, null and STALE samples.
    pub value: Option<f64>,
    /// Text values.
    pub value_text: Option<String>,
    pub quality: i32,
    pub is_historical: bool,
    /// When the host received the message, ms since the Unix epoch.
    pub received_at_ms: i64,
    /// The Sparkplug message's seq and the node session's bdSeq: with the identity and time they
    /// identify a sample, so a retried batch can be recognised.
    pub seq: Option<u8>,
    pub bd_seq: Option<u64>,
    /// The metric's position in its Sparkplug payload.
    pub index: u16,
    /// The Sparkplug integer width of the value (8, 16, 32, 64; 0: not an integer): a counter's
    /// rollover width when the OEE engine is rebuilt from stored telemetry.
    pub int_bits: u8,
}

impl TelemetryRow {
    /// The sample's order among samples of the same time, as the OEE engine breaks ties
    /// ([`crate::calculate::tie_break`]): stored, so a rebuild from `telemetry` orders alike.
    pub fn order_key(&self) -> i64 {
        crate::calculate::tie_break(self.bd_seq, self.seq, usize::from(self.index)) as i64
    }
}

/// What an `events` row records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    NodeOnline,
    NodeOffline,
    DeviceOnline,
    DeviceOffline,
    RebirthRequested,
    FaultTransition,
    OeeWindow,
    SignalBad,
}

impl EventKind {
    /// The `event_type` column value.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::NodeOnline => "node_online",
            EventKind::NodeOffline => "node_offline",
            EventKind::DeviceOnline => "device_online",
            EventKind::DeviceOffline => "device_offline",
            EventKind::RebirthRequested => "rebirth_requested",
            EventKind::FaultTransition => "fault_transition",
            EventKind::OeeWindow => "oee_window",
            EventKind::SignalBad => "signal_bad",
        }
    }
}

/// One row of the `events` stream.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRow {
    pub time_ms: i64,
    pub kind: EventKind,
    pub site_id: Option<String>,
    pub line_id: Option<String>,
    pub machine_id: Option<String>,
    pub severity: Option<i32>,
    /// A stable id: the same event computed again (replay, retry) has the same id.
    pub id: String,
    pub payload: serde_json::Value,
}

/// One row of `oee_windows`, keyed by (scope, entity, window kind, window start) and updated in
/// place when a revision changes it. Durations in ms; ratios `None` where the denominator is 0.
#[derive(Clone, Debug, PartialEq)]
pub struct OeeWindowRow {
    /// `machine` or `line`.
    pub scope: &'static str,
    pub site_id: String,
    pub line_id: String,
    /// Empty for line rows.
    pub machine_id: String,
    /// `hour`, `shift`, `day` or `rolling`.
    pub window_kind: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub planned_ms: i64,
    pub run_ms: i64,
    pub setup_ms: i64,
    pub unknown_ms: i64,
    pub ideal_ms: f64,
    pub fully_productive_ms: f64,
    pub total_count: i64,
    pub good_count: i64,
    pub reject_count: i64,
    pub failures: i64,
    pub repair_ms: i64,
    pub availability: Option<f64>,
    pub performance: Option<f64>,
    pub quality: Option<f64>,
    pub oee: Option<f64>,
    pub mtbf_s: Option<f64>,
    pub mttr_s: Option<f64>,
    pub flags: Vec<String>,
    pub revision: i32,
}

/// One row of `faults`: a fault instance with its current state.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FaultRow {
    /// Stable instance id.
    pub id: String,
    pub site_id: String,
    pub line_id: String,
    pub machine_id: String,
    pub code: i64,
    /// `ACTIVE`, `ACKNOWLEDGED` or `RESOLVED` (`SUPERSEDED` in the table for an instance that
    /// late data folded into another).
    pub state: String,
    pub severity: i32,
    pub first_active_ms: i64,
    pub last_change_ms: i64,
    pub resolved_ms: Option<i64>,
    pub acknowledged_ms: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub occurrences: i64,
    pub flags: Vec<String>,
}

/// What the pipeline sends to the sinks.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Telemetry(TelemetryRow),
    Event(EventRow),
    OeeWindow(OeeWindowRow),
    Fault(FaultRow),
}
