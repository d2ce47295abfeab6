//! Where messages come from: the MQTT session of the Sparkplug host application.
//!
//! [`mqtt`] owns the connection (TCP or TLS with client certificates), the host STATE
//! protocol, reconnects and the publishing of rebirth requests; [`tls`] builds the TLS client
//! configuration once from `mqtt.tls`. The pipeline ([`crate::pipeline`]) starts it.

pub mod mqtt;
pub mod tls;

pub use mqtt::{SessionStatus, SourceConfig, SourceError};
