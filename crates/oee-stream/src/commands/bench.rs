//! `oee-stream bench`: an end-to-end load test on loopback. Starts its own Mosquitto on a free
//! 127.0.0.1 port, then runs
//!
//! 1. the null reference: the simulator publishing to an MQTT subscriber that counts and
//!    discards every message (what the broker alone delivers on this machine), and
//! 2. the service under test: this binary's `run` with the demo configuration and a JSON-lines
//!    sink, fed by the same simulator at the same rate for the same time.
//!
//! It reports messages/s and metrics/s, rows/s committed, the latency from each telemetry
//! row's metric timestamp to the moment its line is in the sink file (p50/p99/max), the
//! service's CPU and peak RSS, and expected vs received counts. Every phase is bounded in time.
//! See BENCHMARKS.md ("End to end").

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use oee_stream::demo::DEMO_CONFIG;
use oee_stream::demo::driver::{self, DriveOptions, SimStats};
use oee_stream::demo::simulator::{GROUP, SimConfig, Simulator};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::commands::run::init_logging;
use crate::commands::simulate::{parse_duration, wall_ms};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Edge nodes of the simulated plant (one MQTT session each).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub nodes: usize,

    /// Machines (Sparkplug devices) per edge node.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub devices_per_node: usize,

    /// Offered DDATA messages per second over all machines. The simulator advances every 50 ms
    /// and a machine reports at the first tick at or after it is due, so the real rate is at
    /// most 20 messages/s per machine, and below the offered rate unless 1000 × machines ÷
    /// rate is a multiple of 50 ms.
    #[arg(long, value_name = "N", default_value_t = 10_000.0)]
    pub rate: f64,

    /// How long the simulator publishes in each phase (at most 5m).
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration, default_value = "20s")]
    pub duration: Duration,

    /// Phase 2 only: the simulator runs this long before the measured --for window (the OEE
    /// task's start-up output and any backlog drain in it; nothing in it is measured except
    /// peak RSS and the totals).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "20s")]
    pub warmup: Duration,

    /// Sink of the service: `jsonl` (a file in the work directory; latency is measured from it)
    /// or `null` (JSON lines to /dev/null: no latency figures).
    #[arg(long, value_name = "SINK", default_value = "jsonl", value_parser = ["jsonl", "null"])]
    pub sink: String,

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

    /// Work directory (config, sink file, broker log); kept afterwards. Default: a fresh
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
    /// The sink as reported: `jsonl`, `null`, or the scheme of an `OEE_DATABASE__URL` override.
    fn sink_name(&self) -> String {
        match self
            .service_env
            .iter()
            .rev()
            .find(|(k, _)| k == "OEE_DATABASE__URL")
        {
            Some((_, url)) => url.split("://").next().unwrap_or(url).to_string(),
            None => self.sink.clone(),
        }
    }
}

/// Upper bound for any wait on start-up or drain.
const WAIT: Duration = Duration::from_secs(15);
/// How often the sink file is read for latency, and /metrics scraped.
const TAIL_EVERY: Duration = Duration::from_millis(10);
const SCRAPE_EVERY: Duration = Duration::from_secs(1);

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    init_logging(
        oee_stream::settings::LogLevel::Warn,
        oee_stream::settings::LogFormat::Text,
    );
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        bail!("--rate must be a positive number");
    }
    if args.nodes == 0 || args.devices_per_node == 0 {
        bail!("--nodes and --devices-per-node must be at least 1");
    }
    let machines = args.nodes * args.devices_per_node;
    if args.rate > machines as f64 * 20.0 {
        bail!(
            "--rate: the simulator sends at most 20 messages/s per machine ({machines} machines: \
             {}); add machines",
            machines * 20
        );
    }
    if args.duration > Duration::from_secs(300) || args.duration.is_zero() {
        bail!("--for must be between 1 ms and 5m");
    }
    if args.warmup > Duration::from_secs(300) {
        bail!("--warmup must be at most 5m");
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
    let load_before = loadavg();
    let broker = Mosquitto::start(args.mosquitto.as_deref(), dir).await?;
    eprintln!(
        "bench: Mosquitto on 127.0.0.1:{}, {} nodes × {} machines, {} msg/s offered, {:?} per phase",
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
        Some(service_phase(args, &broker, dir).await?)
    };
    let broker_cpu = broker.cpu_seconds();
    drop(broker);
    let load_after = loadavg();
    print_report(
        args,
        null.as_ref(),
        service.as_ref(),
        broker_cpu,
        &load_before,
        &load_after,
    );
    if let Some(s) = &service
        && (s.received < s.published || s.rows_written < s.records_out)
    {
        bail!("messages or rows were lost (see the table)");
    }
    Ok(())
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
    let machines = (args.nodes * args.devices_per_node) as f64;
    let cfg = SimConfig {
        group: GROUP.to_string(),
        nodes: args.nodes,
        devices_per_node: args.devices_per_node,
        seed: args.seed,
        start_ms: wall_ms(),
        report_every_ms: ((machines * 1000.0 / args.rate) as u64).max(1),
        node_deaths: false,
    };
    let opts = DriveOptions {
        host: "127.0.0.1".to_string(),
        port,
        speed: 1.0,
        client_prefix: prefix.to_string(),
    };
    (Simulator::new(cfg), opts)
}

/// What a simulator run sent.
#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    messages: u64,
    ddata_metrics: u64,
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
    let lat: Arc<std::sync::Mutex<Vec<i64>>> = Arc::default();
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
                            l.push(wall_ms() as i64 - ts as i64);
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
    wait_stable(|| async { Some(count.load(Ordering::Relaxed)) }).await;
    consumer.abort();
    let received = count.load(Ordering::Relaxed);
    let (first, last) = times.lock().map(|t| *t).unwrap_or_default();
    let secs = match (first, last) {
        (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
        _ => sent.secs,
    };
    let latency = lat
        .lock()
        .ok()
        .and_then(|mut l| percentiles(std::mem::take(&mut *l)));
    Ok(NullResult {
        sent,
        received,
        rate: received as f64 / secs,
        latency,
    })
}

/// Polls `value` until it has not changed for a second (bounded by [`WAIT`]).
async fn wait_stable<F, Fut>(mut value: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<u64>>,
{
    let deadline = Instant::now() + WAIT;
    let mut last = value().await;
    let mut since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let v = value().await;
        if v != last {
            last = v;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_secs(1) {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Phase 2: the service

struct ServiceResult {
    sent: Sent,
    published: u64,
    received: u64,
    /// Steady-state rates (between the first scrape after 1 s and the last one before the
    /// simulator stopped).
    msg_rate: f64,
    signal_rate: f64,
    row_rate: f64,
    steady_secs: f64,
    /// Published − received over the steady window (± messages in flight at its ends).
    steady_lost: f64,
    records_out: u64,
    rows_written: u64,
    /// Rows written by table at the end (`table=value`, …).
    rows_by_table: String,
    file_rows: u64,
    signals: u64,
    /// Service CPU over the steady window, in cores (1.0 = one core busy).
    cpu_cores: f64,
    cpu_total_s: f64,
    peak_rss_kb: Option<u64>,
    /// VmRSS after the run, before the service is stopped.
    end_rss_kb: Option<u64>,
    latency: Option<Latency>,
    pipeline_p: Option<(f64, f64)>,
}

struct Latency {
    /// metric timestamp → line readable in the sink file, ms.
    commit: Percentiles,
    /// metric timestamp → `received_at`, ms.
    receive: Percentiles,
}

struct Percentiles {
    n: usize,
    p50: i64,
    p99: i64,
    max: i64,
}

fn percentiles(mut v: Vec<i64>) -> Option<Percentiles> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    Some(Percentiles {
        n: v.len(),
        p50: at(0.50),
        p99: at(0.99),
        max: v[v.len() - 1],
    })
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

async fn service_phase(
    args: &BenchArgs,
    broker: &Mosquitto,
    dir: &Path,
) -> anyhow::Result<ServiceResult> {
    let http_port = free_port()?;
    let config = dir.join("oee-stream.yml");
    std::fs::write(&config, DEMO_CONFIG)?;
    let sink_path = match args.sink.as_str() {
        "null" => PathBuf::from("/dev/null"),
        _ => dir.join("sink.jsonl"),
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
        .env(
            "OEE_DATABASE__URL",
            format!("jsonl://{}", sink_path.display()),
        )
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

    // The latency tailer.
    let stop_tail = Arc::new(AtomicBool::new(false));
    let measure_from_ms = (wall_ms() + args.warmup.as_millis() as u64) as i64;
    let tailer = (args.sink_name() == "jsonl").then(|| {
        let (path, stop) = (sink_path.clone(), Arc::clone(&stop_tail));
        tokio::task::spawn_blocking(move || tail(&path, &stop, measure_from_ms))
    });

    // The simulator, with /metrics scraped every second meanwhile.
    let sim_done = Arc::new(AtomicBool::new(false));
    let sim_stats = Arc::new(SimStats::default());
    let scraper = {
        let sim_done = Arc::clone(&sim_done);
        let sim_stats = Arc::clone(&sim_stats);
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let t0 = Instant::now();
            let mut every = tokio::time::interval(SCRAPE_EVERY);
            while !sim_done.load(Ordering::Relaxed) {
                every.tick().await;
                let published = sim_stats.published.load(Ordering::Relaxed);
                if let Some(m) = scrape(http_port).await {
                    samples.push((t0.elapsed().as_secs_f64(), m, cpu_seconds(pid), published));
                }
            }
            samples
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
    let samples = scraper.await.unwrap_or_default();
    let sent = sent?;

    // Drain: wait until the rows written stop changing.
    wait_stable(|| async {
        scrape(http_port)
            .await
            .map(|m| m.sum("oee_stream_rows_written_total") as u64)
    })
    .await;
    let end = scrape(http_port).await.context("scraping /metrics")?;
    let cpu_total_s = cpu_seconds(pid).unwrap_or(f64::NAN);
    let peak_rss_kb = proc_status_kb(pid, "VmHWM:");
    let end_rss_kb = proc_status_kb(pid, "VmRSS:");
    stop_tail.store(true, Ordering::Relaxed);
    let (lat_commit, lat_receive, file_rows) = match tailer {
        Some(t) => t.await.unwrap_or_default(),
        None => (Vec::new(), Vec::new(), 0),
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

    // Steady window: from the first sample after the warm-up (at least 1 s) to the last one.
    let from = args.warmup.as_secs_f64().max(1.0);
    let first = samples.iter().find(|s| s.0 >= from);
    let last = samples.last();
    let (msg_rate, signal_rate, row_rate, cpu_cores, steady_secs, steady_lost) = match (first, last)
    {
        (Some(a), Some(b)) if b.0 > a.0 => {
            let dt = b.0 - a.0;
            let d = |name: &str| (b.1.sum(name) - a.1.sum(name)) / dt;
            let received = b.1.sum("oee_stream_mqtt_messages_total")
                - a.1.sum("oee_stream_mqtt_messages_total");
            (
                d("oee_stream_mqtt_messages_total"),
                d("oee_stream_signals_total"),
                d("oee_stream_rows_written_total"),
                match (a.2, b.2) {
                    (Some(x), Some(y)) => (y - x) / dt,
                    _ => f64::NAN,
                },
                dt,
                (b.3 - a.3) as f64 - received,
            )
        }
        _ => (f64::NAN, f64::NAN, f64::NAN, f64::NAN, 0.0, f64::NAN),
    };
    let latency = match (percentiles(lat_commit), percentiles(lat_receive)) {
        (Some(commit), Some(receive)) => Some(Latency { commit, receive }),
        _ => None,
    };
    Ok(ServiceResult {
        sent,
        published: sent.messages,
        received: end.sum("oee_stream_mqtt_messages_total") as u64,
        msg_rate,
        signal_rate,
        row_rate,
        steady_secs,
        steady_lost,
        records_out: end.sum("oee_stream_records_out_total") as u64,
        rows_written: end.sum("oee_stream_rows_written_total") as u64,
        rows_by_table: ["telemetry", "events", "oee_windows", "faults"]
            .iter()
            .map(|t| {
                let v = end
                    .0
                    .get(&format!("oee_stream_rows_written_total{{table=\"{t}\"}}"))
                    .copied()
                    .unwrap_or(0.0);
                format!("{t} {v}")
            })
            .collect::<Vec<_>>()
            .join(", "),
        file_rows,
        signals: end.sum("oee_stream_signals_total") as u64,
        cpu_cores,
        cpu_total_s,
        peak_rss_kb,
        end_rss_kb,
        latency,
        pipeline_p: end.histogram_quantiles(
            "stream_processor_pipeline_duration_seconds",
            "stage=\"total\"",
        ),
    })
}

/// Follows the sink file until `stop`: for every telemetry line, the time from its metric
/// timestamp to now (when the line was first seen, i.e. committed and flushed) and to its
/// `received_at`. Returns (commit latencies, receive latencies, telemetry lines), ms.
fn tail(path: &Path, stop: &AtomicBool, from_ms: i64) -> (Vec<i64>, Vec<i64>, u64) {
    let mut commit = Vec::new();
    let mut receive = Vec::new();
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
                    commit.push(now - t);
                    if let Some(r) = field_time(line, b"\"received_at\":\"") {
                        receive.push(r - t);
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
    broker_cpu: Option<f64>,
    load_before: &str,
    load_after: &str,
) {
    println!(
        "## oee-stream bench: {} nodes × {} machines, {} msg/s offered, {:?} measured (+{:?} warm-up for the service), sink {}",
        args.nodes,
        args.devices_per_node,
        args.rate,
        args.duration,
        args.warmup,
        args.sink_name()
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
        println!("| rows/s committed | {:.0} |", s.row_rate);
        println!(
            "| records out → rows written | {} → {} ({} lost); telemetry lines in the file: {} |",
            s.records_out,
            s.rows_written,
            s.records_out.saturating_sub(s.rows_written),
            s.file_rows
        );
        println!("| rows written by table | {} |", s.rows_by_table);
        println!("| signals (total) | {} |", s.signals);
        match &s.latency {
            Some(l) => {
                println!(
                    "| latency metric timestamp → committed (line in the sink file, +≤10 ms polling; rows stamped after the warm-up) | p50 {} ms, p99 {} ms, max {} ms ({} rows) |",
                    l.commit.p50, l.commit.p99, l.commit.max, l.commit.n
                );
                println!(
                    "| latency metric timestamp → received_at | p50 {} ms, p99 {} ms, max {} ms |",
                    l.receive.p50, l.receive.p99, l.receive.max
                );
            }
            None => println!(
                "| latency | not measured (sink {}: latency is read from the JSON-lines file) |",
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
