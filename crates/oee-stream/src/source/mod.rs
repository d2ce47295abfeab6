//! Where messages come from: the MQTT session of the Sparkplug host application.
//!
//! [`mqtt`] owns the connection (TCP or TLS with client certificates), the host STATE
//! protocol, reconnects and the publishing of rebirth requests; [`tls`] builds the TLS client
//! configuration once from `mqtt.tls`. The pipeline ([`crate::pipeline`]) starts it.
//! [`replay`] feeds the pipeline from a recording instead (`oee-stream replay`); [`listen`] is
//! the read-only subscriber of `oee-stream record` and `oee-stream discover`.

pub mod listen;
pub mod mqtt;
pub mod replay;
pub mod tls;

pub use mqtt::{SessionStatus, SourceConfig, SourceError};

use std::sync::atomic::Ordering;

use sparkplug::{MessageType, Topic, TopicError};

use crate::pipeline::{PipelineStats, Router};

/// What a source does with every message on a Sparkplug topic, received live or replayed:
/// counts it, and routes data (not commands, not STATE) to its shard. A topic that is not
/// Sparkplug B is counted and its error returned for the caller to log.
pub async fn route_message(
    router: &Router,
    stats: &PipelineStats,
    topic: &str,
    payload: bytes::Bytes,
    received_at: u64,
) -> Result<(), TopicError> {
    match Topic::parse(topic) {
        Ok(Topic::State { .. }) => {
            stats.state_messages.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Topic::Message {
            group,
            message_type,
            edge_node,
            ..
        }) => {
            stats.count_message(message_type);
            if !matches!(message_type, MessageType::NCmd | MessageType::DCmd) {
                router
                    .route(group, edge_node, topic, payload, received_at)
                    .await;
            }
        }
        Err(e) => {
            stats.count_invalid_topic();
            return Err(e);
        }
    }
    Ok(())
}
