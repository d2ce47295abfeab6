//! One test per host rule: births, aliases, templates, seq/reorder, rebirth, deaths, flags,
//! quality, ignored topics and limits.

mod common;

use common::*;
use sparkplug::payload::Template;
use sparkplug::{
    DataType, HostConfig, HostEvent, Metric, MetricValue, OfflineReason, Quality, RebirthMode,
    RebirthReason, RejectReason, Value,
};

fn cfg() -> HostConfig {
    HostConfig::default()
}

// ---- births ----

#[test]
fn nbirth_accepts_any_seq_and_any_integer_bdseq_type() {
    let mut h = host(cfg());
    let birth = payload(
        Some(200),
        Some(1),
        vec![
            bm("bdSeq", None, Value::Int64(7)),
            bm("X", Some(1), Value::Int32(1)),
        ],
    );
    feed(&mut h, &topic("NBIRTH", None), &birth, 1);
    let n = h.node(G, E).expect("node");
    assert_eq!((n.online, n.bd_seq, n.next_seq), (true, Some(7), 201));
    // A 255 birth wraps to 0.
    feed(&mut h, &topic("NBIRTH", None), &nbirth(255, 8, vec![]), 2);
    assert_eq!(h.node(G, E).map(|n| n.next_seq), Some(0));
}

#[test]
fn nbirth_invalidates_devices_until_their_dbirth() {
    let mut h = online_host(cfg());
    let ev = feed(&mut h, &topic("NBIRTH", None), &standard_nbirth(), 200);
    let dev_stale: Vec<_> = samples(&ev)
        .into_iter()
        .filter(|s| s.device.is_some())
        .collect();
    assert_eq!(dev_stale.len(), 2);
    assert!(
        dev_stale
            .iter()
            .all(|s| s.flags.stale && s.timestamp == 200)
    );
    assert!(ev.iter().any(|e| matches!(
        e,
        HostEvent::DeviceOffline {
            reason: OfflineReason::NewBirth,
            ..
        }
    )));
    assert_eq!(h.device_online(G, E, "D"), None);
    let ev = feed(
        &mut h,
        &topic("DDATA", Some("D")),
        &payload(Some(1), None, vec![by_alias(10, Value::Float(2.0))]),
        201,
    );
    assert!(samples(&ev).is_empty());
    assert_eq!(rejects(&ev), [&RejectReason::UnknownDevice]);
    assert_eq!(rebirths(&ev).len(), 1);
}

#[test]
fn nbirth_stales_node_metrics_the_new_birth_no_longer_has() {
    let mut h = online_host(cfg());
    let ev = feed(
        &mut h,
        &topic("NBIRTH", None),
        &nbirth(0, 1, vec![bm("Temp", Some(1), Value::Double(1.0))]),
        300,
    );
    let count = sample(&ev, "Count");
    assert!(count.flags.stale && count.device.is_none());
    assert!(sample(&ev, "Temp").flags.birth);
}

#[test]
fn dbirth_without_an_online_node_is_rejected_and_asks_for_a_rebirth() {
    let mut h = host(cfg());
    let ev = feed(&mut h, &topic("DBIRTH", Some("D")), &standard_dbirth(1), 5);
    assert!(samples(&ev).is_empty());
    assert_eq!(rejects(&ev), [&RejectReason::UnknownNode]);
    let r = rebirths(&ev);
    assert_eq!(r.len(), 1);
    assert_eq!(
        r.first().map(|r| r.reason),
        Some(RebirthReason::UnknownNode)
    );
    assert_eq!(h.counters().unknown_node, 1);
}

#[test]
fn duplicate_alias_in_a_birth_is_malformed_and_asks_for_a_rebirth() {
    let mut h = host(cfg());
    let birth = nbirth(
        0,
        1,
        vec![
            bm("A", Some(5), Value::Int32(1)),
            bm("B", Some(5), Value::Int32(2)),
        ],
    );
    let ev = feed(&mut h, &topic("NBIRTH", None), &birth, 1);
    assert!(samples(&ev).is_empty());
    assert!(matches!(
        rejects(&ev).as_slice(),
        [RejectReason::MalformedBirth(_)]
    ));
    assert_eq!(
        rebirths(&ev).first().map(|r| r.reason),
        Some(RebirthReason::MalformedBirth)
    );
    assert_eq!(h.counters().births_malformed, 1);
    assert_eq!(h.node(G, E).map(|n| n.online), Some(false));
}

#[test]
fn birth_metric_without_name_or_datatype_is_malformed() {
    let mut h = online_host(cfg());
    let no_type = Metric {
        name: Some("X".into()),
        alias: Some(30),
        value: MetricValue::Untyped(sparkplug::WireValue::Int(1)),
        ..Metric::default()
    };
    let ev = feed(
        &mut h,
        &topic("DBIRTH", Some("E1")),
        &payload(Some(2), None, vec![no_type]),
        1,
    );
    assert!(matches!(
        rejects(&ev).as_slice(),
        [RejectReason::MalformedBirth(_)]
    ));
    assert_eq!(rebirths(&ev).len(), 1);
    let mut no_name = bm("Y", Some(31), Value::Int32(1));
    no_name.name = None;
    let ev = feed(
        &mut h,
        &topic("DBIRTH", Some("E2")),
        &payload(Some(3), None, vec![no_name]),
        2,
    );
    assert!(matches!(
        rejects(&ev).as_slice(),
        [RejectReason::MalformedBirth(_)]
    ));
    assert_eq!(h.counters().births_malformed, 2);
    assert_eq!(h.device_online(G, E, "E2"), None);
}

#[test]
fn undecodable_birth_is_malformed_and_ends_the_old_session() {
    let mut h = online_host(cfg());
    let ev = feed(&mut h, &topic("NBIRTH", None), &[0xff, 0xff, 0xff], 9);
    assert!(matches!(rejects(&ev).as_slice(), [RejectReason::Decode(_)]));
    assert!(ev.iter().any(|e| matches!(
        e,
        HostEvent::NodeOffline {
            reason: OfflineReason::RejectedBirth,
            ..
        }
    )));
    assert_eq!(rebirths(&ev).len(), 1);
    let c = h.counters();
    assert_eq!((c.decode_errors, c.births_malformed), (1, 1));
}

// ---- data ----

#[test]
fn data_resolves_by_alias_by_name_and_by_both() {
    let mut h = online_host(cfg());
    let mut both = by_alias(1, Value::Double(3.0));
    both.name = Some("Temp".into());
    let ev = feed(
        &mut h,
        &topic("NDATA", None),
        &payload(
            Some(2),
            Some(50),
            vec![
                by_alias(2, Value::Int32(5)),
                by_name("Temp", Value::Double(2.0)),
                both,
            ],
        ),
        60,
    );
    let got: Vec<(String, Option<u64>, Option<Value>)> = samples(&ev)
        .iter()
        .map(|s| (s.name.to_string(), s.alias, s.value.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("Count".into(), Some(2), Some(Value::Int32(5))),
            ("Temp".into(), Some(1), Some(Value::Double(2.0))),
            ("Temp".into(), Some(1), Some(Value::Double(3.0))),
        ]
    );
}

#[test]
fn alias_and_name_that_disagree_are_rejected() {
    let mut h = online_host(cfg());
    let mut m = by_alias(1, Value::Int32(3));
    m.name = Some("Count".into());
    let ev = feed(
        &mut h,
        &topic("NDATA", None),
        &payload(Some(2), None, vec![m]),
        1,
    );
    assert!(samples(&ev).is_empty());
    assert!(matches!(
        rejects(&ev).as_slice(),
        [RejectReason::UnknownMetric { .. }]
    ));
}

#[test]
fn unknown_alias_is_rejected_never_given_a_synthetic_name_and_asks_once() {
    let mut h = online_host(cfg());
    let mut all = Vec::new();
    for (i, seq) in [2u64, 3, 4].into_iter().enumerate() {
        let p = payload(
            Some(seq),
            None,
            vec![by_alias(42, Value::Int32(1)), by_alias(2, Value::Int32(9))],
        );
        all.extend(feed(&mut h, &topic("NDATA", None), &p, 10 + i as u64));
    }
    assert!(
        samples(&all)
            .iter()
            .all(|s| !s.name.contains("alias") && &*s.name == "Count")
    );
    assert_eq!(samples(&all).len(), 3);
    assert_eq!(rejects(&all).len(), 3);
    assert_eq!(rebirths(&all).len(), 1);
    assert_eq!(
        rebirths(&all).first().map(|r| r.reason),
        Some(RebirthReason::UnknownMetric)
    );
    let c = h.counters();
    assert_eq!(
        (c.unknown_metric, c.rebirth_requests, c.rebirth_suppressed),
        (3, 1, 2)
    );
}

#[test]
fn unknown_name_is_rejected_and_asks_for_a_rebirth() {
    let mut h = online_host(cfg());
    let ev = feed(
        &mut h,
        &topic("DDATA", Some("D")),
        &payload(Some(2), None, vec![by_name("Nope", Value::Int32(1))]),
        1,
    );
    assert!(samples(&ev).is_empty());
    assert_eq!(rebirths(&ev).len(), 1);
}

#[test]
fn data_for_an_unknown_node_is_rejected_with_one_rebirth() {
    let mut h = host(cfg());
    let mut all = feed(&mut h, &topic("NDATA", None), &ndata(5, 1), 1);
    all.extend(feed(&mut h, &topic("NDATA", None), &ndata(6, 1), 2));
    assert!(samples(&all).is_empty());
    assert_eq!(
        rejects(&all),
        [&RejectReason::UnknownNode, &RejectReason::UnknownNode]
    );
    let r = rebirths(&all);
    assert_eq!(r.len(), 1);
    assert_eq!(
        r.first().map(|r| r.topic.as_str()),
        Some("spBv1.0/Plant7/NCMD/Gateway-A")
    );
}

#[test]
fn value_that_does_not_fit_the_birth_datatype_is_rejected_per_metric() {
    let mut h = online_host(cfg());
    let p = payload(
        Some(2),
        None,
        vec![
            by_alias(2, Value::String("x".into())),
            by_alias(1, Value::Double(4.0)),
        ],
    );
    let ev = feed(&mut h, &topic("NDATA", None), &p, 1);
    assert_eq!(names(&ev), ["Temp"]);
    assert!(matches!(
        rejects(&ev).as_slice(),
        [RejectReason::Value { .. }]
    ));
    assert_eq!(h.counters().value_mismatch, 1);
}

#[test]
fn typed_data_value_is_converted_to_the_birth_datatype_when_it_fits() {
    let mut h = online_host(cfg());
    // Count is Int32 in the birth; the DATA says Int64 on the wire.
    let m = Metric {
        alias: Some(2),
        datatype: Some(DataType::Int64),
        value: MetricValue::Value(Value::Int64(-3)),
        ..Metric::default()
    };
    let ev = feed(
        &mut h,
        &topic("NDATA", None),
        &payload(Some(2), None, vec![m]),
        1,
    );
    let s = sample(&ev, "Count");
    assert_eq!(
        (s.datatype, s.value.clone()),
        (DataType::Int32, Some(Value::Int32(-3)))
    );
}

#[test]
fn null_data_value_is_a_sample_with_no_value() {
    let mut h = online_host(cfg());
    let m = Metric {
        alias: Some(1),
        is_null: true,
        ..Metric::default()
    };
    let ev = feed(
        &mut h,
        &topic("NDATA", None),
        &payload(Some(2), None, vec![m]),
        1,
    );
    assert_eq!(sample(&ev, "Temp").value, None);
}

#[test]
fn sample_timestamp_is_metric_then_payload_then_receipt_time() {
    let mut h = online_host(cfg());
    let mut with_ts = by_alias(1, Value::Double(1.0));
    with_ts.timestamp = Some(777);
    let ev = feed(
        &mut h,
        &topic("NDATA", None),
        &payload(
            Some(2),
            Some(888),
            vec![with_ts, by_alias(2, Value::Int32(1))],
        ),
        999,
    );
    assert_eq!(sample(&ev, "Temp").timestamp, 777);
    assert_eq!(sample(&ev, "Count").timestamp, 888);
    let ev = feed(
        &mut h,
        &topic("NDATA", None),
        &payload(Some(3), None, vec![by_alias(2, Value::Int32(1))]),
        999,
    );
    let s = sample(&ev, "Count");
    assert_eq!((s.timestamp, s.received_at), (999, 999));
}

#[test]
fn transient_is_flagged() {
    let mut h = online_host(cfg());
    let mut m = by_alias(1, Value::Double(1.0));
    m.is_transient = true;
    let ev = feed(
        &mut h,
        &topic("NDATA", None),
        &payload(Some(2), None, vec![m]),
        1,
    );
    assert!(sample(&ev, "Temp").flags.transient);
}

#[test]
fn quality_property_is_read_missing_is_good_unknown_codes_are_kept() {
    let mut h = online_host(cfg());
    let p = payload(
        Some(2),
        None,
        vec![
            with_quality(by_alias(1, Value::Double(1.0)), 77),
            by_alias(2, Value::Int32(1)),
        ],
    );
    let ev = feed(&mut h, &topic("NDATA", None), &p, 1);
    assert_eq!(sample(&ev, "Temp").quality, Quality(77));
    assert!(!sample(&ev, "Temp").quality.is_good());
    assert_eq!(sample(&ev, "Count").quality, Quality::GOOD);
    assert_eq!(
        h.metric(G, E, None, "Temp").map(|m| m.quality),
        Some(Quality(77))
    );
}

#[test]
fn historical_sample_never_updates_live_state() {
    let mut h = online_host(cfg());
    feed(
        &mut h,
        &topic("NDATA", None),
        &payload(Some(2), Some(5000), vec![by_alias(2, Value::Int32(1))]),
        1,
    );
    let mut old = by_alias(2, Value::Int32(0));
    old.is_historical = true;
    old.timestamp = Some(10);
    let old = with_quality(old, 0);
    let ev = feed(
        &mut h,
        &topic("NDATA", None),
        &payload(Some(3), None, vec![old]),
        2,
    );
    assert!(sample(&ev, "Count").flags.historical);
    let live = h.metric(G, E, None, "Count").expect("metric");
    assert_eq!(
        (live.last_timestamp, live.quality),
        (Some(5000), Quality::GOOD)
    );
}

// ---- templates ----

fn pump_definition() -> Metric {
    Metric {
        name: Some("_types_/Pump".into()),
        datatype: Some(DataType::Template),
        value: MetricValue::Value(Value::Template(Template {
            is_definition: true,
            metrics: vec![
                bm("Flow", None, Value::Double(0.0)),
                bm("On", None, Value::Boolean(false)),
            ],
            ..Template::default()
        })),
        ..Metric::default()
    }
}

fn pump_instance(name: Option<&str>, alias: Option<u64>, members: Vec<Metric>) -> Metric {
    Metric {
        name: name.map(Into::into),
        alias,
        datatype: Some(DataType::Template),
        value: MetricValue::Value(Value::Template(Template {
            template_ref: Some("_types_/Pump".into()),
            metrics: members,
            ..Template::default()
        })),
        ..Metric::default()
    }
}

#[test]
fn template_member_without_datatype_takes_it_from_the_definition() {
    let mut h = host(cfg());
    let untyped_member = Metric {
        name: Some("Flow".into()),
        value: MetricValue::Untyped(sparkplug::WireValue::Double(3.5)),
        ..Metric::default()
    };
    let birth = nbirth(
        0,
        1,
        vec![
            pump_definition(),
            pump_instance(
                Some("P1"),
                Some(9),
                vec![untyped_member, bm("On", None, Value::Boolean(true))],
            ),
        ],
    );
    let ev = feed(&mut h, &topic("NBIRTH", None), &birth, 1);
    assert_eq!(names(&ev), ["bdSeq", "P1/Flow", "P1/On"]);
    assert_eq!(sample(&ev, "P1/Flow").value, Some(Value::Double(3.5)));
    // Partial DATA by the instance's alias, member without datatype.
    let data = pump_instance(None, Some(9), vec![by_name("On", Value::Boolean(false))]);
    let ev = feed(
        &mut h,
        &topic("NDATA", None),
        &payload(Some(1), None, vec![data]),
        2,
    );
    assert_eq!(names(&ev), ["P1/On"]);
    assert_eq!(sample(&ev, "P1/On").value, Some(Value::Boolean(false)));
    // An unknown member is an unknown metric.
    let data = pump_instance(None, Some(9), vec![by_name("Nope", Value::Boolean(false))]);
    let ev = feed(
        &mut h,
        &topic("NDATA", None),
        &payload(Some(2), None, vec![data]),
        3,
    );
    assert!(matches!(
        rejects(&ev).as_slice(),
        [RejectReason::UnknownMetric { .. }]
    ));
    assert_eq!(rebirths(&ev).len(), 1);
}

#[test]
fn template_definition_outside_nbirth_is_rejected() {
    let mut h = online_host(cfg());
    let birth = payload(
        Some(2),
        None,
        vec![pump_definition(), bm("S", Some(3), Value::Int32(1))],
    );
    let ev = feed(&mut h, &topic("DBIRTH", Some("X")), &birth, 1);
    assert!(matches!(
        rejects(&ev).as_slice(),
        [RejectReason::TemplateDefinition { .. }]
    ));
    assert_eq!(names(&ev), ["S"]);
    assert_eq!(h.counters().template_definition_rejected, 1);
}

#[test]
fn template_members_get_stale_on_death() {
    let mut h = host(cfg());
    let birth = nbirth(
        0,
        1,
        vec![
            pump_definition(),
            pump_instance(
                Some("P1"),
                None,
                vec![
                    bm("Flow", None, Value::Double(1.0)),
                    bm("On", None, Value::Boolean(true)),
                ],
            ),
        ],
    );
    feed(&mut h, &topic("NBIRTH", None), &birth, 1);
    let ev = feed(&mut h, &topic("NDEATH", None), &ndeath(1), 2);
    assert_eq!(names(&ev), ["bdSeq", "P1/Flow", "P1/On"]);
}

// ---- seq and reordering ----

#[test]
fn gap_filled_in_time_applies_in_order_without_rebirth() {
    let mut h = online_host(cfg());
    let a = feed(&mut h, &topic("NDATA", None), &ndata(3, 3), 10);
    assert!(samples(&a).is_empty());
    assert_eq!(h.next_deadline(), Some(2010));
    let b = feed(&mut h, &topic("NDATA", None), &ndata(4, 4), 11);
    assert!(samples(&b).is_empty());
    let c = feed(&mut h, &topic("NDATA", None), &ndata(2, 2), 12);
    let order: Vec<Option<u8>> = samples(&c).iter().map(|s| s.seq).collect();
    assert_eq!(order, [Some(2), Some(3), Some(4)]);
    assert!(rebirths(&c).is_empty());
    assert_eq!(h.next_deadline(), None);
    assert!(rebirths(&poll(&mut h, 10_000)).is_empty());
    let k = h.counters();
    assert_eq!(
        (k.reorder_buffered, k.reorder_recovered, k.seq_gaps),
        (2, 1, 0)
    );
}

#[test]
fn gap_not_filled_applies_buffered_in_order_and_asks_exactly_once_after_timeout() {
    let mut h = online_host(cfg());
    feed(&mut h, &topic("NDATA", None), &ndata(5, 5), 10);
    feed(&mut h, &topic("NDATA", None), &ndata(4, 4), 20);
    assert!(poll(&mut h, 2009).is_empty());
    let ev = poll(&mut h, 2010);
    let order: Vec<Option<u8>> = samples(&ev).iter().map(|s| s.seq).collect();
    assert_eq!(order, [Some(4), Some(5)]);
    let r = rebirths(&ev);
    assert_eq!(r.len(), 1);
    assert_eq!(
        r.first().map(|r| r.reason),
        Some(RebirthReason::SequenceGap)
    );
    assert!(rebirths(&poll(&mut h, 3000)).is_empty());
    assert_eq!(h.node(G, E).map(|n| n.next_seq), Some(6));
    // The missing message arrives late: applied, flagged late, no second rebirth.
    let late = feed(&mut h, &topic("NDATA", None), &ndata(2, 2), 3001);
    assert!(sample(&late, "Count").flags.late);
    assert!(rebirths(&late).is_empty());
    let k = h.counters();
    assert_eq!((k.seq_gaps, k.seq_late, k.rebirth_requests), (1, 1, 1));
}

#[test]
fn flush_applies_buffered_messages_in_order_without_a_rebirth() {
    let mut h = online_host(cfg());
    feed(&mut h, &topic("NDATA", None), &ndata(5, 5), 10);
    feed(&mut h, &topic("NDATA", None), &ndata(4, 4), 20);
    let mut out = Vec::new();
    h.flush(30, &mut out);
    let order: Vec<Option<u8>> = samples(&out).iter().map(|s| s.seq).collect();
    assert_eq!(order, [Some(4), Some(5)]);
    assert!(rebirths(&out).is_empty());
    assert_eq!(h.next_deadline(), None);
    let k = h.counters();
    assert_eq!(
        (k.reorder_flushed, k.seq_gaps, k.rebirth_requests),
        (1, 0, 0)
    );
    // Nothing left to flush.
    let mut again = Vec::new();
    h.flush(40, &mut again);
    assert!(again.is_empty());
}

#[test]
fn zero_reorder_timeout_asks_for_a_rebirth_at_once() {
    let mut h = online_host(HostConfig {
        reorder_timeout_ms: 0,
        ..cfg()
    });
    let ev = feed(&mut h, &topic("NDATA", None), &ndata(4, 4), 10);
    assert_eq!(samples(&ev).len(), 1);
    assert_eq!(rebirths(&ev).len(), 1);
    assert_eq!(h.next_deadline(), None);
}

#[test]
fn full_reorder_buffer_gives_up_the_gap_at_once() {
    let mut h = online_host(HostConfig {
        max_buffered_per_node: 2,
        ..cfg()
    });
    feed(&mut h, &topic("NDATA", None), &ndata(4, 4), 1);
    feed(&mut h, &topic("NDATA", None), &ndata(5, 5), 2);
    let ev = feed(&mut h, &topic("NDATA", None), &ndata(6, 6), 3);
    assert_eq!(samples(&ev).len(), 3);
    assert_eq!(rebirths(&ev).len(), 1);
    assert_eq!(h.counters().reorder_overflow, 1);
    assert_eq!(h.usage().max_buffered_in_a_node, 0);
}

#[test]
fn repeated_messages_are_dropped_as_duplicates_applied_or_buffered() {
    let mut h = online_host(cfg());
    // seq 1 was the DBIRTH; the same DBIRTH again is a duplicate (more in host_seq_loss.rs).
    let ev = feed(&mut h, &topic("DBIRTH", Some("D")), &standard_dbirth(1), 5);
    assert_eq!(rejects(&ev), [&RejectReason::Duplicate(1)]);
    assert!(samples(&ev).is_empty());
    feed(&mut h, &topic("NDATA", None), &ndata(4, 4), 6);
    let ev = feed(&mut h, &topic("NDATA", None), &ndata(4, 4), 7);
    assert_eq!(rejects(&ev), [&RejectReason::Duplicate(4)]);
    let k = h.counters();
    assert_eq!((k.seq_duplicates, k.seq_late), (2, 0));
}

#[test]
fn messages_are_applied_in_seq_order_across_topics() {
    // spec #177: DBIRTH(2) and DDEATH(3) arrive swapped; the device must end up offline.
    let mut h = host(cfg());
    feed(&mut h, &topic("NBIRTH", None), &standard_nbirth(), 1);
    feed(&mut h, &topic("DBIRTH", Some("D")), &standard_dbirth(1), 2);
    feed(
        &mut h,
        &topic("DDEATH", Some("D")),
        &payload(Some(3), Some(50), vec![]),
        3,
    );
    let ev = feed(&mut h, &topic("DBIRTH", Some("D")), &standard_dbirth(2), 4);
    assert_eq!(h.device_online(G, E, "D"), Some(false));
    assert!(matches!(
        ev.last(),
        Some(HostEvent::DeviceOffline { timestamp: 50, .. })
    ));
    assert_eq!(h.counters().reorder_recovered, 1);
}

#[test]
fn nbirth_discards_the_old_sessions_buffer() {
    let mut h = online_host(cfg());
    feed(&mut h, &topic("NDATA", None), &ndata(5, 5), 1);
    let ev = feed(&mut h, &topic("NBIRTH", None), &standard_nbirth(), 2);
    assert!(
        samples(&ev)
            .iter()
            .all(|s| s.seq == Some(0) || (s.flags.stale && s.device.is_some()))
    );
    assert_eq!(h.counters().reorder_discarded, 1);
    assert_eq!(h.next_deadline(), None);
    assert!(poll(&mut h, 10_000).is_empty());
}

#[test]
fn data_without_seq_is_rejected() {
    let mut h = online_host(cfg());
    let ev = feed(
        &mut h,
        &topic("NDATA", None),
        &payload(None, None, vec![by_alias(2, Value::Int32(1))]),
        1,
    );
    assert_eq!(rejects(&ev), [&RejectReason::MissingSeq]);
    assert!(samples(&ev).is_empty());
    assert_eq!(h.counters().seq_invalid, 1);
}

// ---- rebirth policy ----

#[test]
fn rebirth_mode_off_never_emits_but_counts() {
    let mut h = host(HostConfig {
        rebirth_mode: RebirthMode::Off,
        ..cfg()
    });
    let ev = feed(&mut h, &topic("NDATA", None), &ndata(1, 1), 1);
    assert!(rebirths(&ev).is_empty());
    assert_eq!(h.counters().rebirth_disabled, 1);
    assert_eq!(h.next_deadline(), None);
}

#[test]
fn rebirth_mode_active_emits() {
    let mut h = host(HostConfig {
        rebirth_mode: RebirthMode::Active,
        ..cfg()
    });
    assert_eq!(
        rebirths(&feed(&mut h, &topic("NDATA", None), &ndata(1, 1), 1)).len(),
        1
    );
}

#[test]
fn rebirth_throttle_holds_a_new_trigger_after_an_answer_until_the_interval_ends() {
    let mut h = host(cfg());
    assert_eq!(
        rebirths(&feed(&mut h, &topic("NDATA", None), &ndata(1, 1), 1000)).len(),
        1
    );
    // Unanswered and within the interval: absorbed.
    assert!(rebirths(&feed(&mut h, &topic("NDATA", None), &ndata(2, 1), 2000)).is_empty());
    // The node answers, then sends an unknown alias within the interval: held until 6000.
    feed(&mut h, &topic("NBIRTH", None), &standard_nbirth(), 3000);
    let p = payload(Some(1), None, vec![by_alias(99, Value::Int32(1))]);
    assert!(rebirths(&feed(&mut h, &topic("NDATA", None), &p, 3500)).is_empty());
    assert_eq!(h.next_deadline(), Some(6000));
    assert!(rebirths(&poll(&mut h, 5999)).is_empty());
    let ev = poll(&mut h, 6000);
    assert_eq!(
        rebirths(&ev).first().map(|r| r.reason),
        Some(RebirthReason::UnknownMetric)
    );
    // Unanswered after the interval: asked again.
    assert_eq!(
        rebirths(&feed(&mut h, &topic("NDATA", None), &p, 11_000)).len(),
        1
    );
    let k = h.counters();
    assert_eq!(
        (
            k.rebirth_requests,
            k.rebirth_suppressed,
            k.rebirth_throttled
        ),
        (3, 1, 1)
    );
}

#[test]
fn held_rebirth_is_cancelled_by_an_nbirth() {
    let mut h = host(cfg());
    feed(&mut h, &topic("NDATA", None), &ndata(1, 1), 1000);
    feed(&mut h, &topic("NBIRTH", None), &standard_nbirth(), 1100);
    let p = payload(Some(1), None, vec![by_alias(99, Value::Int32(1))]);
    feed(&mut h, &topic("NDATA", None), &p, 1200);
    feed(&mut h, &topic("NBIRTH", None), &standard_nbirth(), 1300);
    assert!(rebirths(&poll(&mut h, 6000)).is_empty());
    assert_eq!(h.next_deadline(), None);
}

#[test]
fn global_rate_limit_defers_requests_in_order_and_loses_none() {
    let mut h = host(HostConfig {
        global_rebirths_per_second: 1,
        ..cfg()
    });
    let mut now_sent = 0;
    for edge in ["A", "B", "C"] {
        now_sent += rebirths(&feed(&mut h, &node_topic(edge, "NDATA"), &ndata(1, 1), 0)).len();
    }
    assert_eq!(now_sent, 1);
    assert_eq!(h.usage().queued_rebirths, 2);
    assert_eq!(h.next_deadline(), Some(1000));
    let ev = poll(&mut h, 1000);
    assert_eq!(
        rebirths(&ev)
            .iter()
            .map(|r| &*r.edge_node)
            .collect::<Vec<_>>(),
        ["B"]
    );
    let ev = poll(&mut h, 2000);
    assert_eq!(
        rebirths(&ev)
            .iter()
            .map(|r| &*r.edge_node)
            .collect::<Vec<_>>(),
        ["C"]
    );
    assert_eq!(h.next_deadline(), None);
    assert_eq!(h.counters().rebirth_deferred, 2);
}

// ---- deaths ----

#[test]
fn ndeath_with_other_bdseq_or_for_an_offline_node_is_ignored() {
    let mut h = online_host(cfg());
    let ev = feed(&mut h, &topic("NDEATH", None), &ndeath(0), 5);
    assert!(ev.is_empty());
    assert_eq!(h.node(G, E).map(|n| n.online), Some(true));
    feed(&mut h, &topic("NDEATH", None), &ndeath(1), 6);
    let ev = feed(&mut h, &topic("NDEATH", None), &ndeath(1), 7);
    assert!(ev.is_empty());
    let ev = feed(&mut h, &node_topic("Other", "NDEATH"), &ndeath(1), 8);
    assert!(ev.is_empty());
    let k = h.counters();
    assert_eq!((k.node_deaths, k.node_deaths_ignored), (1, 3));
}

#[test]
fn ndeath_takes_devices_offline_with_stale_markers_at_receipt_time() {
    let mut h = online_host(cfg());
    let ev = feed(&mut h, &topic("NDEATH", None), &ndeath(1), 4242);
    assert_eq!(samples(&ev).len(), 5); // Speed, Running, bdSeq, Temp, Count
    assert!(
        samples(&ev)
            .iter()
            .all(|s| s.flags.stale && s.timestamp == 4242 && s.value.is_none())
    );
    assert!(ev.iter().any(|e| matches!(
        e,
        HostEvent::DeviceOffline {
            reason: OfflineReason::Death,
            ..
        }
    )));
    assert!(matches!(
        ev.last(),
        Some(HostEvent::NodeOffline {
            reason: OfflineReason::Death,
            timestamp: 4242,
            ..
        })
    ));
    // Data after the death: unknown node.
    let ev = feed(&mut h, &topic("NDATA", None), &ndata(2, 1), 4243);
    assert_eq!(rejects(&ev), [&RejectReason::UnknownNode]);
}

#[test]
fn ddeath_uses_its_payload_timestamp_or_receipt_time() {
    let mut h = online_host(cfg());
    let ev = feed(
        &mut h,
        &topic("DDEATH", Some("D")),
        &payload(Some(2), None, vec![]),
        77,
    );
    assert!(
        samples(&ev)
            .iter()
            .all(|s| s.timestamp == 77 && s.flags.stale)
    );
    assert_eq!(samples(&ev).len(), 2);
    // A second DDEATH for an offline device is ignored; one for an unknown device is rejected.
    assert!(
        feed(
            &mut h,
            &topic("DDEATH", Some("D")),
            &payload(Some(3), None, vec![]),
            78
        )
        .is_empty()
    );
    let ev = feed(
        &mut h,
        &topic("DDEATH", Some("Z")),
        &payload(Some(4), None, vec![]),
        79,
    );
    assert_eq!(rejects(&ev), [&RejectReason::UnknownDevice]);
}

#[test]
fn connection_lost_stales_everything_and_trusts_nothing_after() {
    let mut h = online_host(cfg());
    let mut ev = Vec::new();
    h.connection_lost(5000, &mut ev);
    assert_eq!(samples(&ev).len(), 5);
    assert!(
        samples(&ev)
            .iter()
            .all(|s| s.flags.stale && s.timestamp == 5000)
    );
    assert!(ev.iter().any(|e| matches!(
        e,
        HostEvent::NodeOffline {
            reason: OfflineReason::ConnectionLost,
            ..
        }
    )));
    let ev = feed(&mut h, &topic("NDATA", None), &ndata(2, 1), 5001);
    assert!(samples(&ev).is_empty());
    assert_eq!(rebirths(&ev).len(), 1);
}

// ---- topics ----

#[test]
fn state_and_commands_produce_no_samples() {
    let mut h = online_host(cfg());
    assert!(
        feed(
            &mut h,
            "spBv1.0/STATE/scada",
            br#"{"online":true,"timestamp":1}"#,
            1
        )
        .is_empty()
    );
    assert!(feed(&mut h, "STATE/scada", b"ONLINE", 1).is_empty());
    assert!(feed(&mut h, &topic("NCMD", None), &ndata(2, 1), 1).is_empty());
    assert!(feed(&mut h, &topic("DCMD", Some("D")), &ndata(2, 1), 1).is_empty());
    let k = h.counters();
    assert_eq!((k.state_ignored, k.commands_ignored), (2, 2));
    // Commands take no part in seq: seq 2 is still expected.
    assert_eq!(h.node(G, E).map(|n| n.next_seq), Some(2));
}

#[test]
fn unparseable_topic_is_rejected_and_counted() {
    let mut h = host(cfg());
    let ev = feed(&mut h, "spBv1.0/G/NOPE/E", b"", 1);
    assert!(matches!(rejects(&ev).as_slice(), [RejectReason::Topic(_)]));
    assert_eq!(h.counters().topic_invalid, 1);
}

// ---- limits ----

#[test]
fn node_limit_refuses_new_nodes_but_evicts_nodes_without_a_session() {
    let mut h = host(HostConfig {
        max_nodes: 2,
        ..cfg()
    });
    feed(&mut h, &node_topic("A", "NBIRTH"), &standard_nbirth(), 1);
    feed(&mut h, &node_topic("B", "NBIRTH"), &standard_nbirth(), 1);
    let ev = feed(&mut h, &node_topic("C", "NBIRTH"), &standard_nbirth(), 1);
    assert_eq!(rejects(&ev), [&RejectReason::Limit("nodes")]);
    assert_eq!(h.counters().limit_nodes, 1);
    feed(&mut h, &node_topic("B", "NDEATH"), &ndeath(1), 2);
    feed(&mut h, &node_topic("C", "NBIRTH"), &standard_nbirth(), 3);
    assert_eq!(h.node(G, "C").map(|n| n.online), Some(true));
    assert_eq!(h.node(G, "B"), None);
    assert_eq!(h.usage().nodes, 2);
}

#[test]
fn device_and_metric_limits_refuse_births_without_asking_again() {
    let mut h = online_host(HostConfig {
        max_devices_per_node: 1,
        max_metrics_per_node: 6,
        ..cfg()
    });
    let ev = feed(&mut h, &topic("DBIRTH", Some("D2")), &standard_dbirth(2), 1);
    assert_eq!(rejects(&ev), [&RejectReason::Limit("devices per node")]);
    let big = payload(
        Some(3),
        None,
        (0..5)
            .map(|i| bm(&format!("M{i}"), None, Value::Int32(i)))
            .collect(),
    );
    let ev = feed(&mut h, &topic("DBIRTH", Some("D")), &big, 2);
    assert_eq!(rejects(&ev), [&RejectReason::Limit("metrics per node")]);
    assert!(rebirths(&ev).is_empty());
    let k = h.counters();
    assert_eq!((k.limit_devices, k.limit_metrics), (1, 1));
    assert!(h.usage().max_metrics_in_a_node <= 6);
}

#[test]
fn rebirth_queue_keeps_one_entry_per_node_when_a_queued_node_is_answered_and_asks_again() {
    // Regression (found by the proptest): a node answered while queued left a stale entry,
    // and queueing it again made two.
    let mut h = host(HostConfig {
        global_rebirths_per_second: 1,
        rebirth_throttle_ms: 0,
        ..cfg()
    });
    feed(&mut h, &node_topic("A", "NDATA"), &ndata(1, 1), 0);
    feed(&mut h, &node_topic("B", "NDATA"), &ndata(1, 1), 0);
    assert_eq!(h.usage().queued_rebirths, 1);
    feed(&mut h, &node_topic("B", "NBIRTH"), &standard_nbirth(), 1);
    let p = payload(Some(1), None, vec![by_alias(99, Value::Int32(1))]);
    feed(&mut h, &node_topic("B", "NDATA"), &p, 2);
    assert_eq!(h.usage().queued_rebirths, 1);
    let ev = poll(&mut h, 1000);
    assert_eq!(rebirths(&ev).len(), 1);
    assert_eq!(h.usage().queued_rebirths, 0);
}

#[test]
fn ndeath_bdseq_matches_across_integer_datatypes() {
    // 3.0 puts bdSeq as Int64 in the Will while its examples (and Tahu) use UInt64.
    let mut h = online_host(cfg());
    let will = payload(None, None, vec![bm("bdSeq", None, Value::Int64(1))]);
    let ev = feed(&mut h, &topic("NDEATH", None), &will, 10);
    assert!(matches!(ev.last(), Some(HostEvent::NodeOffline { .. })));
    assert_eq!(h.counters().node_deaths, 1);
}
