//! What the host emits: samples, node/device lifecycle events, rebirth requests, rejections.

use std::fmt;
use std::sync::Arc;

use thiserror::Error;

use crate::datatype::DataType;
use crate::payload::{DecodeError, MetricValue, PropertySet};
use crate::topic::TopicError;
use crate::value::{Value, ValueError, WireValue};

/// A Sparkplug quality code. The specification defines 0 = BAD, 192 = GOOD, 500 = STALE; other
/// codes are kept as they are and count as not good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Quality(pub i32);

impl Quality {
    pub const BAD: Quality = Quality(0);
    pub const GOOD: Quality = Quality(192);
    pub const STALE: Quality = Quality(500);

    pub fn is_good(self) -> bool {
        self == Quality::GOOD
    }

    /// The `Quality` property of a metric; a missing property means GOOD. A value that is not
    /// an integer is ignored (GOOD); an integer outside i32 is truncated to its low 32 bits.
    pub fn from_properties(props: Option<&PropertySet>) -> Option<Quality> {
        let v = props?.get("Quality")?;
        // The specification mandates Int32; DATA may leave the type out (untyped wire value).
        // The `as` casts keep the low 32 bits, which is what an Int32 on the wire is.
        let code = match &v.value {
            MetricValue::Value(Value::Int32(i)) => *i,
            MetricValue::Value(Value::Int16(i)) => i32::from(*i),
            MetricValue::Value(Value::Int8(i)) => i32::from(*i),
            MetricValue::Value(Value::UInt8(i)) => i32::from(*i),
            MetricValue::Value(Value::UInt16(i)) => i32::from(*i),
            MetricValue::Value(Value::UInt32(i)) => *i as i32,
            MetricValue::Value(Value::Int64(i)) => *i as i32,
            MetricValue::Value(Value::UInt64(i)) => *i as i32,
            MetricValue::Untyped(WireValue::Int(i)) => *i as i32,
            MetricValue::Untyped(WireValue::Long(i)) => *i as i32,
            _ => return None,
        };
        Some(Quality(code))
    }
}

impl Default for Quality {
    fn default() -> Self {
        Quality::GOOD
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Quality::BAD => f.write_str("BAD"),
            Quality::GOOD => f.write_str("GOOD"),
            Quality::STALE => f.write_str("STALE"),
            Quality(c) => write!(f, "{c}"),
        }
    }
}

/// Flags of a sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SampleFlags {
    /// `is_historical`: store-and-forward data. It never updates the host's live state; route it
    /// to history only.
    pub historical: bool,
    /// `is_transient`: for live logic, not for the historian.
    pub transient: bool,
    /// The value comes from an NBIRTH or DBIRTH.
    pub birth: bool,
    /// A STALE marker written on NDEATH, DDEATH, a new birth or connection loss; `value` is
    /// `None` and `quality` is STALE.
    pub stale: bool,
    /// The message arrived after its gap was given up (its seq was behind the expected one, at a
    /// position given up). Emitted so that no data is lost, but like historical data it does not
    /// update live state.
    pub late: bool,
}

/// One metric value, flattened (template members are named `<instance>/<member>`).
#[derive(Clone, Debug, PartialEq)]
pub struct MetricSample {
    pub group: Arc<str>,
    pub edge_node: Arc<str>,
    pub device: Option<Arc<str>>,
    pub name: Arc<str>,
    /// The metric's alias from its birth (template members have none).
    pub alias: Option<u64>,
    /// The datatype from the birth.
    pub datatype: DataType,
    /// `None` means null (is_null, or a STALE marker).
    pub value: Option<Value>,
    /// Event time in ms UTC: the metric timestamp, else the payload timestamp, else `received_at`.
    /// For STALE markers: the receipt time of an NDEATH, the payload time of a DDEATH, the time
    /// of the connection loss.
    pub timestamp: u64,
    /// When the host received the message (ms UTC, the `now_ms` passed in).
    pub received_at: u64,
    pub quality: Quality,
    pub flags: SampleFlags,
    /// The seq of the message that carried the sample (`None` for STALE markers not caused by a
    /// seq-carrying message).
    pub seq: Option<u8>,
    /// The bdSeq of the node's current session.
    pub bd_seq: Option<u64>,
}

/// Why the host asks an edge node for a rebirth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RebirthReason {
    /// A message for a node without a current NBIRTH.
    UnknownNode,
    /// A DDATA/DDEATH for a device without a current DBIRTH.
    UnknownDevice,
    /// A DATA metric whose alias or name is not in the birth.
    UnknownMetric,
    /// An NBIRTH or DBIRTH that could not be used.
    MalformedBirth,
    /// An undecodable or malformed DATA/DDEATH (with `rebirth_on_malformed`).
    MalformedData,
    /// A seq gap that did not fill within the reorder timeout.
    SequenceGap,
}

impl fmt::Display for RebirthReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RebirthReason::UnknownNode => "unknown edge node",
            RebirthReason::UnknownDevice => "unknown device",
            RebirthReason::UnknownMetric => "unknown metric",
            RebirthReason::MalformedBirth => "malformed birth",
            RebirthReason::MalformedData => "malformed data",
            RebirthReason::SequenceGap => "sequence gap",
        })
    }
}

/// An NCMD `Node Control/Rebirth` to publish (QoS 0, retain false).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebirthRequest {
    pub group: Arc<str>,
    pub edge_node: Arc<str>,
    pub reason: RebirthReason,
    /// `spBv1.0/<group>/NCMD/<edge node>`.
    pub topic: String,
    /// Encoded Sparkplug B payload: timestamp, no seq, one metric `Node Control/Rebirth`
    /// (Boolean true, by name, no alias).
    pub payload: Vec<u8>,
}

/// Why a node or device went offline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OfflineReason {
    /// NDEATH (node and its devices) or DDEATH (the device).
    Death,
    /// A new NBIRTH ended the previous session of the node (devices wait for their DBIRTH).
    NewBirth,
    /// An NBIRTH for the node could not be used: the old session is over, the new one unknown.
    RejectedBirth,
    /// The host lost its broker connection.
    ConnectionLost,
}

/// Why a message or a metric was rejected.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum RejectReason {
    #[error("invalid topic: {0}")]
    Topic(#[from] TopicError),
    #[error("undecodable payload: {0}")]
    Decode(#[from] DecodeError),
    #[error("edge node has no current session (no NBIRTH seen, or it died)")]
    UnknownNode,
    #[error("device has no current DBIRTH")]
    UnknownDevice,
    #[error("metric {metric} is not in the current birth")]
    UnknownMetric { metric: String },
    #[error("metric has neither a name nor an alias")]
    MetricWithoutId,
    #[error("metric {metric}: {source}")]
    Value { metric: String, source: ValueError },
    #[error("template definition {metric} outside an NBIRTH")]
    TemplateDefinition { metric: String },
    #[error("malformed birth: {0}")]
    MalformedBirth(String),
    #[error("missing seq")]
    MissingSeq,
    #[error("seq {0} is out of range 0-255")]
    SeqOutOfRange(u64),
    #[error("seq {seq} is behind the expected {expected}: {what} dropped")]
    Late {
        seq: u8,
        expected: u8,
        what: &'static str,
    },
    #[error("seq {0} is a duplicate (already received, or from before the NBIRTH): dropped")]
    Duplicate(u8),
    #[error("limit reached: {0}")]
    Limit(&'static str),
}

/// Everything a [`Host`](super::Host) produces.
#[derive(Clone, Debug, PartialEq)]
pub enum HostEvent {
    Sample(MetricSample),
    NodeOnline {
        group: Arc<str>,
        edge_node: Arc<str>,
        bd_seq: Option<u64>,
        seq: u8,
        /// NBIRTH payload timestamp, else receipt time.
        timestamp: u64,
        received_at: u64,
    },
    NodeOffline {
        group: Arc<str>,
        edge_node: Arc<str>,
        bd_seq: Option<u64>,
        timestamp: u64,
        reason: OfflineReason,
    },
    DeviceOnline {
        group: Arc<str>,
        edge_node: Arc<str>,
        device: Arc<str>,
        timestamp: u64,
        received_at: u64,
    },
    DeviceOffline {
        group: Arc<str>,
        edge_node: Arc<str>,
        device: Arc<str>,
        timestamp: u64,
        reason: OfflineReason,
    },
    Rebirth(RebirthRequest),
    Rejected {
        topic: String,
        reason: RejectReason,
    },
}

impl HostEvent {
    /// The sample, if this is one.
    pub fn as_sample(&self) -> Option<&MetricSample> {
        match self {
            HostEvent::Sample(s) => Some(s),
            _ => None,
        }
    }
}
