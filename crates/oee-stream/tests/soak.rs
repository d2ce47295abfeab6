//! The short soak (CI's variant of scripts/soak.sh, docs/reliability.md "Soak"): the service
//! as a process with the demo configuration and its own PostgreSQL database, fed by the
//! simulated plant (200 machines, each reporting once a second: about 200 DDATA/s) for 75 s. Every 5 s it samples the
//! service's RSS and queue depths from `/metrics`; at the end it checks by counts that nothing
//! was lost (every published message received, every signal committed, the database holding
//! exactly the committed rows), that the queues drained, and that memory and queues did not
//! grow without bound.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use oee_stream::demo::DEMO_CONFIG;
use oee_stream::demo::driver::{self, DriveOptions, SimStats};
use oee_stream::demo::simulator::{GROUP, SimConfig, Simulator};
use oee_stream::pipeline::now_ms;

mod common;
mod service;
mod support;

use common::TestDb;
use service::{Metrics, ServiceProcess, http_addr, rss_kib};
use support::Broker;

/// How long the simulator publishes.
const RUN: Duration = Duration::from_secs(75);
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// 10 edge nodes × 20 machines. The simulator steps in whole simulated seconds, so a machine
/// reports at most once a second at speed 1: the rate comes from the number of machines.
const NODES: usize = 10;
const MACHINES_PER_NODE: usize = 20;

/// Messages the service received from edge nodes (its own rebirth NCMDs excluded).
fn received(m: &Metrics) -> u64 {
    ["NBIRTH", "NDEATH", "NDATA", "DBIRTH", "DDEATH", "DDATA"]
        .iter()
        .map(|t| m.get(&format!("oee_stream_mqtt_messages_total{{type=\"{t}\"}}")) as u64)
        .sum()
}

fn queued(m: &Metrics) -> u64 {
    (m.get("oee_stream_sink_queue_depth") + m.sum("oee_stream_shard_queue_depth")) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_stream_loses_nothing_and_memory_and_queues_stay_bounded() {
    let broker = Broker::start().await;
    let db = TestDb::create("soak").await;
    let dir = tempfile::tempdir().unwrap();
    let http = http_addr();
    let config = dir.path().join("demo.yml");
    std::fs::write(&config, DEMO_CONFIG).unwrap();
    let svc = ServiceProcess::spawn_with_env(
        &config,
        http,
        &[
            ("OEE_MQTT__URL", broker.url()),
            ("OEE_MQTT__HOST_ID", "oee-soak".into()),
            ("OEE_HTTP__LISTEN", http.to_string()),
            ("OEE_DATABASE__URL", db.url.clone()),
            (
                "OEE_DATABASE__SPOOL__DIR",
                dir.path().join("spool").display().to_string(),
            ),
            ("OEE_LOG__LEVEL", "warn".into()),
        ],
    );
    svc.wait_ready().await;

    let sim = Simulator::new(SimConfig {
        group: GROUP.to_string(),
        nodes: NODES,
        devices_per_node: MACHINES_PER_NODE,
        seed: 7,
        start_ms: now_ms(),
        report_every_ms: 1000,
        node_deaths: false,
        all_metrics: false,
    });
    let stats = Arc::new(SimStats::default());
    let opts = DriveOptions {
        host: "127.0.0.1".into(),
        port: broker.port,
        speed: 1.0,
        client_prefix: "soak".into(),
        max_rate: false,
    };
    let sim_task = tokio::spawn(driver::drive(
        sim,
        opts,
        Arc::clone(&stats),
        tokio::time::sleep(RUN),
    ));

    // (RSS KiB, queued messages and records, messages received) every SAMPLE_EVERY while the
    // simulator runs. The interval paces the sampling; no result depends on its timing.
    let mut samples: Vec<(u64, u64, u64)> = Vec::new();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    while !sim_task.is_finished() {
        tick.tick().await;
        if let (Some(m), Some(rss)) = (svc.try_metrics().await, rss_kib(svc.pid())) {
            samples.push((rss, queued(&m), received(&m)));
        }
    }
    sim_task.await.unwrap().unwrap();
    let published = stats.published.load(Relaxed);

    // Nothing lost: every published message received, every signal committed.
    let m = svc
        .wait_metrics("every published message received and committed", |m| {
            received(m) == published
                && m.telemetry_rows() == m.get("oee_stream_signals_total") as u64
                && queued(m) == 0
        })
        .await;
    let committed = m.telemetry_rows();
    assert_eq!(m.get("oee_stream_database_errors_total"), 0.0, "{m:?}");
    assert_eq!(m.get("oee_stream_spool_bytes"), 0.0);
    assert!(svc.sigterm().await.success());
    let c = db.client().await;
    let rows: i64 = c
        .query_one("SELECT count(*) FROM telemetry", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        rows as u64, committed,
        "the database holds each committed row once"
    );

    // Bounded: a third of the way in, the service is warm (engine, caches, connection pools).
    // From there on RSS may grow by what the OEE engine keeps for revisions (its horizon is
    // 2 h, longer than this run) and by allocator arenas (the 16 MiB): a leak of anything
    // message-sized (a payload, a batch) would exceed half a KiB per message.
    let n = samples.len();
    assert!(n >= 9, "sampled through the run: {samples:?}");
    let warm = samples[n / 3];
    let last = samples[n - 1];
    let messages_since = last.2 - warm.2;
    let growth_kib = last.0.saturating_sub(warm.0);
    assert!(
        growth_kib < messages_since / 2 + 16_384,
        "RSS grew by {growth_kib} KiB over {messages_since} messages: {samples:?}"
    );
    // The queues never filled: at the modest rate the service keeps up.
    let max_queued = samples.iter().map(|s| s.1).max().unwrap_or(0);
    assert!(
        max_queued < 4096,
        "queues (shard + sink) at most {max_queued}: {samples:?}"
    );
    eprintln!(
        "soak: {published} messages published and received, {committed} telemetry rows; \
         RSS {} KiB after warm-up, {} KiB at the end; samples (rss KiB, queued, received): \
         {samples:?}",
        warm.0, last.0
    );
}
