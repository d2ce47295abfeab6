//! The command line: one subcommand per tool.

use clap::{Parser, Subcommand};

use crate::commands::bench::BenchArgs;
use crate::commands::config::CheckConfigArgs;
use crate::commands::decode::DecodeArgs;
use crate::commands::demo::DemoArgs;
use crate::commands::discover::DiscoverArgs;
use crate::commands::record::RecordArgs;
use crate::commands::replay::ReplayArgs;
use crate::commands::run::RunArgs;
use crate::commands::simulate::SimulateArgs;

/// Sparkplug B host application and stream processor: turns machine data into OEE, MTTR/MTBF
/// and fault histories.
#[derive(Debug, Parser)]
#[command(name = "oee-stream", version, about, arg_required_else_help = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: MQTT (Sparkplug B primary host) in, database out, HTTP on :9100.
    #[command(
        long_about = "Run the service. The configuration is validated exactly as `check-config` \
does (and the service does not start when it is invalid); then the database sink, the MQTT \
session and pipeline, and the HTTP server (/metrics, /health, /ready) start. SIGTERM or Ctrl-C \
stops it cleanly: the STATE death is published, everything received is written to the \
database or the disk spool. See docs/operations.md."
    )]
    Run(RunArgs),

    /// Decode one Sparkplug B payload (a file, or standard input) and print it as JSON.
    #[command(
        long_about = "Decode one Sparkplug B payload and print it as one JSON object on standard \
output.\n\n\
The payload is the raw MQTT message body, read from FILE, or from standard input (until end of \
file) when FILE is absent or `-`. With --topic, the topic is parsed and added to the output as a \
`topic` object; for a host STATE topic the payload is read as a STATE message \
({\"online\",\"timestamp\"} in 3.0, ONLINE/OFFLINE in 2.2) instead of protobuf.\n\n\
On malformed input (not protobuf, an unknown datatype, a value that does not fit its datatype, \
a bad topic, an unreadable file) it prints one line starting with `error:` on standard error \
and exits with status 1. The JSON format is described in docs/decode.md.",
        after_help = "Examples:\n  \
oee-stream decode --topic spBv1.0/Plant7/DDATA/Gateway-A/Filler payload.bin\n  \
mosquitto_sub -t 'spBv1.0/Plant7/DDATA/Gateway-A/Filler' -C 1 -N | oee-stream decode --compact"
    )]
    Decode(DecodeArgs),

    /// Validate a configuration file without connecting to anything.
    #[command(
        long_about = "Validate a configuration file exactly as `run` does before it connects to \
anything: unknown keys, wrong types, impossible values, rules that conflict, missing TLS files. \
Every problem is printed on standard error as FILE:LINE:COLUMN: key.path: message (or \
$OEE_VAR: key.path: message for an environment override), all at once, and the exit status is \
1. A valid file prints its warnings and a one-line summary, exit status 0. The keys are \
described in docs/configuration.md."
    )]
    CheckConfig(CheckConfigArgs),

    /// Print the built-in default configuration, with a comment on every key.
    PrintDefaultConfig,

    /// See it work: embedded broker, simulated plant, SQLite and the dashboard in one process.
    #[command(
        long_about = "Start the whole product in one process with no configuration file: an \
embedded MQTT broker on 127.0.0.1 (a free port), a simulated Sparkplug B plant connected to it, \
the pipeline as `run` starts it, the SQLite sink in DIR/oee.db and the HTTP server with the \
dashboard on 127.0.0.1:PORT. It prints where to look and a status line every 5 s; Ctrl-C or \
SIGTERM stops it cleanly. --print-config prints the built-in configuration, a starting point \
for your own. See docs/demo.md."
    )]
    Demo(DemoArgs),

    /// Run the simulated plant against a broker (to test a setup, and for load tests).
    #[command(
        long_about = "Run the demo's simulated Sparkplug B plant against any MQTT broker: one \
MQTT session per edge node with its NDEATH as Will, NBIRTH/DBIRTH with aliases, alias-only \
DDATA, rebirth NCMDs answered. --nodes, --devices-per-node and --rate scale it up for load \
tests. Stops after --for, or on Ctrl-C (sending every node's NDEATH). See docs/demo.md.",
        after_help = "Example:\n  oee-stream simulate --broker mqtt://localhost:1883 --speed 60 --for 10m"
    )]
    Simulate(SimulateArgs),

    /// End-to-end load test on loopback: Mosquitto, the simulator, a null consumer and the service.
    #[command(
        long_about = "Start Mosquitto on a free 127.0.0.1 port, then (1) the null reference: the simulator publishing to a subscriber that discards everything, and (2) `oee-stream run` (this binary) with the demo configuration and a JSON-lines sink (or, with --sink postgres, a fresh PostgreSQL database that is dropped afterwards), fed by the same simulator for the same time, and (3) with PostgreSQL, `psql \\copy` of the service's telemetry rows into an identical empty table as the database's own limit. Prints messages/s, metrics/s, rows/s, latency from the metric's timestamp to commit, CPU, peak RSS and an RSS slope of the service (samples every second in rss.csv), expected vs written counts, and the ratios to the null and \\copy references. To saturate: --rate max (both phases publish as fast as the broker accepts), --no-deadband (the service stores every sample) and --all-metrics (8 metrics in every DDATA). Bounded by --for (at most 2h). See BENCHMARKS.md (End to end; Ratio targets).",
        after_help = "Examples:\n  oee-stream bench --nodes 100 --devices-per-node 10 --rate 10000 --for 20s\n  oee-stream bench --sink postgres --rate 20000 --for 5m --warmup 30s --skip-null --dir /tmp/i7-pg"
    )]
    Bench(BenchArgs),

    /// List the edge nodes, devices and metrics a broker's births announce; write a starting
    /// tag_mappings configuration.
    #[command(
        long_about = "Listen to spBv1.0/# (read-only: nothing is published unless --rebirth is \
given) for --for, then print every edge node, device and metric seen in births with its \
datatype, engineering unit and quality, and write a configuration file whose \
processing.tag_mappings map them: pattern rules where a metric name repeats across devices, \
exact rules otherwise, signal types guessed from names and datatypes (counters, running \
flags, state and fault codes), every guess marked `# review`. The file loads in \
`check-config` as written. See docs/tools.md.",
        after_help = "Example:\n  oee-stream discover --broker mqtt://localhost:1883 --for 60s --out plant.yml"
    )]
    Discover(DiscoverArgs),

    /// Capture spBv1.0/# with receipt times into a recording file, or list one (--show).
    #[command(
        long_about = "Subscribe to spBv1.0/# (read-only unless --rebirth is given) and append every \
message with its receipt time to a new recording file: a documented, versioned binary format, one checksummed \
record per message, synced every second; a crash loses at most the record being written. \
Connection losses are recorded too. A replay needs the births: start the recorder before the \
edge nodes, or give --rebirth to ask nodes whose NBIRTH was not recorded for one. Stops after --for, or on Ctrl-C / SIGTERM. `--show FILE` \
lists a recording. The format is described byte by byte in docs/tools.md.",
        after_help = "Examples:\n  oee-stream record --broker mqtt://localhost:1883 --out line1.oeerec --for 10m\n  oee-stream record --show line1.oeerec"
    )]
    Record(RecordArgs),

    /// Run a recording through the pipeline of `run`, driven by the recorded times.
    #[command(
        long_about = "Run a recording made by `oee-stream record` through exactly the pipeline \
of `run` (Sparkplug host sessions, normalizer, OEE engine and faults, sink) with the given \
configuration, driven by the recorded receipt times instead of the wall clock: two replays of \
one file write the same rows. As fast as possible by default; --speed N replays N times the \
recorded pace. --sink writes somewhere else than the configuration's database.url. No MQTT \
connection and no HTTP server. See docs/tools.md.",
        after_help = "Example:\n  oee-stream replay line1.oeerec --config plant.yml --sink sqlite://replay.db"
    )]
    Replay(ReplayArgs),
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn decode_arguments_parse() {
        let cli =
            Cli::try_parse_from(["oee-stream", "decode", "--topic", "spBv1.0/G/NDATA/E", "-"])
                .expect("parses");
        let Command::Decode(args) = cli.command else {
            panic!("not decode");
        };
        assert_eq!(args.topic.as_deref(), Some("spBv1.0/G/NDATA/E"));
        assert_eq!(args.file.as_deref(), Some(std::path::Path::new("-")));
        assert!(!args.compact);
        let cli = Cli::try_parse_from(["oee-stream", "decode", "--compact"]).expect("parses");
        let Command::Decode(args) = cli.command else {
            panic!("not decode");
        };
        assert!(args.compact && args.file.is_none() && args.topic.is_none());
    }
}
