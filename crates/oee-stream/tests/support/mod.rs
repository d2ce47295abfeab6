//! Shared helpers of the MQTT integration tests: a real Mosquitto per test on a free port, an
//! observing MQTT client, an edge-node simulator, and settings for the pipeline.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use oee_stream::pipeline::{self, PipelineHandle};
use oee_stream::settings::{Settings, load_settings};
use oee_stream::sink::Record;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, PublishOptions, QoS};
use sparkplug::{DataType, Metric, MetricValue, Payload, Value};
use tokio::sync::mpsc;

/// Generous bound for anything a test awaits.
pub const WAIT: Duration = Duration::from_secs(15);

pub fn mosquitto_path() -> PathBuf {
    for p in [
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
        "/usr/bin/mosquitto",
    ] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("mosquitto is not installed (scripts/test.sh installs it)");
}

/// A Mosquitto broker started by the test, killed when dropped.
pub struct Broker {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Broker {
    /// Plain TCP broker on 127.0.0.1.
    pub async fn start() -> Broker {
        Broker::start_with("").await
    }

    /// A broker whose listener block gets `extra` lines (TLS settings); files in `dir`.
    pub async fn start_with(extra: &str) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        Broker::start_in(dir, extra).await
    }

    pub async fn start_in(dir: tempfile::TempDir, extra: &str) -> Broker {
        let port = free_port();
        let conf = format!(
            "user root\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n\
             listener {port} 127.0.0.1\nallow_anonymous true\n{extra}\n"
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let mut b = Broker {
            dir,
            port,
            child: None,
        };
        b.spawn().await;
        b
    }

    async fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("mosquitto.log")).unwrap();
        let child = Command::new(mosquitto_path())
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        // Wait for the listener by connecting to it.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "mosquitto exited with {status}: {}",
                    std::fs::read_to_string(self.dir.path().join("mosquitto.log"))
                        .unwrap_or_default()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "mosquitto did not listen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the broker (no clean shutdown: clients see the connection drop).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port with the same configuration.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A received message.
#[derive(Clone, Debug)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// An MQTT client that records everything it receives on `filters`. It polls in its own task.
pub struct Observer {
    pub client: AsyncClient,
    pub rx: mpsc::UnboundedReceiver<Msg>,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    /// Connects, subscribes and waits for the SUBACK.
    pub async fn connect(port: u16, id: &str, filters: &[&str]) -> Observer {
        let mut o = MqttOptions::new(id.to_string(), ("127.0.0.1", port));
        o.set_keep_alive(5);
        o.set_max_packet_size(1 << 24, 1 << 24);
        let (client, mut eventloop) = AsyncClient::builder(o).capacity(100).build();
        for f in filters {
            client
                .subscribe(f.to_string(), QoS::AtLeastOnce)
                .await
                .unwrap();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let mut acks = 0;
        let n = filters.len();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        acks += 1;
                        if acks == n
                            && let Some(r) = ready_tx.take()
                        {
                            let _ = r.send(());
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let _ = tx.send(Msg {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        if n == 0 {
            drop(ready_rx);
        } else {
            tokio::time::timeout(WAIT, ready_rx)
                .await
                .expect("observer SUBACK")
                .unwrap();
        }
        Observer { client, rx, task }
    }

    /// The next message on `topic` (others are skipped).
    pub async fn next_on(&mut self, topic: &str) -> Msg {
        tokio::time::timeout(WAIT, async {
            loop {
                let m = self.rx.recv().await.expect("observer stopped");
                if m.topic == topic {
                    return m;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("nothing on {topic}"))
    }

    pub async fn publish(&self, topic: &str, payload: Vec<u8>, retain: bool) {
        self.client
            .publish(
                topic.to_string(),
                payload,
                PublishOptions::at_least_once().retain(retain),
            )
            .await
            .unwrap();
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Parses a STATE payload, requiring an integer timestamp.
pub fn state(m: &Msg) -> (bool, u64) {
    let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), 2, "STATE has exactly online and timestamp: {v}");
    let online = obj["online"].as_bool().expect("online is a JSON boolean");
    assert!(
        obj["timestamp"].is_u64(),
        "timestamp is a JSON integer: {v}"
    );
    (online, obj["timestamp"].as_u64().unwrap())
}

/// Settings for a test: `sparkplug` and `processing` YAML snippets are inserted as given.
pub fn settings(url: &str, host_id: &str, extra_yaml: &str) -> Settings {
    let text = format!(
        "mqtt:\n  url: \"{url}\"\n  host_id: \"{host_id}\"\n  keep_alive_s: 5\n  reconnect:\n    min_backoff_ms: 100\n    max_backoff_ms: 500\n\
         database:\n  url: \"jsonl://-\"\n{extra_yaml}"
    );
    load_settings(&text, "test.yml", &BTreeMap::new())
        .unwrap_or_else(|e| panic!("test settings: {e:?}\n{text}"))
}

/// The rules of the tests: M1's counter and temperature on G1/E1/M1.
pub const RULES: &str = r#"processing:
  tag_mappings:
    - source_tag: "G1/E1/M1/ProdCount"
      signal_type: "counter.total"
      machine_id: "M1"
      line_id: "L1"
      site_id: "S1"
    - source_tag: "G1/E1/M1/Temperature"
      signal_type: "temperature"
      machine_id: "M1"
      line_id: "L1"
      site_id: "S1"
  unmapped:
    policy: drop
"#;

/// A running pipeline with its record stream.
pub struct Running {
    pub handle: PipelineHandle,
    pub records: mpsc::Receiver<Record>,
}

pub async fn start_pipeline(s: &Settings) -> Running {
    let (tx, records) = mpsc::channel(10_000);
    let handle = pipeline::start(s, tx, None).unwrap();
    let mut status = handle.status();
    tokio::time::timeout(WAIT, status.wait_for(|s| s.sessions >= 1))
        .await
        .expect("the host session is born")
        .unwrap();
    Running { handle, records }
}

impl Running {
    /// The next record that satisfies `pred` (others are skipped).
    pub async fn next_where(&mut self, what: &str, pred: impl Fn(&Record) -> bool) -> Record {
        tokio::time::timeout(WAIT, async {
            loop {
                let r = self.records.recv().await.expect("pipeline stopped");
                if pred(&r) {
                    return r;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no record: {what}"))
    }
}

// ---- Sparkplug payloads ----

pub fn metric(name: &str, alias: u64, datatype: DataType, value: Value) -> Metric {
    Metric {
        name: Some(name.into()),
        alias: Some(alias),
        datatype: Some(datatype),
        value: MetricValue::Value(value),
        ..Metric::default()
    }
}

pub fn by_alias(alias: u64, datatype: DataType, value: Value) -> Metric {
    Metric {
        alias: Some(alias),
        datatype: Some(datatype),
        value: MetricValue::Value(value),
        ..Metric::default()
    }
}

pub fn payload(seq: Option<u64>, metrics: Vec<Metric>) -> Vec<u8> {
    Payload {
        timestamp: Some(pipeline::now_ms()),
        metrics,
        seq,
        uuid: None,
        body: None,
    }
    .encode()
    .unwrap()
}

pub fn nbirth(seq: u64, bd_seq: u64) -> Vec<u8> {
    payload(
        Some(seq),
        vec![metric(
            "bdSeq",
            0,
            DataType::Int64,
            Value::Int64(bd_seq as i64),
        )],
    )
}

pub fn dbirth_m1(seq: u64) -> Vec<u8> {
    payload(
        Some(seq),
        vec![
            metric("ProdCount", 1, DataType::UInt32, Value::UInt32(10)),
            metric("Temperature", 2, DataType::Double, Value::Double(20.5)),
        ],
    )
}

/// Publishes the births of G1/E1 with device M1 and waits for the pipeline to see them.
pub async fn birth_e1(edge: &Observer, seq0: u64, bd_seq: u64) {
    edge.publish("spBv1.0/G1/NBIRTH/E1", nbirth(seq0, bd_seq), false)
        .await;
    edge.publish(
        "spBv1.0/G1/DBIRTH/E1/M1",
        dbirth_m1((seq0 + 1) % 256),
        false,
    )
    .await;
}

/// A TCP proxy in front of the broker whose connections the test can cut (an unclean
/// disconnect: the broker publishes the client's Will).
pub struct Proxy {
    pub port: u16,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target_port: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let list = std::sync::Arc::clone(&conns);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                list.lock().unwrap().push(task);
            }
        });
        Proxy {
            port,
            conns,
            accept,
        }
    }

    /// Drops every proxied connection without an MQTT DISCONNECT.
    pub fn cut(&self) {
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

// ---- HTTP ----

/// A minimal HTTP/1.1 GET: (status code, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    try_http_get(addr, path).await.expect("HTTP GET")
}

/// [`http_get`] that reports a connection error instead of panicking (for polling a server
/// that is still starting).
pub async fn try_http_get(
    addr: std::net::SocketAddr,
    path: &str,
) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    let (head, body) = raw.split_once("\r\n\r\n").ok_or_else(bad)?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    Ok((code, body.to_string()))
}
