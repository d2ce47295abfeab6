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
