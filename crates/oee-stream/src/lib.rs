//! Library side of the `oee-stream` binary: what the CLI and the integration tests share.

pub mod allocator;
pub mod calculate;
pub mod demo;
pub mod discover;
pub mod http;
pub mod live;
pub mod log_limit;
pub mod metrics;
pub mod pipeline;
pub mod rebuild;
pub mod recording;
pub mod settings;
pub mod sink;
pub mod source;
