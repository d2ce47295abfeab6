//! Sparkplug B for oee-stream: the payload codec, typed values, topics, STATE payloads and the
//! host session state machine.
//!
//! This crate does no I/O, spawns no tasks and never reads the clock: callers pass bytes and the
//! current time in, and get decoded payloads, samples and rebirth requests out.

pub mod datatype;
pub mod host;
pub mod json;
pub mod payload;
pub mod proto;
pub mod state;
pub mod topic;
pub mod value;

pub use datatype::DataType;
pub use host::{
    Host, HostConfig, HostCounters, HostEvent, HostUsage, MetricInfo, MetricSample, NodeInfo,
    OfflineReason, Quality, RebirthMode, RebirthReason, RebirthRequest, RejectReason, SampleFlags,
};
pub use payload::{
    DataSet, DecodeError, EncodeError, MetaData, Metric, MetricValue, Parameter, Payload,
    PropertySet, PropertyValue, Template,
};
pub use state::{HostState, StateError};
pub use topic::{MessageType, StateVersion, Topic, TopicError};
pub use value::{Value, ValueError, WireValue};
