//! Bad input at the MQTT level against `oee-stream run` (a real Mosquitto, a JSON-lines sink):
//! malformed payloads, topics that are not Sparkplug, alias-only data from nodes that never
//! were born, births over the metric limit, templates nested deeper than the decoder allows and
//! 100,000 distinct edge-node names, with a good edge node's data in the middle of it all.
//!
//! Checked: the service stays up and answers `/health`; every good message reaches the sink;
//! every kind of rejection is counted in `/metrics` (exactly where the count is known); the
//! host's node count and alias cache stay within the configured limits, and so does the live
//! node list (`/api/nodes`); rejections are logged with their topic, rate-limited (far fewer
//! lines than rejections; the limiter's arithmetic is unit-tested in `log_limit.rs`). The peak
//! resident memory of the service is printed (not asserted: it depends on the machine).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, MqttOptions, PublishOptions};
use sparkplug::{DataType, Metric, MetricValue, Template, Value};

mod support;

use support::{Broker, by_alias, free_port, metric, nbirth, payload, try_http_get};

/// Generous: the flood is ~110,000 messages on a shared two-core machine.
const FLOOD_WAIT: Duration = Duration::from_secs(300);

const MAX_NODES: u64 = 200;
const MAX_METRICS_PER_NODE: u64 = 1000;

const DISTINCT_NODES: u64 = 100_000;
const GARBAGE: u64 = 2000;
const WRONG_TOPICS: u64 = 2000;
const ALIAS_ONLY: u64 = 2000;
const HUGE_BIRTHS: u64 = 5;
/// Good DDATA messages of G1/E1/M1, spread over the flood.
const GOOD: u64 = 200;

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `/metrics` as `name{labels}` → value.
async fn metrics(http: SocketAddr) -> BTreeMap<String, f64> {
    let (code, body) =
        tokio::time::timeout(Duration::from_secs(10), try_http_get(http, "/metrics"))
            .await
            .expect("/metrics answers in time")
            .expect("/metrics answers");
    assert_eq!(code, 200);
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

fn get(m: &BTreeMap<String, f64>, key: &str) -> u64 {
    m.get(key).copied().unwrap_or(0.0) as u64
}

/// Polls `/metrics` until `ok` holds for it; panics with the last snapshot otherwise.
async fn wait_metrics(http: SocketAddr, what: &str, ok: impl Fn(&BTreeMap<String, f64>) -> bool) {
    let deadline = Instant::now() + FLOOD_WAIT;
    loop {
        let m = metrics(http).await;
        if ok(&m) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never held; /metrics: {m:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The ProdCount values of G1/E1/M1 in the sink file.
fn good_values(sink: &std::path::Path) -> Vec<u64> {
    let text = std::fs::read_to_string(sink).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["stream"] == "telemetry" && v["sp_metric"] == "ProdCount")
        .filter_map(|v| v["value"].as_f64())
        .map(|v| v as u64)
        .collect()
}

/// A template instance nested `depth` levels deep, an Int32 at the bottom.
fn nested(depth: usize) -> Metric {
    let mut m = metric("leaf", 1, DataType::Int32, Value::Int32(1));
    m.alias = None;
    for i in 0..depth {
        m = Metric {
            name: Some(format!("level{i}")),
            datatype: Some(DataType::Template),
            value: MetricValue::Value(Value::Template(Template {
                version: None,
                template_ref: Some("T".into()),
                is_definition: false,
                metrics: vec![m],
                parameters: Vec::new(),
            })),
            ..Metric::default()
        };
    }
    m
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_input_is_counted_bounded_and_good_data_keeps_flowing() {
    // QoS 0 deliveries beyond max_queued_messages (default 1000) are dropped by Mosquitto for a
    // subscriber that is momentarily behind; the test needs every message to arrive.
    let broker = Broker::start_with("max_queued_messages 10000000\n").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let sink = dir.path().join("out.jsonl");
    let http: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("address");
    let config = dir.path().join("oee.yml");
    std::fs::write(
        &config,
        format!(
            "mqtt:\n  url: \"{}\"\n  host_id: \"flood\"\n\
             sparkplug:\n  shards: 2\n  max_nodes: {MAX_NODES}\n  max_metrics_per_node: {MAX_METRICS_PER_NODE}\n  max_devices_per_node: 10\n\
             database:\n  url: \"jsonl://{}\"\n  batch_max_latency_ms: 50\n  spool:\n    dir: \"{}\"\n\
             http:\n  listen: \"{http}\"\n{}",
            broker.url(),
            sink.display(),
            dir.path().join("spool").display(),
            support::RULES
        ),
    )
    .expect("writes the config");
    let log_path = dir.path().join("run.log");
    let log = std::fs::File::create(&log_path).expect("creates the log");
    let service = Service(
        Command::new(env!("CARGO_BIN_EXE_oee-stream"))
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starts oee-stream run"),
    );
    let deadline = Instant::now() + FLOOD_WAIT;
    while !matches!(
        tokio::time::timeout(Duration::from_secs(2), try_http_get(http, "/ready")).await,
        Ok(Ok((200, _)))
    ) {
        assert!(Instant::now() < deadline, "/ready never answered 200");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // One connection for everything, so that the service sees it in this order.
    let mut o = MqttOptions::new("flood", ("127.0.0.1", broker.port));
    o.set_keep_alive(30);
    o.set_max_packet_size(1 << 24, 1 << 24);
    let (client, mut eventloop) = AsyncClient::builder(o).capacity(1000).build();
    let poller = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let send = |topic: String, bytes: Vec<u8>| {
        let client = client.clone();
        async move {
            client
                .publish(topic, bytes, PublishOptions::at_most_once())
                .await
                .expect("queues the publish");
        }
    };

    // The good node is born first.
    send("spBv1.0/G1/NBIRTH/E1".into(), nbirth(0, 1)).await;
    send("spBv1.0/G1/DBIRTH/E1/M1".into(), support::dbirth_m1(1)).await;
    let mut good_seq = 2u64;
    let mut good_sent = 0u64;
    let total = GARBAGE + WRONG_TOPICS + ALIAS_ONLY + HUGE_BIRTHS + DISTINCT_NODES;
    let good_every = total / GOOD;
    let wrong = [
        "spBv1.0/G3/NOPE/E1",
        "spBv1.0/G3",
        "spBv1.0/G3/NDATA/E1/D1/x/y",
    ];
    let garbage: Vec<u8> = (0..300u32).map(|i| (i * 7919 % 251) as u8).collect();
    let huge = payload(
        Some(0),
        (0..5 * MAX_METRICS_PER_NODE)
            .map(|i| {
                metric(
                    &format!("m{i:05}"),
                    i,
                    DataType::Double,
                    Value::Double(i as f64),
                )
            })
            .collect(),
    );
    for i in 0..total {
        let (topic, bytes) = if i < GARBAGE {
            (
                format!("spBv1.0/G2/NBIRTH/Garbage{}", i % 10),
                garbage[..(i as usize % 300)].to_vec(),
            )
        } else if i < GARBAGE + WRONG_TOPICS {
            (wrong[i as usize % wrong.len()].to_string(), vec![1, 2, 3])
        } else if i < GARBAGE + WRONG_TOPICS + ALIAS_ONLY {
            (
                format!("spBv1.0/G2/NDATA/Ghost{}", i % 50),
                payload(
                    Some(i % 256),
                    vec![by_alias(7, DataType::Int32, Value::Int32(1))],
                ),
            )
        } else if i < GARBAGE + WRONG_TOPICS + ALIAS_ONLY + HUGE_BIRTHS {
            (format!("spBv1.0/G2/NBIRTH/Huge{i}"), huge.clone())
        } else {
            (format!("spBv1.0/G4/NBIRTH/N{i:06}"), nbirth(0, 0))
        };
        send(topic, bytes).await;
        if i % good_every == 0 && good_sent < GOOD {
            let m = vec![by_alias(
                1,
                DataType::UInt32,
                Value::UInt32(11 + good_sent as u32),
            )];
            send(
                "spBv1.0/G1/DDATA/E1/M1".into(),
                payload(Some(good_seq % 256), m),
            )
            .await;
            good_seq += 1;
            good_sent += 1;
        }
    }
    // Templates nested within the decoder's depth limit and beyond it.
    for (node, depth) in [("Deep20", 20), ("Deep40", 40)] {
        let mut birth = vec![metric("bdSeq", 0, DataType::Int64, Value::Int64(0))];
        birth.push(nested(depth));
        send(format!("spBv1.0/G2/NBIRTH/{node}"), payload(Some(0), birth)).await;
    }
    // The last message of the stream: one more good value.
    let m = vec![by_alias(
        1,
        DataType::UInt32,
        Value::UInt32(11 + GOOD as u32),
    )];
    send(
        "spBv1.0/G1/DDATA/E1/M1".into(),
        payload(Some(good_seq % 256), m),
    )
    .await;
    assert_eq!(good_sent, GOOD);

    // Every good value reaches the sink, in spite of everything around it.
    let expected: Vec<u64> = (10..=11 + GOOD).collect();
    let deadline = Instant::now() + FLOOD_WAIT;
    loop {
        let mut got = good_values(&sink);
        got.sort_unstable();
        got.dedup();
        if got == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the good node's values did not all reach the sink: {} of {}",
            got.len(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let ev = |e: &str| format!("oee_stream_host_events_total{{event=\"{e}\"}}");
    wait_metrics(http, "every rejection is counted", |m| {
        get(m, "oee_stream_invalid_topics_total") == WRONG_TOPICS
            && get(m, &ev("births_malformed")) >= GARBAGE
            && get(m, &ev("unknown_node")) >= ALIAS_ONLY
            && get(m, &ev("limit_metrics")) >= HUGE_BIRTHS
            && get(m, &ev("limit_nodes")) >= DISTINCT_NODES - MAX_NODES
            && get(m, "oee_stream_decode_errors_total") >= 1
            && get(m, "oee_stream_mqtt_messages_total{type=\"DDATA\"}") == GOOD + 1
    })
    .await;
    let m = metrics(http).await;
    // The limits held.
    assert!(get(&m, "oee_stream_edge_nodes") <= MAX_NODES, "{m:#?}");
    assert!(
        get(&m, "oee_stream_alias_cache_entries") <= MAX_NODES * MAX_METRICS_PER_NODE,
        "{m:#?}"
    );
    assert_eq!(
        get(&m, "oee_stream_mqtt_connection_losses_total"),
        0,
        "{m:#?}"
    );
    let (code, nodes) = try_http_get(http, "/api/nodes").await.expect("/api/nodes");
    assert_eq!(code, 200);
    let nodes: serde_json::Value = serde_json::from_str(&nodes).expect("JSON");
    let listed = nodes["nodes"].as_array().expect("a node list").len() as u64;
    assert!(listed <= MAX_NODES, "{listed} nodes listed");
    assert!(
        nodes["nodes"]
            .as_array()
            .expect("a node list")
            .iter()
            .any(|n| n["edge_node"] == "E1" && n["online"] == true),
        "the good node is listed online"
    );
    let (code, health) = try_http_get(http, "/health").await.expect("/health");
    assert_eq!(code, 200, "{health}");

    // Logged with the topic, rate-limited: far fewer lines than rejections.
    let text = std::fs::read_to_string(&log_path).expect("reads the log");
    let topic_lines = text
        .lines()
        .filter(|l| l.contains("not a Sparkplug B topic"))
        .collect::<Vec<_>>();
    assert!(
        topic_lines.iter().any(|l| l.contains("spBv1.0/G3/NOPE/E1")),
        "{text}"
    );
    assert!(
        (topic_lines.len() as u64) < WRONG_TOPICS,
        "{}",
        topic_lines.len()
    );
    let rejected_lines = text
        .lines()
        .filter(|l| l.contains("message or metric rejected"))
        .collect::<Vec<_>>();
    assert!(
        rejected_lines
            .iter()
            .any(|l| l.contains("spBv1.0/G2/NBIRTH/Garbage")),
        "{text}"
    );
    let rejections = get(&m, &ev("births_malformed")) + get(&m, &ev("unknown_node"));
    assert!((rejected_lines.len() as u64) < rejections);
    if let Some(kib) = peak_rss_kib(service.0.id()) {
        eprintln!("oee-stream peak resident memory during the flood: {kib} KiB");
    }
    poller.abort();
    drop(service);
}
