//! `oee-stream run --config FILE`: the service. Validates the configuration exactly as
//! `check-config` does, then starts the sink, the MQTT source and pipeline, and the HTTP server,
//! and runs until SIGTERM or Ctrl-C. Shutdown publishes the STATE death, lets the shards finish
//! what they received, and drains the sink to the database or the spool: nothing received is
//! lost.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use oee_stream::http::{self, HttpState};
use oee_stream::settings::{self, LogFormat, LogLevel, Settings};
use oee_stream::{metrics, pipeline, rebuild, sink};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing_subscriber::EnvFilter;

use crate::commands::config::{Invalid, print_diagnostics};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The configuration file (YAML); see `oee-stream print-default-config`.
    #[arg(long, short, value_name = "FILE", env = "OEE_CONFIG")]
    pub config: PathBuf,

    /// Log format, overriding `log.format`: `text` (human) or `json` (one object per line).
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
    pub log_format: Option<String>,
}

/// How often the one-line status summary is logged.
const STATUS_EVERY: Duration = Duration::from_secs(60);

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let settings = match settings::check_config(&args.config) {
        Ok(s) => s,
        Err(diags) => {
            print_diagnostics(&diags);
            return Err(Invalid::new(&args.config, diags.len()).into());
        }
    };
    let format = match args.log_format.as_deref() {
        Some("json") => LogFormat::Json,
        Some(_) => LogFormat::Text,
        None => settings.file.log.format,
    };
    init_logging(settings.file.log.level, format);
    for w in &settings.warnings {
        tracing::warn!("{w}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(settings, shutdown_signal(), |_, _| {}))
}

pub(crate) fn init_logging(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    };
    // RUST_LOG, when set, refines the configured level (e.g. `oee_stream::sink=debug`).
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second initialisation (tests) is harmless: the first subscriber stays.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Starts the sink, the pipeline and the HTTP server as `run` does, calls `on_start` once they
/// run, and stops cleanly when `shutdown` completes (`run`: SIGTERM or Ctrl-C). `oee-stream
/// demo` starts the service through this too.
pub(crate) async fn serve(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    on_start: impl FnOnce(&pipeline::PipelineHandle, &sink::SinkHandle),
) -> anyhow::Result<()> {
    // Secrets are redacted by these sections' `Debug` (docs/reliability.md, Security).
    tracing::debug!(mqtt = ?settings.file.mqtt, sparkplug = ?settings.file.sparkplug,
        database = ?settings.file.database, http = ?settings.file.http, "effective configuration");
    // Before the sink starts: its spool replay must not be read twice (database and spool).
    let rebuild = match rebuild::load(&settings).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "the OEE state cannot be rebuilt from stored telemetry; windows and fault instances open at the restart start afresh");
            None
        }
    };
    let sink = sink::start(&settings)
        .await
        .context("starting the database sink")?;
    let pipeline = pipeline::start(&settings, sink.sender.clone(), rebuild.as_ref())
        .context("starting the MQTT source")?;
    let listener = TcpListener::bind(settings.http_listen)
        .await
        .with_context(|| format!("http.listen: cannot listen on {}", settings.http_listen))?;
    let state = HttpState {
        stats: Arc::clone(pipeline.stats()),
        status: pipeline.status(),
        registry: Arc::new(metrics::registry(
            Arc::clone(pipeline.stats()),
            Arc::clone(&sink.stats),
        )),
        tag_mappings: settings.domain.rules.len(),
        live: pipeline.live(),
        acknowledge: settings.file.http.acknowledge.clone(),
    };
    let (stop_http, http_stopped) = oneshot::channel::<()>();
    let http = tokio::spawn(http::serve(listener, state, async {
        let _ = http_stopped.await;
    }));
    tracing::info!(
        broker = %settings.file.mqtt.url,
        host_id = %settings.file.mqtt.host_id,
        http = %settings.http_listen,
        "oee-stream running"
    );

    on_start(&pipeline, &sink);

    let mut status = tokio::time::interval(STATUS_EVERY);
    status.tick().await;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = status.tick() => log_status(&pipeline, &sink),
        }
    }

    tracing::info!("shutting down: publishing the STATE death and draining the pipeline");
    pipeline.shutdown().await;
    let sink_stats = Arc::clone(&sink.stats);
    let drained = sink.shutdown().await;
    let _ = stop_http.send(());
    let _ = http.await;
    let s = sink_stats.snapshot();
    tracing::info!(
        telemetry_rows = s.rows_telemetry,
        event_rows = s.rows_events,
        oee_window_rows = s.rows_oee_windows,
        fault_rows = s.rows_faults,
        spooled_batches = s.spool_batches,
        "stopped"
    );
    drained.context("draining the sink")
}

fn log_status(pipeline: &pipeline::PipelineHandle, sink: &sink::SinkHandle) {
    let p = pipeline.stats();
    let s = sink.stats.snapshot();
    let messages: u64 = p.messages.iter().map(|m| m.load(Ordering::Relaxed)).sum();
    tracing::info!(
        connected = pipeline.status().borrow().connected,
        messages,
        signals = p.signals.load(Ordering::Relaxed),
        unmapped = p.unmapped.load(Ordering::Relaxed),
        seq_gaps = p.host_counters().seq_gaps,
        rebirths_sent = p.rebirths_sent.load(Ordering::Relaxed),
        telemetry_rows = s.rows_telemetry,
        database_errors = s.database_errors,
        spool_bytes = s.spool_bytes,
        "status"
    );
}

/// SIGTERM (systemd, Kubernetes) or Ctrl-C.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
