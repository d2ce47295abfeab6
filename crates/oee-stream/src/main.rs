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
        Command::Run(args) => {
            one_malloc_arena();
            commands::run::run(&args)?
        }
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

/// glibc's malloc gives every thread that allocates an arena of its own (up to 8 per core), and
/// memory freed in one is not reused by another: with the service's worker threads that kept
/// ~10 MB more RSS after a few minutes than a single arena (BENCHMARKS.md, run I). The arena count
/// is read only when a process starts, and `mallopt` would need `unsafe`, so `run` replaces
/// itself once (`exec`: same pid, same arguments) with `MALLOC_ARENA_MAX=1` set. An operator's
/// own `MALLOC_ARENA_MAX` is kept; if the exec fails the service runs with glibc's default.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_malloc_arena() {
    use std::os::unix::process::CommandExt;
    const VAR: &str = "MALLOC_ARENA_MAX";
    if std::env::var_os(VAR).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(VAR, "1")
        .exec();
    eprintln!("warning: could not restart with {VAR}=1 ({err}); going on without");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}

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
