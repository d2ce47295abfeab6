//! The Sparkplug host against a real Mosquitto: the STATE sequence seen by a second client,
//! births and data to records, rebirth requests, and a broker restart.
#![allow(clippy::unwrap_used)]

mod support;

use oee_core::normalize::SignalType;
use oee_stream::sink::{EventKind, Record};
use sparkplug::{DataType, Payload, Value};
use support::*;

const STATE_TOPIC: &str = "spBv1.0/STATE/it-host";

fn is_telemetry(r: &Record, metric: &str) -> bool {
    matches!(r, Record::Telemetry(t) if t.tag.source.metric == metric)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_birth_republish_and_death_seen_by_a_second_client() {
    let broker = Broker::start().await;
    let mut obs = Observer::connect(broker.port, "observer", &["spBv1.0/STATE/#"]).await;
    let s = settings(&broker.url(), "it-host", "sparkplug:\n  shards: 2\n");
    let run = start_pipeline(&s).await;
    let t = run.handle.status().borrow().state_timestamp.unwrap();

    // The first publish of the session: the birth with the Will's T, QoS 1, retained.
    let birth = obs.next_on(STATE_TOPIC).await;
    assert_eq!(state(&birth), (true, t));
    let late = Observer::connect(broker.port, "late", &[STATE_TOPIC]).await;
    let mut late = late;
    let retained = late.next_on(STATE_TOPIC).await;
    assert!(retained.retain, "the birth is retained");
    assert_eq!(state(&retained), (true, t));
    // T is the time of the CONNECT (within the test's run).
    let now = oee_stream::pipeline::now_ms();
    assert!(t <= now && now - t < 60_000);

    // A fake retained offline STATE: the host answers with its birth, same T. (This also shows
    // the host subscribed to its own STATE topic.)
    obs.publish(
        STATE_TOPIC,
        br#"{"online":false,"timestamp":1}"#.to_vec(),
        true,
    )
    .await;
    let fake = obs.next_on(STATE_TOPIC).await;
    assert_eq!(state(&fake), (false, 1));
    let again = tokio::time::timeout(std::time::Duration::from_secs(2), obs.next_on(STATE_TOPIC))
        .await
        .expect("birth republished within 2 s");
    assert_eq!(state(&again), (true, t));
    assert_eq!(
        run.handle
            .stats()
            .state_republished
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // Shutdown: the death (QoS 1, retained, timestamp now) before a clean DISCONNECT. With a
    // clean DISCONNECT the broker drops the Will, so an offline STATE proves the death.
    run.handle.shutdown().await;
    let death = obs.next_on(STATE_TOPIC).await;
    let (online, ts) = state(&death);
    assert!(!online);
    assert!(ts >= t);
    let mut after = Observer::connect(broker.port, "after", &[STATE_TOPIC]).await;
    let retained = after.next_on(STATE_TOPIC).await;
    assert!(retained.retain);
    assert_eq!(state(&retained), (false, ts));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn births_and_data_become_records_of_the_mapped_asset() {
    let broker = Broker::start().await;
    let s = settings(
        &broker.url(),
        "it-host",
        &format!("sparkplug:\n  shards: 3\n{RULES}"),
    );
    let mut run = start_pipeline(&s).await;
    let edge = Observer::connect(broker.port, "edge-e1", &[]).await;
    birth_e1(&edge, 0, 7).await;
    edge.publish(
        "spBv1.0/G1/DDATA/E1/M1",
        payload(
            Some(2),
            vec![
                by_alias(1, DataType::UInt32, Value::UInt32(42)),
                by_alias(2, DataType::Double, Value::Double(21.0)),
            ],
        ),
        false,
    )
    .await;

    let online = run
        .next_where(
            "node online",
            |r| matches!(r, Record::Event(e) if e.kind == EventKind::NodeOnline),
        )
        .await;
    let Record::Event(online) = online else {
        unreachable!()
    };
    assert_eq!(online.payload["edge_node"], "E1");
    assert_eq!(online.payload["bd_seq"], 7);

    // The birth value, then the data value, of the counter.
    let mut counts = Vec::new();
    while counts.len() < 2 {
        let r = run
            .next_where("ProdCount", |r| is_telemetry(r, "ProdCount"))
            .await;
        let Record::Telemetry(t) = r else {
            unreachable!()
        };
        assert_eq!(t.tag.asset.machine_id, "M1");
        assert_eq!(t.tag.asset.line_id, "L1");
        assert_eq!(t.tag.asset.site_id, "S1");
        assert_eq!(t.tag.signal_type, SignalType::CounterTotal);
        assert_eq!(t.quality, 192);
        assert_eq!(t.bd_seq, Some(7));
        assert!(t.received_at_ms > 0);
        counts.push((t.value, t.seq));
    }
    assert_eq!(counts, vec![(Some(10.0), Some(1)), (Some(42.0), Some(2))]);
    // Shard snapshots are refreshed when a shard's queue runs empty and at the end.
    let stats = std::sync::Arc::clone(run.handle.stats());
    run.handle.shutdown().await;
    assert_eq!(stats.messages_of(sparkplug::MessageType::DData), 1);
    assert_eq!(stats.host_counters().node_births, 1);
    assert_eq!(stats.host_counters().device_births, 1);
    // Shutdown drops the pipeline's record senders: the stream ends.
    while run.records.recv().await.is_some() {}
}

fn assert_rebirth(m: &Msg) {
    let p = Payload::decode(&m.payload).unwrap();
    assert!(p.seq.is_none());
    assert!(p.timestamp.is_some());
    assert_eq!(p.metrics.len(), 1);
    assert_eq!(p.metrics[0].name.as_deref(), Some("Node Control/Rebirth"));
    assert!(!m.retain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebirth_ncmd_after_a_seq_gap_and_after_an_unknown_alias() {
    let broker = Broker::start().await;
    let mut obs = Observer::connect(broker.port, "observer", &["spBv1.0/G1/NCMD/+"]).await;
    let s = settings(
        &broker.url(),
        "it-host",
        &format!("sparkplug:\n  shards: 2\n  reorder_timeout_ms: 200\n{RULES}"),
    );
    let mut run = start_pipeline(&s).await;
    let edge = Observer::connect(broker.port, "edge", &[]).await;

    // E1: births (seq 0, 1), then seq 3: the gap does not fill within 200 ms.
    birth_e1(&edge, 0, 1).await;
    edge.publish(
        "spBv1.0/G1/DDATA/E1/M1",
        payload(
            Some(3),
            vec![by_alias(1, DataType::UInt32, Value::UInt32(11))],
        ),
        false,
    )
    .await;
    let ncmd = obs.next_on("spBv1.0/G1/NCMD/E1").await;
    assert_rebirth(&ncmd);
    let ev = run
        .next_where(
            "rebirth event",
            |r| matches!(r, Record::Event(e) if e.kind == EventKind::RebirthRequested),
        )
        .await;
    let Record::Event(ev) = ev else {
        unreachable!()
    };
    assert_eq!(ev.payload["reason"], "sequence gap");
    assert_eq!(ev.payload["published"], true);

    // E2: a node metric by an alias its birth never declared.
    edge.publish(
        "spBv1.0/G1/NBIRTH/E2",
        payload(
            Some(0),
            vec![
                metric("bdSeq", 0, DataType::Int64, Value::Int64(0)),
                metric("Speed", 1, DataType::Float, Value::Float(1.0)),
            ],
        ),
        false,
    )
    .await;
    edge.publish(
        "spBv1.0/G1/NDATA/E2",
        payload(
            Some(1),
            vec![by_alias(99, DataType::Float, Value::Float(2.0))],
        ),
        false,
    )
    .await;
    let ncmd = obs.next_on("spBv1.0/G1/NCMD/E2").await;
    assert_rebirth(&ncmd);
    let stats = run.handle.stats();
    assert!(
        stats
            .rebirths_sent
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
    run.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_stales_everything_then_recovers_through_births() {
    let mut broker = Broker::start().await;
    let s = settings(
        &broker.url(),
        "it-host",
        &format!("sparkplug:\n  shards: 2\n{RULES}"),
    );
    let mut run = start_pipeline(&s).await;
    let first_t = run.handle.status().borrow().state_timestamp.unwrap();
    {
        let edge = Observer::connect(broker.port, "edge", &[]).await;
        birth_e1(&edge, 0, 1).await;
        run.next_where("birth value", |r| is_telemetry(r, "Temperature"))
            .await;
    }

    broker.kill();
    // Every metric goes STALE at the time of the loss, and the node goes offline.
    let stale = run
        .next_where("stale temperature", |r| {
            matches!(r, Record::Telemetry(t) if t.tag.source.metric == "Temperature" && t.quality == 500)
        })
        .await;
    let Record::Telemetry(stale) = stale else {
        unreachable!()
    };
    assert_eq!(stale.value, None);
    let off = run
        .next_where(
            "node offline",
            |r| matches!(r, Record::Event(e) if e.kind == EventKind::NodeOffline),
        )
        .await;
    let Record::Event(off) = off else {
        unreachable!()
    };
    assert_eq!(off.payload["reason"], "connection_lost");
    let mut status = run.handle.status();
    tokio::time::timeout(WAIT, status.wait_for(|s| !s.connected && s.losses == 1))
        .await
        .unwrap()
        .unwrap();

    // Same port again: the host reconnects (new session, new T) and publishes its birth.
    broker.restart().await;
    tokio::time::timeout(WAIT, status.wait_for(|s| s.connected && s.sessions >= 2))
        .await
        .expect("reconnected")
        .unwrap();
    let second_t = status.borrow().state_timestamp.unwrap();
    assert!(second_t > first_t);
    let mut obs = Observer::connect(broker.port, "observer", &[STATE_TOPIC]).await;
    assert_eq!(state(&obs.next_on(STATE_TOPIC).await), (true, second_t));

    // The node re-births; data flows again with good quality.
    let edge = Observer::connect(broker.port, "edge2", &[]).await;
    birth_e1(&edge, 0, 2).await;
    let back = run
        .next_where("good temperature", |r| {
            matches!(r, Record::Telemetry(t) if t.tag.source.metric == "Temperature" && t.quality == 192)
        })
        .await;
    let Record::Telemetry(back) = back else {
        unreachable!()
    };
    assert_eq!(back.bd_seq, Some(2));
    run.handle.shutdown().await;
}

/// Publishes a marker on `topic` and returns the first message seen there: the marker if the
/// host published nothing on it before.
async fn first_after_marker(obs: &mut Observer, topic: &str) -> Msg {
    obs.publish(topic, b"marker".to_vec(), false).await;
    obs.next_on(topic).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_mode_requests_rebirths_without_state_and_passive_mode_publishes_nothing() {
    let broker = Broker::start().await;
    let mut obs = Observer::connect(
        broker.port,
        "observer",
        &["spBv1.0/G1/NCMD/+", "spBv1.0/STATE/#"],
    )
    .await;
    let edge = Observer::connect(broker.port, "edge", &[]).await;

    // active: a DATA for an unknown node gets an NCMD; no STATE at all.
    let s = settings(&broker.url(), "active-host", "sparkplug:\n  mode: active\n");
    let run = start_pipeline(&s).await;
    edge.publish(
        "spBv1.0/G1/NDATA/E7",
        payload(
            Some(5),
            vec![by_alias(1, DataType::Float, Value::Float(1.0))],
        ),
        false,
    )
    .await;
    let first = obs.rx.recv().await.unwrap();
    assert_eq!(
        first.topic, "spBv1.0/G1/NCMD/E7",
        "no STATE before: {first:?}"
    );
    assert_rebirth(&first);
    run.handle.shutdown().await;
    let m = first_after_marker(&mut obs, "spBv1.0/STATE/active-host").await;
    assert_eq!(m.payload, b"marker", "no STATE death in active mode");

    // passive: the same trigger publishes nothing.
    let s = settings(
        &broker.url(),
        "passive-host",
        "sparkplug:\n  mode: passive\n",
    );
    let mut run = start_pipeline(&s).await;
    edge.publish(
        "spBv1.0/G1/NBIRTH/E8",
        payload(
            Some(0),
            vec![metric("bdSeq", 0, DataType::Int64, Value::Int64(0))],
        ),
        false,
    )
    .await;
    edge.publish(
        "spBv1.0/G1/NDATA/E8",
        payload(
            Some(1),
            vec![by_alias(42, DataType::Float, Value::Float(1.0))],
        ),
        false,
    )
    .await;
    run.next_where(
        "node online",
        |r| matches!(r, Record::Event(e) if e.kind == EventKind::NodeOnline),
    )
    .await;
    let stats = std::sync::Arc::clone(run.handle.stats());
    run.handle.shutdown().await;
    assert!(stats.host_counters().rebirth_disabled >= 1);
    assert_eq!(
        stats
            .rebirths_sent
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let m = first_after_marker(&mut obs, "spBv1.0/G1/NCMD/E8").await;
    assert_eq!(m.payload, b"marker");
    let m = first_after_marker(&mut obs, "spBv1.0/STATE/passive-host").await;
    assert_eq!(m.payload, b"marker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_will_fires_with_the_sessions_timestamp_on_an_unclean_disconnect() {
    let broker = Broker::start().await;
    let proxy = Proxy::start(broker.port).await;
    let mut obs = Observer::connect(broker.port, "observer", &[STATE_TOPIC]).await;
    let s = settings(
        &format!("mqtt://127.0.0.1:{}", proxy.port),
        "it-host",
        "sparkplug:\n  shards: 1\n",
    );
    let run = start_pipeline(&s).await;
    let t = run.handle.status().borrow().state_timestamp.unwrap();
    assert_eq!(state(&obs.next_on(STATE_TOPIC).await), (true, t));

    proxy.cut();
    let will = obs.next_on(STATE_TOPIC).await;
    assert_eq!(state(&will), (false, t), "the Will carries the CONNECT's T");
    // The host comes back with a new session and a new T.
    let back = obs.next_on(STATE_TOPIC).await;
    let (online, t2) = state(&back);
    assert!(online);
    assert!(t2 > t);
    let mut late = Observer::connect(broker.port, "late", &[STATE_TOPIC]).await;
    let retained = late.next_on(STATE_TOPIC).await;
    assert!(retained.retain);
    assert_eq!(state(&retained), (true, t2));
    run.handle.shutdown().await;
}
