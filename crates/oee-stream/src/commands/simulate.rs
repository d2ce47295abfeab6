//! `oee-stream simulate --broker mqtt://HOST:PORT`: the demo's simulated plant against any
//! broker, to try a real setup and for load tests. See docs/demo.md.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use oee_stream::demo::driver::{self, DriveOptions, SimStats};
use oee_stream::demo::simulator::{GROUP, SimConfig, Simulator};
use oee_stream::settings::{LogFormat, LogLevel};

use crate::commands::run::{init_logging, shutdown_signal};

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The broker: mqtt://HOST:PORT (plain TCP; default port 1883).
    #[arg(long, value_name = "URL")]
    pub broker: String,

    /// Target DDATA messages per second (wall clock) over all machines; without it each machine
    /// reports every 2 s of simulated time. State changes are sent on top, when they happen.
    #[arg(long, value_name = "N")]
    pub rate: Option<f64>,

    /// Edge nodes (one MQTT session each), called Line1, Line2, ...
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub nodes: usize,

    /// Machines (Sparkplug devices) per edge node.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub devices_per_node: usize,

    /// Random seed: the same seed gives the same plant history.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,

    /// Simulated time runs N times the wall clock (timestamps are simulated time).
    #[arg(long, value_name = "N", default_value_t = 1.0)]
    pub speed: f64,

    /// Simulated time starts here (RFC 3339, e.g. 2026-01-01T06:00:00Z) instead of now: with
    /// the same seed, the same plant history.
    #[arg(long, value_name = "TIME", value_parser = parse_start)]
    pub start: Option<u64>,

    /// Stop after this long (wall clock): 90s, 5m, 1h or plain seconds. Default: until Ctrl-C.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// The Sparkplug group id.
    #[arg(long, value_name = "ID", default_value = GROUP)]
    pub group: String,

    /// Keep every edge node online (no NDEATH/NBIRTH cycles of Line2).
    #[arg(long)]
    pub no_node_deaths: bool,

    /// MQTT client ids are PREFIX-<edge node id>.
    #[arg(long, value_name = "PREFIX", default_value = "oee-sim")]
    pub client_prefix: String,
}

pub fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    init_logging(LogLevel::Warn, LogFormat::Text);
    let (host, port) = parse_broker(&args.broker)?;
    if !(args.speed > 0.0 && args.speed.is_finite()) {
        bail!("--speed must be a positive number");
    }
    if args.nodes == 0 || args.devices_per_node == 0 {
        bail!("--nodes and --devices-per-node must be at least 1");
    }
    let machines = (args.nodes * args.devices_per_node) as f64;
    let report_every_ms = match args.rate {
        Some(r) if r > 0.0 && r.is_finite() => ((machines * 1000.0 * args.speed / r) as u64).max(1),
        Some(_) => bail!("--rate must be a positive number"),
        None => 2_000,
    };
    let cfg = SimConfig {
        group: args.group.clone(),
        nodes: args.nodes,
        devices_per_node: args.devices_per_node,
        seed: args.seed,
        start_ms: args.start.unwrap_or_else(wall_ms),
        report_every_ms,
        node_deaths: !args.no_node_deaths,
        all_metrics: false,
    };
    let opts = DriveOptions {
        host,
        port,
        speed: args.speed,
        client_prefix: args.client_prefix.clone(),
        max_rate: false,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let limit = args.duration;
    runtime.block_on(async move {
        let stats = Arc::new(SimStats::default());
        let sim = Simulator::new(cfg);
        eprintln!(
            "simulating {} edge nodes × {} machines (group {}) against {}:{}, speed {}×",
            args.nodes, args.devices_per_node, args.group, opts.host, opts.port, args.speed
        );
        let status = tokio::spawn(status_lines(Arc::clone(&stats)));
        let stop = async move {
            match limit {
                Some(d) => {
                    tokio::select! {
                        () = shutdown_signal() => {}
                        () = tokio::time::sleep(d) => {}
                    }
                }
                None => shutdown_signal().await,
            }
        };
        let r = driver::drive(sim, opts, Arc::clone(&stats), stop).await;
        status.abort();
        eprintln!("{}", status_line(&stats));
        r
    })
}

async fn status_lines(stats: Arc<SimStats>) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    every.tick().await;
    loop {
        every.tick().await;
        eprintln!("{}", status_line(&stats));
    }
}

fn status_line(stats: &SimStats) -> String {
    format!(
        "simulated time {}  published {}  nbirths {}  rebirth requests {}  nodes online {}",
        super::demo::iso_time(stats.sim_time_ms.load(Ordering::Relaxed)),
        stats.published.load(Ordering::Relaxed),
        stats.nbirths.load(Ordering::Relaxed),
        stats.rebirth_requests.load(Ordering::Relaxed),
        stats.nodes_online.load(Ordering::Relaxed),
    )
}

pub(crate) fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// `mqtt://HOST:PORT` (or `tcp://`, or a bare HOST:PORT) → (host, port).
fn parse_broker(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = if let Some(r) = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
    {
        r
    } else if url.contains("://") {
        bail!("--broker: `{url}` is not mqtt://HOST:PORT (TLS is not supported by the simulator)");
    } else {
        url
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h,
            p.parse::<u16>()
                .with_context(|| format!("--broker: bad port in `{url}`"))?,
        ),
        _ => (rest, 1883),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        bail!("--broker: no host in `{url}`");
    }
    Ok((host.to_string(), port))
}

/// `90s`, `5m`, `1h`, `250ms` or plain seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((s, ""), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as 90s, 5m or 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{s}`: {e}"))
}

/// `--start`: an RFC 3339 time, as Unix milliseconds.
pub(crate) fn parse_start(s: &str) -> Result<u64, String> {
    let t: jiff::Timestamp = s
        .trim()
        .parse()
        .map_err(|e| format!("`{s}` is not a time such as 2026-01-01T06:00:00Z: {e}"))?;
    u64::try_from(t.as_millisecond()).map_err(|_| format!("`{s}` is before 1970"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn durations_and_brokers_parse() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(
            parse_broker("mqtt://localhost:1884").unwrap(),
            ("localhost".into(), 1884)
        );
        assert_eq!(
            parse_broker("mqtt://broker").unwrap(),
            ("broker".into(), 1883)
        );
        assert_eq!(
            parse_broker("127.0.0.1:1").unwrap(),
            ("127.0.0.1".into(), 1)
        );
        assert!(parse_broker("mqtts://x:8883").is_err());
    }

    #[test]
    fn start_times_parse_as_unix_milliseconds() {
        assert_eq!(
            parse_start("2026-01-01T06:00:00Z").unwrap(),
            1_767_247_200_000
        );
        assert_eq!(
            parse_start("2026-01-01T07:00:00+01:00").unwrap(),
            1_767_247_200_000
        );
        assert!(parse_start("1969-12-31T23:59:59Z").is_err());
        assert!(parse_start("tomorrow").unwrap_err().contains("tomorrow"));
    }
}
