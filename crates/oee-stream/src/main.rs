//! `oee-stream`: the Sparkplug B host application and its tools.
//!
//! `main` is the only place that knows about `anyhow` and exit codes: every command returns its
//! own typed error, and a failure becomes exactly one `error: …` line on standard error and exit
//! status 1.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// jemalloc with the options of `.cargo/config.toml` (see `oee_stream::allocator`).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    exit_on_panic();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => commands::run::run(&args)?,
        Command::Decode(args) => commands::decode::run(&args)?,
        Command::CheckConfig(args) => commands::config::check(&args)?,
        Command::PrintDefaultConfig => commands::config::print_default()?,
        Command::Demo(args) => commands::demo::run(&args)?,
        Command::Simulate(args) => commands::simulate::run(&args)?,
        Command::Bench(args) => commands::bench::run(&args)?,
        Command::Discover(args) => commands::discover::run(&args)?,
        Command::Record(args) => commands::record::run(&args)?,
        Command::Replay(args) => commands::replay::run(&args)?,
    }
    Ok(())
}

/// A panic in any task is a bug. Without this, tokio would end only that task and the service
/// would run on without, say, its OEE computation while looking healthy. After the usual report
/// the whole process ends with status 70 (EX_SOFTWARE), so its supervisor restarts it; what the
/// spool accepted is kept and the births rebuild the rest.
fn exit_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::exit(70);
    }));
}

/// Error messages may quote input (metric names, topics); keep the report on one line.
fn one_line(msg: &str) -> String {
    msg.replace('\r', "\\r").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_stay_on_one_line() {
        assert_eq!(one_line("a\nb\r\nc"), "a\\nb\\r\\nc");
    }
}
