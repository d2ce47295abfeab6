//! `oee-stream run` as a process: a real Mosquitto, a real PostgreSQL database of its own, the
//! HTTP endpoints, and SIGTERM in the middle of a stream.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sparkplug::{DataType, Value};

mod common;
mod support;

use common::TestDb;
use support::{
    Broker, Observer, RULES, WAIT, birth_e1, by_alias, free_port, http_get, payload, try_http_get,
};

/// The service process, killed if a test fails before it stops it.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("runs kill");
    assert!(status.success());
}

/// Polls `/metrics` until the line `name value` is there.
async fn wait_for_metric(http: SocketAddr, line: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(Ok((200, body))) =
            tokio::time::timeout(Duration::from_secs(2), try_http_get(http, "/metrics")).await
            && body.lines().any(|l| l == line)
        {
            return;
        }
        assert!(Instant::now() < deadline, "/metrics never showed {line:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_ready(http: SocketAddr) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(Ok((200, _))) =
            tokio::time::timeout(Duration::from_secs(2), try_http_get(http, "/ready")).await
        {
            return;
        }
        assert!(Instant::now() < deadline, "/ready never answered 200");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn births_and_data_reach_postgres_and_sigterm_loses_nothing() {
    let broker = Broker::start().await;
    let db = TestDb::create("run").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let http: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("address");
    let config = dir.path().join("oee.yml");
    std::fs::write(
        &config,
        format!(
            "mqtt:\n  url: \"{}\"\n  host_id: \"e2e\"\n\
             database:\n  url: \"{}\"\n  batch_max_latency_ms: 5000\n  spool:\n    dir: \"{}\"\n\
             http:\n  listen: \"{http}\"\n{RULES}",
            broker.url(),
            db.url,
            dir.path().join("spool").display()
        ),
    )
    .expect("writes the config");

    let mut watcher = Observer::connect(broker.port, "watcher", &["spBv1.0/STATE/e2e"]).await;
    let service = Service(
        Command::new(env!("CARGO_BIN_EXE_oee-stream"))
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starts oee-stream run"),
    );
    let birth = watcher.next_on("spBv1.0/STATE/e2e").await;
    assert!(support::state(&birth).0, "the STATE birth comes first");
    wait_for_ready(http).await;
    // The binary allocates with jemalloc, one arena (the options `.cargo/config.toml` compiles
    // in), and reports what it holds.
    if cfg!(feature = "jemalloc") {
        let (_, metrics) = try_http_get(http, "/metrics").await.expect("GET /metrics");
        assert!(
            metrics
                .lines()
                .any(|l| l == "oee_stream_allocator_arenas 1"),
            "jemalloc with one arena:\n{metrics}"
        );
        let allocated = metrics
            .lines()
            .find_map(|l| l.strip_prefix("oee_stream_allocator_allocated_bytes "))
            .and_then(|v| v.parse::<u64>().ok())
            .expect("oee_stream_allocator_allocated_bytes");
        assert!(allocated > 0, "the heap holds something: {allocated}");
    }

    let edge = Observer::connect(broker.port, "edge-e1", &[]).await;
    birth_e1(&edge, 0, 1).await;
    // 300 DDATA messages, each a new ProdCount and Temperature; the batch latency (5 s) is
    // longer than the test, so at SIGTERM most rows are still in memory.
    const N: u64 = 300;
    for i in 0..N {
        let m = vec![
            by_alias(1, DataType::UInt32, Value::UInt32(11 + i as u32)),
            by_alias(2, DataType::Double, Value::Double(20.0 + i as f64)),
        ];
        edge.publish(
            "spBv1.0/G1/DDATA/E1/M1",
            payload(Some((2 + i) % 256), m),
            false,
        )
        .await;
    }
    wait_for_metric(
        http,
        &format!("oee_stream_mqtt_messages_total{{type=\"DDATA\"}} {N}"),
    )
    .await;
    let (code, health) = http_get(http, "/health").await;
    assert_eq!(code, 200);
    assert!(health.contains("\"status\":\"ok\""), "{health}");

    let mut service = service;
    sigterm(&service.0);
    let death = watcher.next_on("spBv1.0/STATE/e2e").await;
    assert!(
        !support::state(&death).0,
        "the STATE death before disconnecting"
    );
    let exit = tokio::task::spawn_blocking(move || {
        let status = service.0.wait();
        (service, status)
    });
    let (_service, status) = tokio::time::timeout(Duration::from_secs(30), exit)
        .await
        .expect("oee-stream stops within 30 s")
        .expect("joins");
    assert!(status.expect("exit status").success());

    // Births (2 mapped metrics) + N messages × 2 mapped metrics, each exactly once.
    let c = db.client().await;
    let rows: i64 = c
        .query_one("SELECT count(*) FROM telemetry", &[])
        .await
        .expect("counts")
        .get(0);
    assert_eq!(rows, 2 + 2 * N as i64);
    let distinct: i64 = c
        .query_one(
            "SELECT count(DISTINCT value) FROM telemetry WHERE signal_type = 'counter.total'",
            &[],
        )
        .await
        .expect("counts")
        .get(0);
    assert_eq!(distinct, 1 + N as i64);
    let online: i64 = c
        .query_one(
            "SELECT count(*) FROM events WHERE event_type IN ('node_online', 'device_online')",
            &[],
        )
        .await
        .expect("counts")
        .get(0);
    assert_eq!(online, 2);
}
