//! `oee-stream bench`: an end-to-end load test on loopback. Starts its own Mosquitto on a free
//! 127.0.0.1 port, then runs
//!
//! 1. the null reference: the simulator publishing to an MQTT subscriber that counts and
//!    discards every message (what the broker alone delivers on this machine), and
//! 2. the service under test: this binary's `run` with the demo configuration and a JSON-lines
//!    sink (or PostgreSQL: a fresh database, dropped afterwards, see [`postgres`]), fed by the
//!    same simulator at the same rate for the same time,
//! 3. with `--sink postgres`, the `psql \copy` reference: the service's telemetry rows loaded
//!    into an identical empty table by `psql`, the database's own limit.
//!
//! It reports messages/s and metrics/s, rows/s committed, the latency from each telemetry
//! row's metric timestamp to its commit (p50/p99/max), the service's CPU and RSS (sampled every
//! second into `rss.csv`, with a slope), and expected vs written counts. Every phase is bounded
//! in time. See BENCHMARKS.md ("End to end").

mod latency;
mod load;
mod postgres;
mod rss;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use oee_stream::demo::driver::{self, DriveOptions, SimStats};
use oee_stream::demo::simulator::{GROUP, SimConfig, Simulator};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::commands::run::init_logging;
use crate::commands::simulate::{parse_duration, wall_ms};
use latency::{LatencyHist, Percentiles};
use load::Rate;
use postgres::{BenchDatabases, CommitLatency, CopyReference, DbCounts};
use rss::{RssLog, RssSummary};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Edge nodes of the simulated plant (one MQTT session each).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub nodes: usize,

    /// Machines (Sparkplug devices) per edge node.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub devices_per_node: usize,

    /// Offered DDATA messages per second over all machines, or `max`. The simulator advances
    /// every 50 ms and a machine reports at the first tick at or after it is due, so the real
    /// rate is at most 20 messages/s per machine, and below the offered rate unless 1000 ×
    /// machines ÷ rate is a multiple of 50 ms. `max`: in both phases the simulator steps again
    /// as soon as the broker has taken the last step's messages (every machine reports at every
    /// step, at most once per millisecond), so the null reference is the broker's limit; the
    /// messages the broker drops for a subscriber that falls behind are reported as lost, and do
    /// not fail the run.
    #[arg(long, value_name = "N|max", default_value = "10000", value_parser = load::parse_rate)]
    pub rate: Rate,

    /// The service runs the demo configuration without its deadbands (`deadband_*` and
    /// `max_silence_s` keys removed), so every sample of every DDATA becomes a telemetry row.
    #[arg(long)]
    pub no_deadband: bool,

    /// Every DDATA carries all 8 metrics of its machine, not only those that changed (the
    /// process values always): with --no-deadband, 8 telemetry rows per message.
    #[arg(long)]
    pub all_metrics: bool,

    /// How long the simulator publishes in each phase (at most 2h; the service's RSS is sampled
    /// every second all along).
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration, default_value = "20s")]
    pub duration: Duration,

    /// Phase 2 only: the simulator runs this long before the measured --for window (the OEE
    /// task's start-up output and any backlog drain in it; nothing in it is measured except
    /// peak RSS and the totals). At most 30m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "20s")]
    pub warmup: Duration,

    /// Sink of the service: `jsonl` (a file in the work directory; latency is measured from
    /// it), `null` (JSON lines to /dev/null: no latency figures) or `postgres` (a fresh
    /// database on the --database-url server, dropped afterwards; latency to commit, row
    /// counts from the database and the `psql \copy` reference).
    #[arg(long, value_name = "SINK", default_value = "jsonl", value_parser = ["jsonl", "null", "postgres"])]
    pub sink: String,

    /// `--sink postgres`: the server, as a URL of a database the user can connect to (the
    /// bench creates `oee_bench_<pid>` and `oee_bench_<pid>_copy` there and drops them at the
    /// end; the user needs CREATEDB).
    #[arg(
        long,
        value_name = "URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pub database_url: String,

    /// `--sink postgres`: load at most this many of the service's telemetry rows in the `psql
    /// \copy` reference (0 = all; the CSV file takes ~200 bytes a row in the work directory
    /// while it runs).
    #[arg(long, value_name = "N", default_value_t = 5_000_000)]
    pub copy_max_rows: u64,

    /// Extra environment for the service, overriding its configuration (the demo's), e.g.
    /// `--service-env OEE_DATABASE__BATCH_MAX_LATENCY_MS=50`. Repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env)]
    pub service_env: Vec<(String, String)>,

    /// Skip the null reference (phase 1).
    #[arg(long)]
    pub skip_null: bool,

    /// Skip the service (phase 2).
    #[arg(long)]
    pub skip_service: bool,

    /// Random seed of the simulated plant.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,

    /// The Mosquitto binary (default: the first of /usr/sbin, /usr/local/sbin, /usr/bin).
    #[arg(long, value_name = "PATH")]
    pub mosquitto: Option<PathBuf>,

    /// Work directory (config, sink file, rss.csv, logs); kept afterwards. Default: a fresh
    /// directory under the system temp directory, removed at the end.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

impl BenchArgs {
    /// The sink as reported: `jsonl`, `null`, `postgres`, or the scheme of an
    /// `OEE_DATABASE__URL` override (refused with `--sink postgres`).
    fn sink_name(&self) -> String {
        match self
            .service_env
            .iter()
            .rev()
            .find(|(k, _)| k == "OEE_DATABASE__URL")
        {
            Some((_, url)) if self.sink != "postgres" => {
                url.split("://").next().unwrap_or(url).to_string()
            }
            _ => self.sink.clone(),
        }
    }
}

/// Upper bound for any wait on start-up or drain.
const WAIT: Duration = Duration::from_secs(15);
/// Upper bound for the sink to write its backlog after the simulator stopped.
const DRAIN: Duration = Duration::from_secs(120);
const MAX_FOR: Duration = Duration::from_secs(2 * 3600);
const MAX_WARMUP: Duration = Duration::from_secs(30 * 60);
/// How often the sink file is read for latency, and /metrics scraped.
const TAIL_EVERY: Duration = Duration::from_millis(10);
const SCRAPE_EVERY: Duration = Duration::from_secs(1);

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    init_logging(
        oee_stream::settings::LogLevel::Warn,
        oee_stream::settings::LogFormat::Text,
    );
    if args.nodes == 0 || args.devices_per_node == 0 {
        bail!("--nodes and --devices-per-node must be at least 1");
    }
    let machines = args.nodes * args.devices_per_node;
    if let Rate::PerSecond(rate) = args.rate
        && rate > machines as f64 * 20.0
    {
        bail!(
            "--rate: the simulator sends at most 20 messages/s per machine ({machines} machines: \
             {}); add machines",
            machines * 20
        );
    }
    if args.duration > MAX_FOR || args.duration.is_zero() {
        bail!("--for must be between 1 ms and 2h");
    }
    if args.warmup > MAX_WARMUP {
        bail!("--warmup must be at most 30m");
    }
    if args.sink == "postgres"
        && args
            .service_env
            .iter()
            .any(|(k, _)| k == "OEE_DATABASE__URL")
    {
        bail!(
            "--sink postgres writes to a fresh database on --database-url's server; \
             drop --service-env OEE_DATABASE__URL"
        );
    }
    let (dir, remove_dir) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("oee-bench-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let r = runtime.block_on(bench(args, &dir));
    if remove_dir {
        let _ = std::fs::remove_dir_all(&dir);
    }
    r
}

async fn bench(args: &BenchArgs, dir: &Path) -> anyhow::Result<()> {
    let dbs = if args.sink == "postgres" {
        let dbs = BenchDatabases::create(&args.database_url).await?;
        eprintln!(
            "bench: PostgreSQL database {} (dropped at the end)",
            dbs.shown(&dbs.service)
        );
        Some(dbs)
    } else {
        None
    };
    let r = phases(args, dir, dbs.as_ref()).await;
    if let Some(dbs) = &dbs {
        dbs.drop_all().await;
    }
    r
}

async fn phases(args: &BenchArgs, dir: &Path, dbs: Option<&BenchDatabases>) -> anyhow::Result<()> {
    let load_before = loadavg();
    let broker = Mosquitto::start(args.mosquitto.as_deref(), dir).await?;
    eprintln!(
        "bench: Mosquitto on 127.0.0.1:{}, {} nodes × {} machines, {}, {:?} per phase",
        broker.port, args.nodes, args.devices_per_node, args.rate, args.duration
    );
    let null = if args.skip_null {
        None
    } else {
        eprintln!("bench: phase 1, null consumer");
        Some(null_phase(args, &broker).await?)
    };
    let service = if args.skip_service {
        None
    } else {
        eprintln!("bench: phase 2, oee-stream run");
        Some(service_phase(args, &broker, dir, dbs).await?)
    };
    let broker_cpu = broker.cpu_seconds();
    drop(broker);
    let copy = match dbs {
        Some(dbs) if service.is_some() => {
            eprintln!("bench: phase 3, psql \\copy reference");
            let db = service_settings(args)?.file.database;
            Some(
                postgres::copy_reference(
                    dbs,
                    dir,
                    args.copy_max_rows,
                    db.compress_after_days,
                    db.retention_days,
                )
                .await?,
            )
        }
        _ => None,
    };
    let load_after = loadavg();
    print_report(
        args,
        null.as_ref(),
        service.as_ref(),
        copy.as_ref(),
        broker_cpu,
        &load_before,
        &load_after,
    );
    if let Some(s) = &service {
        if s.rows_lost() {
            bail!("rows were lost (see the table)");
        }
        // At --rate max the broker dropping what a subscriber cannot take is the measurement.
        if args.rate != Rate::Max && s.received < s.published {
            bail!("messages were lost (see the table)");
        }
    }
    Ok(())
}

/// The service's settings as it loads them: the demo configuration with `--service-env`.
fn service_settings(args: &BenchArgs) -> anyhow::Result<oee_stream::settings::Settings> {
    let env: BTreeMap<String, String> = args.service_env.iter().cloned().collect();
    let config = load::service_config(args.no_deadband);
    oee_stream::settings::load_settings(&config, "the demo configuration", &env).map_err(|ds| {
        let msgs: Vec<String> = ds.iter().map(|d| d.to_string()).collect();
        anyhow::anyhow!("--service-env: {}", msgs.join("; "))
    })
}

// ---------------------------------------------------------------------------------------------
// The broker

struct Mosquitto {
    port: u16,
    child: Child,
}

impl Mosquitto {
    async fn start(path: Option<&Path>, dir: &Path) -> anyhow::Result<Mosquitto> {
        let bin = match path {
            Some(p) => p.to_path_buf(),
            None => [
                "/usr/sbin/mosquitto",
                "/usr/local/sbin/mosquitto",
                "/usr/bin/mosquitto",
            ]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .context("mosquitto is not installed (or pass --mosquitto PATH)")?,
        };
        let port = free_port()?;
        let conf = dir.join("mosquitto.conf");
        let user = if is_root() { "user root\n" } else { "" };
        std::fs::write(
            &conf,
            format!(
                "{user}persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n\
                 listener {port} 127.0.0.1\nallow_anonymous true\n"
            ),
        )?;
        let log = std::fs::File::create(dir.join("mosquitto.log"))?;
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut m = Mosquitto { port, child };
        let deadline = Instant::now() + WAIT;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(m);
            }
            if let Ok(Some(status)) = m.child.try_wait() {
                bail!(
                    "mosquitto exited with {status}: {}",
                    std::fs::read_to_string(dir.join("mosquitto.log")).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                bail!("mosquitto did not listen on 127.0.0.1:{port}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(self.child.id())
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

fn free_port() -> anyhow::Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

// ---------------------------------------------------------------------------------------------
// The simulator

fn sim(args: &BenchArgs, port: u16, prefix: &str) -> (Simulator, DriveOptions) {
    let cfg = SimConfig {
        group: GROUP.to_string(),
        nodes: args.nodes,
        devices_per_node: args.devices_per_node,
        seed: args.seed,
        start_ms: wall_ms(),
        report_every_ms: args
            .rate
            .report_every_ms(args.nodes * args.devices_per_node),
        node_deaths: false,
        all_metrics: args.all_metrics,
    };
    let opts = DriveOptions {
        host: "127.0.0.1".to_string(),
        port,
        speed: 1.0,
        client_prefix: prefix.to_string(),
        max_rate: args.rate == Rate::Max,
    };
    (Simulator::new(cfg), opts)
}

/// What a simulator run sent.
#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    messages: u64,
    ddata_metrics: u64,
    /// Rebirth requests the simulator answered.
    rebirths: u64,
    /// MQTT sessions of the simulator's nodes lost and opened again (new bdSeq, new births).
    reconnects: u64,
    secs: f64,
}

async fn drive_for(
    args: &BenchArgs,
    port: u16,
    prefix: &str,
    duration: Duration,
    stats: Arc<SimStats>,
) -> anyhow::Result<Sent> {
    let (simulator, opts) = sim(args, port, prefix);
    let t0 = Instant::now();
    driver::drive(
        simulator,
        opts,
        Arc::clone(&stats),
        tokio::time::sleep(duration),
    )
    .await?;
    Ok(Sent {
        messages: stats.published.load(Ordering::Relaxed),
        ddata_metrics: stats.ddata_metrics.load(Ordering::Relaxed),
        rebirths: stats.rebirth_requests.load(Ordering::Relaxed),
        reconnects: stats.reconnects.load(Ordering::Relaxed),
        secs: t0.elapsed().as_secs_f64(),
    })
}

// ---------------------------------------------------------------------------------------------
// Phase 1: the null consumer

struct NullResult {
    sent: Sent,
    received: u64,
    /// Messages/s between the first and the last message received.
    rate: f64,
    /// DDATA payload timestamp → delivered to the null consumer, ms: the simulator's and the
    /// broker's share of every latency below.
    latency: Option<Percentiles>,
}

async fn null_phase(args: &BenchArgs, broker: &Mosquitto) -> anyhow::Result<NullResult> {
    let mut mo = MqttOptions::new("oee-bench-null", ("127.0.0.1", broker.port));
    mo.set_keep_alive(30);
    mo.set_clean_session(true);
    mo.set_max_packet_size(1 << 24, 1 << 24);
    let (client, mut eventloop) = AsyncClient::builder(mo).capacity(1024).build();
    client
        .subscribe(format!("spBv1.0/{GROUP}/#"), QoS::AtMostOnce)
        .await?;
    let count = Arc::new(AtomicU64::new(0));
    let subscribed = Arc::new(AtomicBool::new(false));
    let times: Arc<std::sync::Mutex<(Option<Instant>, Option<Instant>)>> = Arc::default();
    let lat = Arc::new(std::sync::Mutex::new(LatencyHist::new()?));
    let consumer = {
        let (count, subscribed, times, lat) = (
            Arc::clone(&count),
            Arc::clone(&subscribed),
            Arc::clone(&times),
            Arc::clone(&lat),
        );
        tokio::spawn(async move {
            let mut first = None;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let now = Instant::now();
                        if contains(&p.topic, b"/DDATA/")
                            && let Ok(payload) = sparkplug::Payload::decode(&p.payload)
                            && let Some(ts) = payload.timestamp
                            && let Ok(mut l) = lat.lock()
                        {
                            l.record(wall_ms() as i64 - ts as i64);
                        }
                        first.get_or_insert(now);
                        count.fetch_add(1, Ordering::Relaxed);
                        // The lock is uncontended; a store per message is cheap next to MQTT.
                        if let Ok(mut t) = times.lock() {
                            *t = (first, Some(now));
                        }
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        subscribed.store(true, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("bench null consumer: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
    };
    let deadline = Instant::now() + WAIT;
    while !subscribed.load(Ordering::Relaxed) {
        if Instant::now() > deadline {
            consumer.abort();
            bail!("the null consumer was not subscribed in time");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent = drive_for(
        args,
        broker.port,
        "oee-bench-null-sim",
        args.duration,
        Arc::default(),
    )
    .await?;
    wait_stable(WAIT, || async { Some(count.load(Ordering::Relaxed)) }).await;
    consumer.abort();
    let received = count.load(Ordering::Relaxed);
    let (first, last) = times.lock().map(|t| *t).unwrap_or_default();
    let secs = match (first, last) {
        (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
        _ => sent.secs,
    };
    let latency = lat.lock().ok().and_then(|l| l.percentiles());
    Ok(NullResult {
        sent,
        received,
        rate: received as f64 / secs,
        latency,
    })
}

/// Polls `value` until it has not changed for a second (bounded by `limit`); returns when it
/// last changed, if it settled.
async fn wait_stable<F, Fut>(limit: Duration, mut value: F) -> Option<Instant>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<u64>>,
{
    let deadline = Instant::now() + limit;
    let mut last = value().await;
    let mut since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let v = value().await;
        if v != last {
            last = v;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_secs(1) {
            return Some(since);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Phase 2: the service

struct ServiceResult {
    sent: Sent,
    published: u64,
    received: u64,
    /// DDATA and DBIRTH messages received (whole run).
    ddata: u64,
    dbirth: u64,
    /// Sequence gaps the service saw (whole run).
    seq_gaps: u64,
    /// Waiting in the pipeline shards' queues, the sink's queue and the spool (batches) at the
    /// last scrape before the simulator stopped.
    queued_at_stop: Option<[f64; 3]>,
    /// From the simulator's stop until the rows written stopped changing.
    drain_secs: f64,
    /// Steady-state rates (between the first scrape after the warm-up and the last one before
    /// the simulator stopped).
    msg_rate: f64,
    signal_rate: f64,
    row_rate: f64,
    /// Rows/s committed by table over the steady window, in [`TABLES`] order.
    table_rates: [f64; 4],
    steady_secs: f64,
    /// Published − received over the steady window (± messages in flight at its ends).
    steady_lost: f64,
    records_out: u64,
    rows_written: u64,
    /// Rows written by table at the end, in [`TABLES`] order.
    written: [u64; 4],
    batches_written: u64,
    file_rows: u64,
    signals: u64,
    /// Service CPU over the steady window, in cores (1.0 = one core busy).
    cpu_cores: f64,
    cpu_total_s: f64,
    peak_rss_kb: Option<u64>,
    /// VmRSS after the run, before the service is stopped.
    end_rss_kb: Option<u64>,
    rss: Option<RssSummary>,
    rss_csv: PathBuf,
    /// JSON-lines sink: from the file.
    latency: Option<Latency>,
    pipeline_p: Option<(f64, f64)>,
    /// `--sink postgres`: what the database holds after the run.
    db: Option<DbResult>,
}

/// The tables, in the order of [`ServiceResult::written`].
const TABLES: [&str; 4] = ["telemetry", "events", "oee_windows", "faults"];

struct DbResult {
    /// At the same moment as the final /metrics scrape (drained, before SIGTERM).
    counts: DbCounts,
    /// After the service stopped (its shutdown may flush a last batch).
    final_counts: DbCounts,
    latency: CommitLatency,
}

impl ServiceResult {
    /// Whether anything went missing after the broker: handed to the sink → committed (the
    /// sink's counters) → in the database (its own counts).
    fn rows_lost(&self) -> bool {
        let db_short = self.db.as_ref().is_some_and(|d| {
            d.counts.telemetry != self.written[0] as i64
                || d.counts.events != self.written[1] as i64
                || d.counts.batch_rows != self.rows_written as i64
                || d.counts.batches != self.batches_written as i64
        });
        self.rows_written < self.records_out || db_short
    }
}

struct Latency {
    /// metric timestamp → line readable in the sink file, ms.
    commit: Percentiles,
    /// metric timestamp → `received_at`, ms.
    receive: Percentiles,
}

struct Service {
    child: Child,
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The final /metrics scrape and, with PostgreSQL, the database's counts at the same moment:
/// taken between two scrapes that agree on the rows and batches written (retried a few times).
async fn final_counts(
    http_port: u16,
    dbs: Option<&BenchDatabases>,
) -> anyhow::Result<(Scrape, Option<DbCounts>)> {
    let written = |m: &Scrape| {
        (
            m.sum("oee_stream_rows_written_total"),
            m.sum("oee_stream_batches_written_total"),
        )
    };
    let mut attempt = 0;
    loop {
        let before = scrape(http_port).await.context("scraping /metrics")?;
        let Some(dbs) = dbs else {
            return Ok((before, None));
        };
        let counts = postgres::counts(&dbs.url(&dbs.service)).await?;
        let after = scrape(http_port).await.context("scraping /metrics")?;
        attempt += 1;
        if written(&before) == written(&after) || attempt == 5 {
            return Ok((after, Some(counts)));
        }
    }
}

/// One /metrics scrape during the run, with the service's CPU and the simulator's count.
struct Sample {
    secs: f64,
    metrics: Scrape,
    cpu_s: Option<f64>,
    published: u64,
}

async fn service_phase(
    args: &BenchArgs,
    broker: &Mosquitto,
    dir: &Path,
    dbs: Option<&BenchDatabases>,
) -> anyhow::Result<ServiceResult> {
    let http_port = free_port()?;
    let config = dir.join("oee-stream.yml");
    std::fs::write(&config, load::service_config(args.no_deadband))?;
    let sink_path = match args.sink.as_str() {
        "null" => PathBuf::from("/dev/null"),
        _ => dir.join("sink.jsonl"),
    };
    let database_url = match dbs {
        Some(d) => d.url(&d.service),
        None => format!("jsonl://{}", sink_path.display()),
    };
    let _ = std::fs::remove_file(dir.join("sink.jsonl"));
    let exe = std::env::current_exe().context("finding this binary")?;
    let log = std::fs::File::create(dir.join("oee-stream.log"))?;
    let child = Command::new(exe)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("OEE_MQTT__URL", format!("mqtt://127.0.0.1:{}", broker.port))
        .env("OEE_MQTT__HOST_ID", "oee-bench")
        .env("OEE_HTTP__LISTEN", format!("127.0.0.1:{http_port}"))
        .env("OEE_DATABASE__URL", &database_url)
        .env(
            "OEE_DATABASE__SPOOL__DIR",
            dir.join("spool").display().to_string(),
        )
        .envs(args.service_env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting oee-stream run")?;
    let pid = child.id();
    let mut service = Service { child };

    // Ready = broker session up.
    let deadline = Instant::now() + WAIT;
    loop {
        if http_get(http_port, "/ready")
            .await
            .is_some_and(|b| b.contains("\"ready\":true") || b.contains("\"ready\": true"))
        {
            break;
        }
        if let Ok(Some(status)) = service.child.try_wait() {
            bail!(
                "oee-stream run exited with {status}: {}",
                std::fs::read_to_string(dir.join("oee-stream.log")).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            bail!("oee-stream run was not ready in time");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The latency tailer (JSON lines) or the commit poller (PostgreSQL).
    let stop_tail = Arc::new(AtomicBool::new(false));
    let measure_from_ms = (wall_ms() + args.warmup.as_millis() as u64) as i64;
    let tailer = if args.sink_name() == "jsonl" {
        let (path, stop) = (sink_path.clone(), Arc::clone(&stop_tail));
        let hists = (LatencyHist::new()?, LatencyHist::new()?);
        Some(tokio::task::spawn_blocking(move || {
            tail(&path, &stop, measure_from_ms, hists)
        }))
    } else {
        None
    };
    let stop_poll = Arc::new(AtomicBool::new(false));
    let poller =
        dbs.map(|d| postgres::spawn_commit_poller(d.url(&d.service), Arc::clone(&stop_poll)));

    // The simulator, with /metrics scraped and RSS sampled every second meanwhile. Only the
    // scrapes at the two ends of the steady window are kept (a run may last hours).
    let mut rss_log = RssLog::create(&dir.join("rss.csv"))?;
    let steady_from = args.warmup.as_secs_f64().max(1.0);
    let sim_done = Arc::new(AtomicBool::new(false));
    let sim_stats = Arc::new(SimStats::default());
    let scraper = {
        let sim_done = Arc::clone(&sim_done);
        let sim_stats = Arc::clone(&sim_stats);
        tokio::spawn(async move {
            let (mut first, mut last): (Option<Sample>, Option<Sample>) = (None, None);
            let t0 = Instant::now();
            let mut every = tokio::time::interval(SCRAPE_EVERY);
            while !sim_done.load(Ordering::Relaxed) {
                every.tick().await;
                let secs = t0.elapsed().as_secs_f64();
                if let Some(kb) = proc_status_kb(pid, "VmRSS:") {
                    rss_log.push(secs, kb, proc_status_kb(pid, "VmHWM:"));
                }
                let published = sim_stats.published.load(Ordering::Relaxed);
                if let Some(metrics) = scrape(http_port).await {
                    let s = Sample {
                        secs,
                        metrics,
                        cpu_s: cpu_seconds(pid),
                        published,
                    };
                    if first.is_none() && secs >= steady_from {
                        first = Some(s);
                    } else {
                        last = Some(s);
                    }
                }
            }
            (first, last, rss_log)
        })
    };
    let sent = drive_for(
        args,
        broker.port,
        "oee-bench-sim",
        args.warmup + args.duration,
        sim_stats,
    )
    .await;
    sim_done.store(true, Ordering::Relaxed);
    let (first, last, rss_log) = scraper.await.context("the /metrics scraper failed")?;
    let sent = sent?;

    // Drain: wait until the rows written stop changing.
    let drain_from = Instant::now();
    let drain_secs = wait_stable(DRAIN, || async {
        scrape(http_port)
            .await
            .map(|m| m.sum("oee_stream_rows_written_total") as u64)
    })
    .await
    .map_or(f64::NAN, |at| (at - drain_from).as_secs_f64());
    let (end, drained_counts) = final_counts(http_port, dbs).await?;
    let cpu_total_s = cpu_seconds(pid).unwrap_or(f64::NAN);
    let peak_rss_kb = proc_status_kb(pid, "VmHWM:");
    let end_rss_kb = proc_status_kb(pid, "VmRSS:");
    stop_tail.store(true, Ordering::Relaxed);
    let (lat_commit, lat_receive, file_rows) = match tailer {
        Some(t) => {
            let (c, r, n) = t.await.context("the sink file tailer failed")?;
            (c.percentiles(), r.percentiles(), n)
        }
        None => (None, None, 0),
    };

    // Stop the service cleanly (SIGTERM), bounded.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let deadline = Instant::now() + WAIT;
    while matches!(service.child.try_wait(), Ok(None)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(service);

    // The database's side, once nothing writes any more.
    stop_poll.store(true, Ordering::Relaxed);
    let db = match (dbs, poller) {
        (Some(dbs), Some(poller)) => {
            let commits = poller.await.context("the commit poller failed")??;
            let url = dbs.url(&dbs.service);
            Some(DbResult {
                counts: drained_counts.unwrap_or_default(),
                final_counts: postgres::counts(&url).await?,
                latency: postgres::commit_latency(&url, &commits, measure_from_ms).await?,
            })
        }
        _ => None,
    };

    // Steady window: from the first sample after the warm-up (at least 1 s) to the last one.
    let rows_written_series = |t: &str| format!("oee_stream_rows_written_total{{table=\"{t}\"}}");
    let (msg_rate, signal_rate, row_rate, table_rates, cpu_cores, steady_secs, steady_lost) =
        match (&first, &last) {
            (Some(a), Some(b)) if b.secs > a.secs => {
                let dt = b.secs - a.secs;
                let d = |name: &str| (b.metrics.sum(name) - a.metrics.sum(name)) / dt;
                let table_rates = TABLES.map(|t| {
                    let series = rows_written_series(t);
                    (b.metrics.series(&series) - a.metrics.series(&series)) / dt
                });
                let received = b.metrics.sum("oee_stream_mqtt_messages_total")
                    - a.metrics.sum("oee_stream_mqtt_messages_total");
                (
                    d("oee_stream_mqtt_messages_total"),
                    d("oee_stream_signals_total"),
                    d("oee_stream_rows_written_total"),
                    table_rates,
                    match (a.cpu_s, b.cpu_s) {
                        (Some(x), Some(y)) => (y - x) / dt,
                        _ => f64::NAN,
                    },
                    dt,
                    (b.published - a.published) as f64 - received,
                )
            }
            _ => (
                f64::NAN,
                f64::NAN,
                f64::NAN,
                [f64::NAN; 4],
                f64::NAN,
                0.0,
                f64::NAN,
            ),
        };
    let latency = match (lat_commit, lat_receive) {
        (Some(commit), Some(receive)) => Some(Latency { commit, receive }),
        _ => None,
    };
    Ok(ServiceResult {
        sent,
        published: sent.messages,
        received: end.sum("oee_stream_mqtt_messages_total") as u64,
        ddata: end.series("oee_stream_mqtt_messages_total{type=\"DDATA\"}") as u64,
        dbirth: end.series("oee_stream_mqtt_messages_total{type=\"DBIRTH\"}") as u64,
        seq_gaps: end.sum("oee_stream_seq_gaps_total") as u64,
        queued_at_stop: last.as_ref().map(|l| {
            [
                l.metrics.sum("oee_stream_shard_queue_depth"),
                l.metrics.sum("oee_stream_sink_queue_depth"),
                l.metrics.sum("oee_stream_spool_batches"),
            ]
        }),
        drain_secs,
        msg_rate,
        signal_rate,
        row_rate,
        table_rates,
        steady_secs,
        steady_lost,
        records_out: end.sum("oee_stream_records_out_total") as u64,
        rows_written: end.sum("oee_stream_rows_written_total") as u64,
        written: TABLES.map(|t| end.series(&rows_written_series(t)) as u64),
        batches_written: end.sum("oee_stream_batches_written_total") as u64,
        file_rows,
        signals: end.sum("oee_stream_signals_total") as u64,
        cpu_cores,
        cpu_total_s,
        peak_rss_kb,
        end_rss_kb,
        rss: rss_log.summary(args.warmup.as_secs_f64()),
        rss_csv: rss_log.path().to_path_buf(),
        latency,
        pipeline_p: end.histogram_quantiles(
            "stream_processor_pipeline_duration_seconds",
            "stage=\"total\"",
        ),
        db,
    })
}

/// Follows the sink file until `stop`: for every telemetry line, the time from its metric
/// timestamp to now (when the line was first seen, i.e. committed and flushed) and to its
/// `received_at`, recorded in `(commit, receive)`. Returns them and the telemetry lines read.
fn tail(
    path: &Path,
    stop: &AtomicBool,
    from_ms: i64,
    (mut commit, mut receive): (LatencyHist, LatencyHist),
) -> (LatencyHist, LatencyHist, u64) {
    let mut lines = 0u64;
    let mut file = None;
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut finishing = false;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if file.is_none() {
            file = std::fs::File::open(path).ok();
        }
        let mut got = 0;
        if let Some(f) = file.as_mut() {
            while let Ok(n) = f.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got += n;
                let now = wall_ms() as i64;
                pending.extend_from_slice(&buf[..n]);
                let end = match pending.iter().rposition(|&b| b == b'\n') {
                    Some(i) => i + 1,
                    None => continue,
                };
                for line in pending[..end].split(|&b| b == b'\n') {
                    if !contains(line, b"\"stream\":\"telemetry\"") {
                        continue;
                    }
                    lines += 1;
                    let Some(t) = field_time(line, b"\"time\":\"") else {
                        continue;
                    };
                    if t < from_ms {
                        continue;
                    }
                    commit.record(now - t);
                    if let Some(r) = field_time(line, b"\"received_at\":\"") {
                        receive.record(r - t);
                    }
                }
                pending.drain(..end);
            }
        }
        if stopping && got == 0 {
            if finishing {
                break;
            }
            finishing = true;
        }
        std::thread::sleep(TAIL_EVERY);
    }
    (commit, receive, lines)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The RFC 3339 time (`YYYY-MM-DDTHH:MM:SS.mmmZ`) after `key`, as epoch ms.
fn field_time(line: &[u8], key: &[u8]) -> Option<i64> {
    let i = line.windows(key.len()).position(|w| w == key)? + key.len();
    let s = std::str::from_utf8(line.get(i..i + 24)?).ok()?;
    parse_rfc3339_ms(s)
}

fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 24 || b[4] != b'-' || b[10] != b'T' || b[19] != b'.' || b[23] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss, ms) = (n(11..13)?, n(14..16)?, n(17..19)?, n(20..23)?);
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + ms)
}

// ---------------------------------------------------------------------------------------------
// /metrics and /proc

async fn http_get(port: u16, path: &str) -> Option<String> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let body = text.split_once("\r\n\r\n")?.1.to_string();
        text.starts_with("HTTP/1.1 200").then_some(body)
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .ok()
        .flatten()
}

/// One /metrics scrape: series (name with labels) → value.
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    /// The sum of every series of `name` (all label sets).
    fn sum(&self, name: &str) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix(name)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('{'))
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// The value of one series (`name{labels}` exactly as exported), 0 if absent.
    fn series(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }

    /// p50 and p99 (upper bucket bounds, seconds) of a histogram's series with `label`.
    fn histogram_quantiles(&self, name: &str, label: &str) -> Option<(f64, f64)> {
        let prefix = format!("{name}_bucket{{");
        let mut buckets: Vec<(f64, f64)> = self
            .0
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix) && k.contains(label))
            .filter_map(|(k, v)| {
                let le = k.split("le=\"").nth(1)?.split('"').next()?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, *v))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let q = |q: f64| {
            buckets
                .iter()
                .find(|(_, c)| *c >= total * q)
                .map_or(f64::INFINITY, |b| b.0)
        };
        Some((q(0.5), q(0.99)))
    }
}

async fn scrape(port: u16) -> Option<Scrape> {
    let body = http_get(port, "/metrics").await?;
    Some(Scrape(
        body.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect(),
    ))
}

/// utime + stime of a process, seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: field 3 (state) is index 0, utime (14) index 11, stime (15) index 12.
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

/// USER_HZ: 100 on every Linux configuration in use; `getconf CLK_TCK` confirms it.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn proc_status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The report

fn mb(kb: Option<u64>) -> String {
    kb.map_or("—".to_string(), |k| {
        format!("{:.1} MB", k as f64 / 1024.0)
    })
}

fn print_report(
    args: &BenchArgs,
    null: Option<&NullResult>,
    service: Option<&ServiceResult>,
    copy: Option<&CopyReference>,
    broker_cpu: Option<f64>,
    load_before: &str,
    load_after: &str,
) {
    println!(
        "## oee-stream bench: {} nodes × {} machines, {}, {:?} measured (+{:?} warm-up for the service), sink {}{}{}",
        args.nodes,
        args.devices_per_node,
        args.rate,
        args.duration,
        args.warmup,
        args.sink_name(),
        if args.no_deadband {
            ", no deadbands"
        } else {
            ""
        },
        if args.all_metrics {
            ", all 8 metrics in every DDATA"
        } else {
            ""
        },
    );
    println!();
    println!(
        "| phase | sent msgs | received msgs | lost | msg/s sustained | ratio to null | simulator msg/s |"
    );
    println!("|---|---|---|---|---|---|---|");
    if let Some(n) = null {
        println!(
            "| null consumer | {} | {} | {} | {:.0} | 1.00 | {:.0} |",
            n.sent.messages,
            n.received,
            n.sent.messages.saturating_sub(n.received),
            n.rate,
            n.sent.messages as f64 / n.sent.secs
        );
    }
    if let Some(s) = service {
        let ratio = null.map_or("—".to_string(), |n| format!("{:.2}", s.msg_rate / n.rate));
        println!(
            "| oee-stream run | {} | {} | {} | {:.0} | {ratio} | {:.0} |",
            s.published,
            s.received,
            s.published.saturating_sub(s.received),
            s.msg_rate,
            s.sent.messages as f64 / s.sent.secs
        );
    }
    if let Some(l) = null.and_then(|n| n.latency.as_ref()) {
        println!();
        println!(
            "Null consumer: DDATA payload timestamp → delivered p50 {} ms, p99 {} ms, max {} ms \
             ({} messages): the simulator's and the broker's share of the latencies below.",
            l.p50, l.p99, l.max, l.n
        );
    }
    if let Some(n) = null.filter(|n| n.sent.reconnects > 0) {
        println!();
        println!(
            "Null consumer phase: the simulator's nodes lost their MQTT sessions {} times (each \
             a new session with new births).",
            n.sent.reconnects
        );
    }
    if let Some(s) = service {
        let per_msg = if s.sent.messages > 0 {
            s.sent.ddata_metrics as f64 / s.sent.messages as f64
        } else {
            0.0
        };
        println!();
        println!("| service (oee-stream run) | value |");
        println!("|---|---|");
        println!(
            "| steady window | {:.1} s (after a {:?} warm-up, to the simulator's stop) |",
            s.steady_secs, args.warmup
        );
        println!("| messages/s received | {:.0} |", s.msg_rate);
        println!(
            "| messages lost in the steady window (published − received, ± in flight) | {:.0} |",
            s.steady_lost
        );
        println!(
            "| metrics/s received | {:.0} ({per_msg:.2} metrics per message, counted at the simulator) |",
            s.msg_rate * per_msg
        );
        println!(
            "| signals/s normalized | {:.0} (after deadbands) |",
            s.signal_rate
        );
        println!(
            "| DDATA / DBIRTH messages received → telemetry rows per message | {} / {} → {:.2} |",
            s.ddata,
            s.dbirth,
            s.written[0] as f64 / (s.ddata + s.dbirth).max(1) as f64
        );
        println!(
            "| sequence gaps seen → rebirths answered by the simulator | {} → {} |",
            s.seq_gaps, s.sent.rebirths
        );
        println!(
            "| simulator sessions lost and started again (new bdSeq and births) | {} |",
            s.sent.reconnects
        );
        if let Some([shards, sink, spool]) = s.queued_at_stop {
            println!(
                "| queued at the simulator's stop (last scrape) → drained in | shards {shards:.0} messages, sink {sink:.0} records, spool {spool:.0} batches → {:.1} s |",
                s.drain_secs
            );
        }
        println!(
            "| rows/s committed | {:.0} (telemetry {:.0}, events {:.0}) |",
            s.row_rate, s.table_rates[0], s.table_rates[1]
        );
        println!(
            "| records out → rows written | {} → {} ({} lost); telemetry lines in the file: {} |",
            s.records_out,
            s.rows_written,
            s.records_out.saturating_sub(s.rows_written),
            s.file_rows
        );
        let by_table: Vec<String> = TABLES
            .iter()
            .zip(s.written)
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        println!("| rows written by table | {} |", by_table.join(", "));
        if let Some(d) = &s.db {
            print_database(s, d);
        }
        println!("| signals (total) | {} |", s.signals);
        match (&s.latency, &s.db) {
            (Some(l), _) => {
                println!(
                    "| latency metric timestamp → committed (line in the sink file, +≤10 ms polling; rows stamped after the warm-up) | {} |",
                    pct(&l.commit)
                );
                println!(
                    "| latency metric timestamp → received_at | {} |",
                    pct(&l.receive)
                );
            }
            (None, Some(d)) => {
                let commit = d.latency.commit.as_ref().map_or("no rows".to_string(), pct);
                println!(
                    "| latency metric timestamp → committed (PostgreSQL: the batch's ledger row first visible to the bench's poll, every 10 ms; rows stamped after the warm-up) | {commit}; {} rows in batches the poll did not see |",
                    d.latency.rows_unseen
                );
                let receive = d
                    .latency
                    .receive
                    .as_ref()
                    .map_or("no rows".to_string(), pct);
                println!("| latency metric timestamp → received_at | {receive} |");
            }
            (None, None) => println!(
                "| latency | not measured (sink {}: latency is read from the JSON-lines file or PostgreSQL) |",
                args.sink_name()
            ),
        }
        if let Some((p50, p99)) = s.pipeline_p {
            println!(
                "| pipeline duration per message (histogram, bucket bounds) | p50 ≤ {:.0} µs, p99 ≤ {:.0} µs |",
                p50 * 1e6,
                p99 * 1e6
            );
        }
        println!(
            "| CPU | {:.2} cores over the steady window; {:.1} s in total |",
            s.cpu_cores, s.cpu_total_s
        );
        println!(
            "| peak RSS (VmHWM) | {}; RSS at the end {} |",
            mb(s.peak_rss_kb),
            mb(s.end_rss_kb)
        );
        print_rss(args, s);
    }
    if let (Some(c), Some(s)) = (copy, service) {
        println!();
        println!("| psql \\copy reference | value |");
        println!("|---|---|");
        println!(
            "| rows loaded | {} of the service's {} telemetry rows (CSV, `SELECT *` of its table) into an empty table of the same schema ({} indexes, checked identical) |",
            c.rows, c.service_rows, c.indexes
        );
        println!(
            "| psql \\copy rows/s | {:.0} ({:.2} s, psql start and connection included) |",
            c.rows_per_s(),
            c.secs
        );
        println!(
            "| service ÷ \\copy | {:.3} (telemetry rows/s committed in the steady window ÷ \\copy rows/s) |",
            s.table_rates[0] / c.rows_per_s()
        );
    }
    if !args.service_env.is_empty() {
        let env: Vec<String> = args
            .service_env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!();
        println!("Service environment overrides: {}.", env.join(" "));
    }
    println!();
    if let Some(c) = broker_cpu {
        println!("Mosquitto CPU over both phases: {c:.1} s.");
    }
    println!(
        "Load average (1/5/15 min) before: {load_before}; after: {load_after}; nproc {}.",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
}

fn pct(p: &Percentiles) -> String {
    format!(
        "p50 {} ms, p99 {} ms, max {} ms ({} rows)",
        p.p50, p.p99, p.max, p.n
    )
}

/// Expected (the sink's counters) vs what the database holds.
fn print_database(s: &ServiceResult, d: &DbResult) {
    let c = &d.counts;
    let check = |written: u64, in_db: i64| {
        let diff = in_db - written as i64;
        if diff == 0 {
            "0 missing".to_string()
        } else {
            format!("**{diff:+} rows**")
        }
    };
    println!(
        "| telemetry rows: written (sink) → in the database (COUNT) | {} → {} ({}) |",
        s.written[0],
        c.telemetry,
        check(s.written[0], c.telemetry)
    );
    println!(
        "| events rows: written (sink) → in the database (COUNT) | {} → {} ({}) |",
        s.written[1],
        c.events,
        check(s.written[1], c.events)
    );
    println!(
        "| batches: committed (sink) → in the ledger (rows) | {} → {} ({} rows of {} written) |",
        s.batches_written, c.batches, c.batch_rows, s.rows_written
    );
    let f = &d.final_counts;
    println!(
        "| written during the service's shutdown (after the counts above) | {:+} batches, {:+} rows (telemetry {:+}, events {:+}) |",
        f.batches - c.batches,
        f.batch_rows - c.batch_rows,
        f.telemetry - c.telemetry,
        f.events - c.events
    );
    println!(
        "| oee_windows / faults in the database at the end (upserts: one row per key) | {} / {} |",
        f.oee_windows, f.faults
    );
    println!(
        "| ledger rows the commit poll did not see | {} |",
        d.latency.batches_unseen
    );
}

fn print_rss(args: &BenchArgs, s: &ServiceResult) {
    let Some(r) = &s.rss else {
        println!("| RSS samples | none (the service's /proc entry was not readable) |");
        return;
    };
    println!(
        "| RSS at start / after the warm-up / at the end of the simulator | {} / {} / {} |",
        mb(Some(r.start_kb)),
        mb(r.after_warmup_kb),
        mb(Some(r.end_kb))
    );
    match r.slope_mb_per_10min {
        Some(slope) => println!(
            "| RSS slope after the warm-up (least squares over {} samples) | {slope:+.2} MB per 10 min |",
            r.fitted
        ),
        None => println!(
            "| RSS slope after the warm-up | — ({} samples: too few) |",
            r.fitted
        ),
    }
    match &args.dir {
        Some(_) => println!(
            "| RSS samples (1/s) | {} in {} |",
            r.samples,
            s.rss_csv.display()
        ),
        None => println!(
            "| RSS samples (1/s) | {} (rss.csv is removed with the work directory: pass --dir DIR to keep it) |",
            r.samples
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rfc3339_round_trips_with_the_sink() {
        for ms in [0, 1_700_000_000_123, 951_782_400_000, 1_798_761_599_999] {
            let s = fmt(ms);
            assert_eq!(parse_rfc3339_ms(&s), Some(ms), "{s}");
        }
        assert_eq!(parse_rfc3339_ms("not a time at all, no!!"), None);
    }

    fn fmt(ms: i64) -> String {
        oee_stream::sink::jsonl::rfc3339(ms)
    }

    #[test]
    fn scrape_sums_and_quantiles() {
        let body = "# HELP x\nfoo_total{type=\"a\"} 3\nfoo_total{type=\"b\"} 4\nfoo_bar 9\n\
                    h_bucket{stage=\"total\",le=\"0.001\"} 50\nh_bucket{stage=\"total\",le=\"0.01\"} 99\n\
                    h_bucket{stage=\"total\",le=\"+Inf\"} 100\n";
        let s = Scrape(
            body.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let (k, v) = l.rsplit_once(' ')?;
                    Some((k.to_string(), v.parse().ok()?))
                })
                .collect(),
        );
        assert_eq!(s.sum("foo_total"), 7.0);
        assert_eq!(
            s.histogram_quantiles("h", "stage=\"total\""),
            Some((0.001, 0.01))
        );
    }
}
