//! `oee-stream replay FILE --config CONFIG [--sink URL] [--speed N]`: runs a recording through
//! the pipeline of `run` (shards, Sparkplug host sessions, normalizer, OEE task, sink), driven
//! by the recorded receipt times instead of the wall clock. No MQTT, no HTTP. See
//! docs/tools.md.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use oee_stream::recording::Reader;
use oee_stream::settings;
use oee_stream::source::replay::{End, Progress};
use oee_stream::{pipeline, sink};

use crate::commands::config::{Invalid, print_diagnostics};
use crate::commands::demo::iso_time;
use crate::commands::run::{init_logging, shutdown_signal};

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The recording (made by `oee-stream record`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// The configuration to replay with (tag mappings, OEE, faults, database); checked as
    /// `check-config` does.
    #[arg(long, short, value_name = "CONFIG", env = "OEE_CONFIG")]
    pub config: PathBuf,

    /// Write to this sink instead of the configuration's `database.url`: postgres://…,
    /// sqlite://PATH or jsonl://PATH (jsonl://- for standard output).
    #[arg(long, value_name = "URL")]
    pub sink: Option<String>,

    /// Replay N times as fast as recorded (1 = the recorded pace). Default: as fast as possible.
    #[arg(long, value_name = "N")]
    pub speed: Option<f64>,
}

/// How often a progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    if let Some(s) = args.speed
        && !(s > 0.0 && s.is_finite())
    {
        bail!("--speed must be a positive number");
    }
    let mut settings = match settings::check_config(&args.config) {
        Ok(s) => s,
        Err(diags) => {
            print_diagnostics(&diags);
            return Err(Invalid::new(&args.config, diags.len()).into());
        }
    };
    if let Some(url) = &args.sink {
        settings
            .set_database_url(url)
            .map_err(|e| anyhow::anyhow!("--sink: {e}"))?;
    }
    // A spool of its own: the service's spool (database.spool.dir) may hold the live run's
    // rows, which must not end up in the replay's sink, nor the replay's in the service's.
    let spool = std::env::temp_dir().join(format!("oee-stream-replay-{}", std::process::id()));
    settings.file.database.spool.dir = spool.clone();
    let recording = Reader::open(&args.file)?;
    init_logging(settings.file.log.level, settings.file.log.format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    eprintln!(
        "replaying {} into {}{}",
        args.file.display(),
        settings.file.database.url,
        args.speed
            .map(|s| format!(" at {s}× the recorded pace"))
            .unwrap_or_default()
    );
    let started = Instant::now();
    let (progress, rows) = runtime.block_on(async {
        let sink = sink::start(&settings)
            .await
            .context("starting the database sink")?;
        let sink_stats = Arc::clone(&sink.stats);
        let (mut pipeline, progress) =
            pipeline::start_replay(&settings, sink.sender.clone(), recording, args.speed);
        let mut status = tokio::time::interval(PROGRESS_EVERY);
        status.tick().await;
        let interrupted = {
            let finished = pipeline.source_finished();
            tokio::pin!(finished);
            let stop = shutdown_signal();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    () = &mut finished => break false,
                    () = &mut stop => break true,
                    _ = status.tick() => eprintln!("{}", progress_line(&progress)),
                }
            }
        };
        if interrupted {
            eprintln!("interrupted: stopping the replay and writing what was replayed");
        }
        pipeline.shutdown().await;
        sink.shutdown().await.context("draining the sink")?;
        Ok::<_, anyhow::Error>((progress, sink_stats.snapshot()))
    })?;
    if rows.spool_batches == 0 && !spool.join("dead-letter").exists() {
        let _ = std::fs::remove_dir_all(&spool);
    } else {
        eprintln!(
            "warning: not every row could be written to the sink; what is left is in {} \
             (spooled batches, dead-letter files)",
            spool.display()
        );
    }
    eprintln!(
        "{} in {:.1} s: {} telemetry rows, {} events, {} OEE window rows, {} fault rows",
        progress_line(&progress),
        started.elapsed().as_secs_f64(),
        rows.rows_telemetry,
        rows.rows_events,
        rows.rows_oee_windows,
        rows.rows_faults
    );
    match progress.end() {
        Some(End::Complete { torn: Some(t) }) => eprintln!(
            "warning: {}: the last {} bytes (from byte {}) are not a whole record (the recorder \
             stopped while writing it); everything before them was replayed",
            args.file.display(),
            t.bytes,
            t.offset
        ),
        Some(End::Failed(e)) => bail!("the replay stopped early: {e}"),
        _ => {}
    }
    Ok(())
}

fn progress_line(p: &Progress) -> String {
    let first = p.first_ms.load(Ordering::Relaxed);
    let last = p.last_ms.load(Ordering::Relaxed);
    format!(
        "replayed {} records ({} messages, {} connection losses), recorded {} to {}",
        p.records.load(Ordering::Relaxed),
        p.messages.load(Ordering::Relaxed),
        p.connection_losses.load(Ordering::Relaxed),
        iso_time(first),
        iso_time(last),
    )
}
