//! `/metrics`, `/health` and `/ready` over real HTTP.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use oee_stream::http::{self, HttpState};
use oee_stream::metrics;
use oee_stream::pipeline::PipelineStats;
use oee_stream::sink::SinkStats;
use oee_stream::source::mqtt::SessionStatus;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

mod support;
use support::http_get as get;

struct Server {
    addr: std::net::SocketAddr,
    stats: Arc<PipelineStats>,
    sink: Arc<SinkStats>,
    status: watch::Sender<SessionStatus>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start() -> Server {
    let stats = Arc::new(PipelineStats::new(2));
    let sink = Arc::new(SinkStats::default());
    stats.running.store(true, Ordering::Relaxed);
    let (status, status_rx) = watch::channel(SessionStatus::default());
    let state = HttpState {
        stats: Arc::clone(&stats),
        status: status_rx,
        registry: Arc::new(metrics::registry(Arc::clone(&stats), Arc::clone(&sink))),
        tag_mappings: 4,
        live: oee_stream::live::Live::channel(1).0,
        acknowledge: Default::default(),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(http::serve(listener, state, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        stats,
        sink,
        status,
        stop: Some(stop),
        task,
    }
}

#[tokio::test]
async fn metrics_expose_counters_gauges_and_stage_histograms() {
    let s = start().await;
    s.stats.messages[2].fetch_add(3, Ordering::Relaxed); // NDATA
    s.stats.rebirths_sent.fetch_add(2, Ordering::Relaxed);
    s.stats.shards[1].queue_depth.store(7, Ordering::Relaxed);
    s.stats.shards[0].metrics.store(11, Ordering::Relaxed);
    s.stats.timings.observe("decode", 0.000_003);
    s.sink.rows_telemetry.fetch_add(5, Ordering::Relaxed);
    s.sink.spool_bytes.store(4096, Ordering::Relaxed);
    let (code, body) = get(s.addr, "/metrics").await;
    assert_eq!(code, 200);
    for line in [
        "oee_stream_mqtt_messages_total{type=\"NDATA\"} 3",
        "oee_stream_mqtt_messages_total{type=\"NBIRTH\"} 0",
        "oee_stream_rebirths_sent_total 2",
        "oee_stream_shard_queue_depth{shard=\"1\"} 7",
        "oee_stream_alias_cache_entries 11",
        "oee_stream_host_events_total{event=\"seq_gaps\"} 0",
        "stream_processor_pipeline_duration_seconds_count{stage=\"decode\"} 1",
        "oee_stream_rows_written_total{table=\"telemetry\"} 5",
        "oee_stream_rows_written_total{table=\"faults\"} 0",
        "oee_stream_spool_bytes 4096",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in\n{body}"
        );
    }
    assert!(body.trim_end().ends_with("# EOF"));
}

#[tokio::test]
async fn health_has_the_seed_shape_and_ready_follows_the_broker_session() {
    let mut s = start().await;
    s.stats.shards[0].nodes.store(3, Ordering::Relaxed);
    let (code, body) = get(s.addr, "/health").await;
    assert_eq!(code, 200);
    let health: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["connected"], false);
    assert_eq!(health["decoder"]["cached_nodes"], 3);
    assert_eq!(health["decoder"]["alias_cache_entries"], 0);
    assert_eq!(health["normalizer"]["tag_mappings_count"], 4);

    let (code, body) = get(s.addr, "/ready").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("not connected"));

    s.status.send_modify(|st| st.connected = true);
    let (code, _) = get(s.addr, "/ready").await;
    assert_eq!(code, 200);
    let (_, body) = get(s.addr, "/health").await;
    assert!(body.contains("\"status\":\"ok\""), "{body}");

    s.stats.running.store(false, Ordering::Relaxed);
    let (code, body) = get(s.addr, "/ready").await;
    assert_eq!(code, 503);
    assert!(body.contains("stopped"));

    if let Some(stop) = s.stop.take() {
        let _ = stop.send(());
    }
    tokio::time::timeout(Duration::from_secs(5), s.task)
        .await
        .expect("server stops")
        .expect("joins")
        .expect("serves without error");
}
