//! One module per subcommand.

pub mod config;
pub mod decode;
pub mod demo;
pub mod run;
pub mod simulate;
