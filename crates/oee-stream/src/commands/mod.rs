//! One module per subcommand.

pub mod bench;
pub mod config;
pub mod decode;
pub mod demo;
pub mod run;
pub mod simulate;
