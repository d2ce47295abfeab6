//! The Sparkplug TCK host scenarios (tck/src/main/java/org/eclipse/sparkplug/tck/test/host/),
//! reflected at the level of the pure state machine: what the host must conclude and what it
//! must publish. STATE publishing and MQTT CONNECT/SUBSCRIBE live in the MQTT layer.

mod common;

use common::*;
use sparkplug::{
    DataType, HostConfig, HostEvent, MetricValue, OfflineReason, Payload, Quality, Value,
};

#[test]
fn tck_session_establishment_births_bring_node_and_device_online_with_their_values() {
    let mut h = host(HostConfig::default());
    let ev = feed(&mut h, &topic("NBIRTH", None), &standard_nbirth(), 10);
    assert!(matches!(
        ev.first(),
        Some(HostEvent::NodeOnline {
            seq: 0,
            bd_seq: Some(1),
            ..
        })
    ));
    assert_eq!(names(&ev), ["bdSeq", "Temp", "Count"]);
    let ev = feed(&mut h, &topic("DBIRTH", Some("D")), &standard_dbirth(1), 11);
    assert!(matches!(ev.first(), Some(HostEvent::DeviceOnline { .. })));
    assert_eq!(names(&ev), ["Speed", "Running"]);
    assert!(
        samples(&ev)
            .iter()
            .all(|s| s.flags.birth && s.quality == Quality::GOOD)
    );
    assert_eq!(h.counters().rebirth_requests, 0);
}

#[test]
fn tck_session_establishment_host_started_after_the_edge_node_asks_for_births() {
    let mut h = host(HostConfig::default());
    // Only DATA is flowing: nothing is stored under a made-up name, one rebirth goes out.
    let mut ev = feed(&mut h, &topic("DDATA", Some("D")), &ndata(40, 1), 1);
    ev.extend(feed(&mut h, &topic("NDATA", None), &ndata(41, 1), 2));
    assert!(samples(&ev).is_empty());
    assert_eq!(rebirths(&ev).len(), 1);
    // The births answer it; DATA then resolves.
    feed(&mut h, &topic("NBIRTH", None), &standard_nbirth(), 3);
    feed(&mut h, &topic("DBIRTH", Some("D")), &standard_dbirth(1), 4);
    let ev = feed(&mut h, &topic("NDATA", None), &ndata(2, 9), 5);
    assert_eq!(sample(&ev, "Count").value, Some(Value::Int32(9)));
    assert_eq!(h.node(G, E).map(|n| n.rebirth_outstanding), Some(false));
}

#[test]
fn tck_session_termination_connection_loss_marks_all_metrics_stale() {
    let mut h = online_host(HostConfig::default());
    let mut ev = Vec::new();
    h.connection_lost(7777, &mut ev);
    let stale = samples(&ev);
    assert_eq!(stale.len(), 5);
    assert!(stale.iter().all(|s| s.quality == Quality::STALE
        && s.value.is_none()
        && s.flags.stale
        && s.timestamp == 7777));
    assert!(ev.iter().any(|e| matches!(
        e,
        HostEvent::DeviceOffline {
            reason: OfflineReason::ConnectionLost,
            ..
        }
    )));
    assert_eq!(h.node(G, E).map(|n| n.online), Some(false));
    assert_eq!(h.counters().connection_losses, 1);
}

#[test]
fn tck_send_command_rebirth_is_an_ncmd_with_timestamp_no_seq_and_one_boolean_metric() {
    let mut h = online_host(HostConfig::default());
    // A device-level problem (unknown device) still asks the node, by NCMD.
    let ev = feed(
        &mut h,
        &topic("DDATA", Some("Unknown")),
        &ndata(2, 1),
        123_456,
    );
    let r = rebirths(&ev);
    assert_eq!(r.len(), 1);
    let r = r.first().expect("one request");
    assert_eq!(r.topic, "spBv1.0/Plant7/NCMD/Gateway-A");
    assert!(!r.topic.contains("DCMD"));
    let p = Payload::decode(&r.payload).expect("decodes");
    assert_eq!(p.timestamp, Some(123_456));
    assert_eq!(p.seq, None);
    assert_eq!(p.metrics.len(), 1);
    let m = p.metrics.first().expect("metric");
    assert_eq!(m.name.as_deref(), Some("Node Control/Rebirth"));
    assert_eq!(m.alias, None);
    assert_eq!(m.datatype, Some(DataType::Boolean));
    assert_eq!(m.value, MetricValue::Value(Value::Boolean(true)));
}

#[test]
fn tck_edge_session_termination_ddeath_then_ndeath() {
    let mut h = online_host(HostConfig::default());
    let ev = feed(
        &mut h,
        &topic("DDEATH", Some("D")),
        &payload(Some(2), Some(900), vec![]),
        950,
    );
    assert_eq!(names(&ev), ["Speed", "Running"]);
    assert!(
        samples(&ev)
            .iter()
            .all(|s| s.flags.stale && s.timestamp == 900)
    );
    assert_eq!(h.device_online(G, E, "D"), Some(false));
    assert_eq!(h.node(G, E).map(|n| n.online), Some(true));
    let ev = feed(&mut h, &topic("NDEATH", None), &ndeath(1), 1000);
    // The device is already offline: only the node's metrics go STALE, at receipt time.
    assert_eq!(names(&ev), ["bdSeq", "Temp", "Count"]);
    assert!(
        samples(&ev)
            .iter()
            .all(|s| s.flags.stale && s.timestamp == 1000)
    );
    assert!(matches!(
        ev.last(),
        Some(HostEvent::NodeOffline {
            reason: OfflineReason::Death,
            ..
        })
    ));
    assert_eq!(h.node(G, E).map(|n| n.online), Some(false));
    assert_eq!(h.counters().rebirth_requests, 0);
}

fn ordering_host(reorder_timeout_ms: u64) -> sparkplug::Host {
    online_host(HostConfig {
        reorder_timeout_ms,
        ..HostConfig::default()
    })
}

fn ddata(seq: u64) -> Vec<u8> {
    payload(
        Some(seq),
        None,
        vec![by_alias(10, Value::Float(seq as f32))],
    )
}

#[test]
fn tck_message_ordering_gap_filled_within_the_reorder_timeout_sends_no_rebirth() {
    let mut h = ordering_host(5000);
    let mut ev = feed(&mut h, &topic("DDATA", Some("D")), &ddata(3), 1000);
    ev.extend(poll(&mut h, 3000));
    ev.extend(feed(&mut h, &topic("DDATA", Some("D")), &ddata(2), 4000));
    ev.extend(poll(&mut h, 20_000));
    assert!(rebirths(&ev).is_empty());
    let order: Vec<Option<u8>> = samples(&ev).iter().map(|s| s.seq).collect();
    assert_eq!(order, [Some(2), Some(3)]);
}

#[test]
fn tck_message_ordering_gap_not_filled_sends_exactly_one_rebirth_after_the_timeout() {
    let mut h = ordering_host(5000);
    let mut ev = feed(&mut h, &topic("DDATA", Some("D")), &ddata(3), 1000);
    ev.extend(feed(&mut h, &topic("DDATA", Some("D")), &ddata(4), 1100));
    assert_eq!(h.next_deadline(), Some(6000));
    ev.extend(poll(&mut h, 5999));
    assert!(rebirths(&ev).is_empty());
    ev.extend(poll(&mut h, 6000));
    ev.extend(poll(&mut h, 7000));
    ev.extend(feed(&mut h, &topic("DDATA", Some("D")), &ddata(5), 7100));
    ev.extend(poll(&mut h, 60_000));
    assert_eq!(rebirths(&ev).len(), 1);
    assert_eq!(samples(&ev).len(), 3);
}

#[test]
fn tck_multiple_brokers_late_ndeath_with_an_older_bdseq_is_ignored() {
    let mut h = host(HostConfig::default());
    feed(
        &mut h,
        &topic("NBIRTH", None),
        &nbirth(0, 1, vec![bm("Temp", Some(1), Value::Double(1.0))]),
        1,
    );
    // The node moves to another server: new MQTT session, bdSeq 2.
    feed(
        &mut h,
        &topic("NBIRTH", None),
        &nbirth(0, 2, vec![bm("Temp", Some(1), Value::Double(2.0))]),
        2,
    );
    // The first server delivers the old session's Will late.
    let ev = feed(&mut h, &topic("NDEATH", None), &ndeath(1), 3);
    assert!(ev.is_empty());
    assert_eq!(
        h.node(G, E).map(|n| (n.online, n.bd_seq)),
        Some((true, Some(2)))
    );
    assert_eq!(h.counters().node_deaths_ignored, 1);
    // The current session's death applies; a duplicate of it (the Will after a clean NDEATH) does not.
    let ev = feed(&mut h, &topic("NDEATH", None), &ndeath(2), 4);
    assert!(matches!(
        ev.last(),
        Some(HostEvent::NodeOffline {
            bd_seq: Some(2),
            ..
        })
    ));
    assert!(feed(&mut h, &topic("NDEATH", None), &ndeath(2), 5).is_empty());
    assert_eq!(h.counters().node_deaths_ignored, 2);
}
