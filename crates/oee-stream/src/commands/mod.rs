//! One module per subcommand.

pub mod bench;
pub mod config;
pub mod connect;
pub mod decode;
pub mod demo;
pub mod discover;
pub mod record;
pub mod replay;
pub mod run;
pub mod simulate;
