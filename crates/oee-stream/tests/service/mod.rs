//! The service as a process (`oee-stream run --config FILE`) for the fault and soak tests:
//! start it, wait for `/ready`, read `/metrics`, SIGKILL or SIGTERM it; and an edge node that
//! publishes a counted workload (every DDATA carries a number that is unique in the test, so the
//! database can be checked for loss and doubles message by message).
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sparkplug::{DataType, Value};

use crate::support::{Observer, by_alias, free_port, metric, nbirth, payload, try_http_get};

/// Generous bound for the waits of these tests (a restart replays a spool, a cluster starts).
pub const LONG_WAIT: Duration = Duration::from_secs(90);

/// A running `oee-stream run`; killed (SIGKILL) when dropped.
pub struct ServiceProcess {
    child: Option<Child>,
    pub http: SocketAddr,
    pub config: PathBuf,
}

impl ServiceProcess {
    /// Starts the binary with `config`, which must listen on `http`.
    pub fn spawn(config: &Path, http: SocketAddr) -> ServiceProcess {
        ServiceProcess::spawn_with_env(config, http, &[])
    }

    /// [`spawn`](Self::spawn) with `OEE_…` overrides in the environment.
    pub fn spawn_with_env(
        config: &Path,
        http: SocketAddr,
        env: &[(&str, String)],
    ) -> ServiceProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_oee-stream"))
            .args(["run", "--config"])
            .arg(config)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starts oee-stream run");
        ServiceProcess {
            child: Some(child),
            http,
            config: config.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Waits until `/ready` answers 200 (the broker session is up and the STATE birth out).
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + LONG_WAIT;
        loop {
            if let Ok(Ok((200, _))) =
                tokio::time::timeout(Duration::from_secs(2), try_http_get(self.http, "/ready"))
                    .await
            {
                return;
            }
            assert!(Instant::now() < deadline, "/ready never answered 200");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One scrape of `/metrics`, or `None` while the server does not answer.
    pub async fn try_metrics(&self) -> Option<Metrics> {
        match tokio::time::timeout(Duration::from_secs(5), try_http_get(self.http, "/metrics"))
            .await
        {
            Ok(Ok((200, body))) => Some(Metrics::parse(&body)),
            _ => None,
        }
    }

    /// Polls `/metrics` until `pred` holds; returns that scrape.
    pub async fn wait_metrics(&self, what: &str, pred: impl Fn(&Metrics) -> bool) -> Metrics {
        let deadline = Instant::now() + LONG_WAIT;
        loop {
            if let Some(m) = self.try_metrics().await
                && pred(&m)
            {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "/metrics never showed: {what}\nlast scrape: {:?}",
                self.try_metrics().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no STATE death, no drain; the broker publishes the Will.
    pub fn sigkill(mut self) {
        let mut child = self.child.take().expect("running");
        signal(&child, "KILL");
        let status = child.wait().expect("waits for the killed process");
        assert!(!status.success(), "killed, not exited: {status}");
    }

    /// SIGTERM and wait (at most 60 s) for the clean exit.
    pub async fn sigterm(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(&child, "TERM");
        let exit = tokio::task::spawn_blocking(move || child.wait());
        tokio::time::timeout(Duration::from_secs(60), exit)
            .await
            .expect("oee-stream stops within 60 s of SIGTERM")
            .expect("joins")
            .expect("exit status")
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .expect("runs kill");
    assert!(status.success(), "kill -{sig}");
}

/// A free loopback address for the service's HTTP server.
pub fn http_addr() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

/// A `/metrics` scrape: value by series (`name{labels}` exactly as exported).
#[derive(Clone, Debug, Default)]
pub struct Metrics(pub BTreeMap<String, f64>);

impl Metrics {
    pub fn parse(body: &str) -> Metrics {
        let mut m = BTreeMap::new();
        for line in body.lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            if let Some((k, v)) = line.rsplit_once(' ')
                && let Ok(v) = v.parse::<f64>()
            {
                m.insert(k.to_string(), v);
            }
        }
        Metrics(m)
    }

    /// The value of one series, 0 when it is absent.
    pub fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    /// The sum of every series of one metric name (all label values).
    pub fn sum(&self, name: &str) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| k.as_str() == name || k.starts_with(&format!("{name}{{")))
            .map(|(_, v)| v)
            .sum()
    }

    pub fn ddata(&self) -> u64 {
        self.get("oee_stream_mqtt_messages_total{type=\"DDATA\"}") as u64
    }

    pub fn telemetry_rows(&self) -> u64 {
        self.get("oee_stream_rows_written_total{table=\"telemetry\"}") as u64
    }
}

/// The resident set size of a process in KiB (`VmRSS` of /proc/PID/status).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The configuration file of a test service. `database_extra` and `extra` are YAML lines
/// added under `database:` (indented by the caller) and at the top level.
pub struct ServiceConfig<'a> {
    pub broker_url: &'a str,
    pub host_id: &'a str,
    pub database_url: &'a str,
    pub spool_dir: &'a Path,
    pub http: SocketAddr,
    pub database_extra: &'a str,
    pub extra: &'a str,
    pub keep_alive_s: u64,
    /// `database.spool.segment_bytes` and `max_bytes`.
    pub spool_bytes: (u64, u64),
}

impl<'a> ServiceConfig<'a> {
    pub fn new(
        broker_url: &'a str,
        host_id: &'a str,
        database_url: &'a str,
        spool_dir: &'a Path,
        http: SocketAddr,
    ) -> ServiceConfig<'a> {
        ServiceConfig {
            broker_url,
            host_id,
            database_url,
            spool_dir,
            http,
            database_extra: "",
            extra: "",
            keep_alive_s: 5,
            spool_bytes: (65_536, 1 << 30),
        }
    }

    pub fn write(&self, path: &Path) {
        let text = format!(
            "mqtt:\n  url: \"{}\"\n  host_id: \"{}\"\n  keep_alive_s: {}\n  reconnect:\n    \
             min_backoff_ms: 100\n    max_backoff_ms: 1000\n\
             database:\n  url: \"{}\"\n  retry_initial_ms: 50\n  retry_max_ms: 500\n{}  spool:\n    \
             dir: \"{}\"\n    segment_bytes: {}\n    max_bytes: {}\n\
             http:\n  listen: \"{}\"\nlog:\n  level: warn\n{}",
            self.broker_url,
            self.host_id,
            self.keep_alive_s,
            self.database_url,
            self.database_extra,
            self.spool_dir.display(),
            self.spool_bytes.0,
            self.spool_bytes.1,
            self.http,
            self.extra,
        );
        std::fs::write(path, text).expect("writes the config");
    }
}

/// An edge node with one device `M1` (ProdCount alias 1, Temperature alias 2) that publishes
/// numbered DDATA: message `i` carries Temperature = i and ProdCount = i.
pub struct Edge {
    pub mqtt: Observer,
    pub group: String,
    pub node: String,
    seq: u64,
    bd_seq: u64,
}

impl Edge {
    pub async fn connect(port: u16, group: &str, node: &str) -> Edge {
        let id = format!("edge-{group}-{node}-{}", free_port());
        Edge {
            mqtt: Observer::connect(port, &id, &[]).await,
            group: group.to_string(),
            node: node.to_string(),
            seq: 0,
            bd_seq: 0,
        }
    }

    /// A new MQTT session (the broker restarted), keeping the bdSeq count.
    pub async fn reconnect(&mut self, port: u16) {
        let id = format!("edge-{}-{}-{}", self.group, self.node, free_port());
        self.mqtt = Observer::connect(port, &id, &[]).await;
    }

    /// NBIRTH (a new bdSeq) and DBIRTH, as after a reconnect or on a host's STATE birth.
    pub async fn birth(&mut self) {
        self.bd_seq += 1;
        self.seq = 0;
        let (g, n) = (self.group.clone(), self.node.clone());
        self.mqtt
            .publish(
                &format!("spBv1.0/{g}/NBIRTH/{n}"),
                nbirth(0, self.bd_seq),
                false,
            )
            .await;
        let dbirth = payload(
            Some(1),
            vec![
                metric("ProdCount", 1, DataType::UInt64, Value::UInt64(0)),
                metric("Temperature", 2, DataType::Double, Value::Double(-1.0)),
            ],
        );
        self.mqtt
            .publish(&format!("spBv1.0/{g}/DBIRTH/{n}/M1"), dbirth, false)
            .await;
        self.seq = 2;
    }

    /// DDATA number `i`.
    pub async fn data(&mut self, i: u64) {
        let m = vec![
            by_alias(1, DataType::UInt64, Value::UInt64(i)),
            by_alias(2, DataType::Double, Value::Double(i as f64)),
        ];
        let topic = format!("spBv1.0/{}/DDATA/{}/M1", self.group, self.node);
        self.mqtt
            .publish(&topic, payload(Some(self.seq % 256), m), false)
            .await;
        self.seq += 1;
    }
}

/// The tag mappings of the workload: `Temperature` and `ProdCount` of device M1 on every edge
/// node of every group (one machine per edge node, named after it), as YAML list items under
/// `processing.tag_mappings`.
pub const WORKLOAD_MAPPINGS: &str = r#"    - source_tag: "*/{node}/M1/Temperature"
      signal_type: "temperature"
      machine_id: "{node}"
      line_id: "L1"
      site_id: "S1"
    - source_tag: "*/{node}/M1/ProdCount"
      signal_type: "counter.total"
      machine_id: "{node}"
      line_id: "L1"
      site_id: "S1"
"#;

/// A `processing` block with the workload mappings plus `more_mappings` (list items), unmapped
/// metrics dropped.
pub fn processing(more_mappings: &str) -> String {
    format!(
        "processing:\n  tag_mappings:\n{WORKLOAD_MAPPINGS}{more_mappings}  unmapped:\n    policy: drop\n"
    )
}

/// The workload numbers in `telemetry` (Temperature rows with a good value ≥ 1; births carry
/// −1), with how often each is there.
pub async fn stored_numbers(c: &tokio_postgres::Client, group: &str) -> BTreeMap<u64, i64> {
    try_stored_numbers(c, group)
        .await
        .expect("queries telemetry")
}

/// [`stored_numbers`], or the error (the schema is created once the server first answers).
pub async fn try_stored_numbers(
    c: &tokio_postgres::Client,
    group: &str,
) -> Result<BTreeMap<u64, i64>, tokio_postgres::Error> {
    Ok(c.query(
        "SELECT value::bigint, count(*) FROM telemetry WHERE sp_metric = 'Temperature' \
         AND sp_group = $1 AND quality = 192 AND value >= 1 GROUP BY 1",
        &[&group],
    )
    .await?
    .iter()
    .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1)))
    .collect())
}
