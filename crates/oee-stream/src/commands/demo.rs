//! `oee-stream demo`: the whole product in one process with no configuration file: an
//! embedded MQTT broker on loopback, the simulated plant connected to it, the pipeline, SQLite
//! sink and HTTP server exactly as `run` starts them. See docs/demo.md.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use oee_stream::demo::driver::{self, DriveOptions, SimStats};
use oee_stream::demo::simulator::{SimConfig, Simulator};
use oee_stream::demo::{DEMO_CONFIG, broker, demo_settings};
use oee_stream::pipeline::PipelineStats;
use oee_stream::sink::SinkStats;
use oee_stream::source::SessionStatus;
use sparkplug::MessageType;
use tokio::sync::{oneshot, watch};

use crate::commands::config::print_diagnostics;
use crate::commands::run::{self, shutdown_signal};
use crate::commands::simulate::{parse_start, wall_ms};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Random seed of the simulated plant.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,

    /// Simulated time runs N times the wall clock (60: an hour of plant time per minute).
    #[arg(long, value_name = "N", default_value_t = 10.0)]
    pub speed: f64,

    /// Simulated time starts here (RFC 3339, e.g. 2026-01-01T06:00:00Z) instead of now: with
    /// the same seed, the same plant history.
    #[arg(long, value_name = "TIME", value_parser = parse_start)]
    pub start: Option<u64>,

    /// HTTP port of the dashboard and API (on 127.0.0.1).
    #[arg(long, value_name = "PORT", default_value_t = 9100)]
    pub port: u16,

    /// Print the demo's configuration (a starting point for your own) and exit.
    #[arg(long)]
    pub print_config: bool,

    /// Where the SQLite database (oee.db) and its spool go.
    #[arg(long, value_name = "DIR", default_value = "oee-stream-demo")]
    pub dir: PathBuf,
}

/// The running service's counters, for the status line.
type ServiceStats = (Arc<PipelineStats>, Arc<SinkStats>);

/// How often the status line is printed.
const STATUS_EVERY: Duration = Duration::from_secs(5);

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    if args.print_config {
        print!("{DEMO_CONFIG}");
        return Ok(());
    }
    if !(args.speed > 0.0 && args.speed.is_finite()) {
        bail!("--speed must be a positive number");
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = std::path::absolute(&args.dir).unwrap_or_else(|_| args.dir.clone());
    run::init_logging(
        oee_stream::settings::LogLevel::Warn,
        oee_stream::settings::LogFormat::Text,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(demo(args, dir))
}

async fn demo(args: &DemoArgs, dir: PathBuf) -> anyhow::Result<()> {
    let broker = broker::Embedded::start()
        .await
        .context("starting the embedded MQTT broker")?;
    let broker_addr = broker.addr;
    let settings = match demo_settings(broker_addr.port(), args.port, &dir) {
        Ok(s) => oee_stream::settings::Settings {
            // The plant's time, not the wall clock's, moves the OEE windows (`--start` may be in
            // the past, and the plant runs `--speed` times faster).
            oee_follows_wall_clock: false,
            ..s
        },
        Err(diags) => {
            print_diagnostics(&diags);
            bail!("the built-in demo configuration is invalid");
        }
    };

    // The simulator starts with the service and is stopped first on shutdown, so its NDEATHs
    // reach the pipeline before the pipeline drains.
    let sim = Simulator::new(SimConfig {
        seed: args.seed,
        start_ms: args.start.unwrap_or_else(wall_ms),
        ..SimConfig::default()
    });
    let machines = sim.machine_count();
    let nodes = sim.node_count();
    let sim_stats = Arc::new(SimStats::default());
    let (stop_sim, sim_stopped) = oneshot::channel::<()>();
    // The simulator starts once the pipeline's MQTT session is up, so the first births are
    // seen (a late start would be repaired by rebirth requests, but reads worse).
    let (session_tx, session_rx) = oneshot::channel::<watch::Receiver<SessionStatus>>();
    let drive_opts = DriveOptions {
        host: broker_addr.ip().to_string(),
        port: broker_addr.port(),
        speed: args.speed,
        client_prefix: "oee-demo-sim".to_string(),
        max_rate: false,
    };
    let simulator = {
        let sim_stats = Arc::clone(&sim_stats);
        tokio::spawn(async move {
            if let Ok(mut status) = session_rx.await {
                let _ = tokio::time::timeout(
                    Duration::from_secs(10),
                    status.wait_for(|s| s.sessions > 0),
                )
                .await;
            }
            driver::drive(sim, drive_opts, sim_stats, async {
                let _ = sim_stopped.await;
            })
            .await
        })
    };

    let service_stats: Arc<Mutex<Option<ServiceStats>>> = Arc::default();
    let status = {
        let service_stats = Arc::clone(&service_stats);
        let sim_stats = Arc::clone(&sim_stats);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(STATUS_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                let guard = service_stats.lock().ok().and_then(|g| g.clone());
                let (messages, rows) = guard.map_or((0, 0), |(p, s)| {
                    let m: u64 = p.messages.iter().map(|m| m.load(Ordering::Relaxed)).sum();
                    let s = s.snapshot();
                    (
                        m,
                        s.rows_telemetry + s.rows_events + s.rows_oee_windows + s.rows_faults,
                    )
                });
                println!(
                    "[demo] simulated {}  messages {messages}  rows written {rows}  machines {machines}  edge nodes online {}/{nodes}",
                    iso_time(sim_stats.sim_time_ms.load(Ordering::Relaxed)),
                    sim_stats.nodes_online.load(Ordering::Relaxed),
                );
            }
        })
    };

    let db = dir.join("oee.db");
    let port = args.port;
    let speed = args.speed;
    let on_start = {
        let service_stats = Arc::clone(&service_stats);
        move |p: &oee_stream::pipeline::PipelineHandle, s: &oee_stream::sink::SinkHandle| {
            if let Ok(mut g) = service_stats.lock() {
                *g = Some((Arc::clone(p.stats()), Arc::clone(&s.stats)));
            }
            let _ = session_tx.send(p.status());
            println!(
                "oee-stream demo: a simulated plant ({machines} machines on {nodes} lines), speed {speed}×"
            );
            println!("  dashboard  http://127.0.0.1:{port}/");
            println!("  database   {} (SQLite)", db.display());
            println!(
                "  broker     mqtt://{broker_addr} (embedded; try `mosquitto_sub -p {} -t 'spBv1.0/#' -v`)",
                broker_addr.port()
            );
            println!("  config     oee-stream demo --print-config");
            println!("Ctrl-C stops it.");
        }
    };
    let shutdown = {
        let service_stats = Arc::clone(&service_stats);
        let sim_stats = Arc::clone(&sim_stats);
        async move {
            shutdown_signal().await;
            println!("[demo] stopping");
            let online = sim_stats.nodes_online.load(Ordering::Relaxed);
            let pipeline = service_stats
                .lock()
                .ok()
                .and_then(|g| g.clone())
                .map(|(p, _)| p);
            let deaths0 = pipeline
                .as_ref()
                .map_or(0, |p| p.messages_of(MessageType::NDeath));
            let _ = stop_sim.send(());
            match simulator.await {
                Ok(Err(e)) => tracing::warn!("simulator: {e:#}"),
                Err(e) => tracing::warn!("simulator task: {e}"),
                Ok(Ok(())) => {}
            }
            // Let the nodes' NDEATHs reach the pipeline (bounded), so the database records
            // them offline.
            if let Some(p) = pipeline {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                while p.messages_of(MessageType::NDeath) < deaths0 + online
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    };
    let served = run::serve(settings, shutdown, on_start).await;
    status.abort();
    broker.shutdown().await;
    served?;
    println!("[demo] stopped; the data stays in {}", dir.display());
    Ok(())
}

/// `2026-01-01T10:00:00Z` from ms since the epoch (UTC).
pub(crate) fn iso_time(ms: u64) -> String {
    match i64::try_from(ms).map(jiff::Timestamp::from_millisecond) {
        Ok(Ok(t)) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        _ => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_time(1_767_225_600_000), "2026-01-01T00:00:00Z");
        assert_eq!(iso_time(1_709_210_096_000), "2024-02-29T12:34:56Z");
    }
}
