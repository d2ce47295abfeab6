//! The host against payloads encoded by Eclipse Tahu (testdata/sparkplug-vectors). Vectors whose
//! seq does not fit a session are re-encoded with another seq; everything else is untouched.

mod common;

use common::*;
use sparkplug::{DataType, HostConfig, HostEvent, Quality, Value};

#[test]
fn nbirth_basic_then_ndata_node_metric_resolves_aliases_from_the_birth() {
    let mut h = host(HostConfig::default());
    let ev = feed(&mut h, &topic("NBIRTH", None), &vector("nbirth_basic"), 50);
    assert!(matches!(
        ev.first(),
        Some(HostEvent::NodeOnline {
            bd_seq: Some(3),
            seq: 0,
            timestamp: 1_718_900_000_000,
            ..
        })
    ));
    assert_eq!(
        names(&ev),
        [
            "bdSeq",
            "Node Control/Rebirth",
            "Node Control/Next Server",
            "Node Control/Scan Rate",
            "Properties/OS Version",
            "Gateway/CPU Load"
        ]
    );
    assert!(
        samples(&ev)
            .iter()
            .all(|s| s.flags.birth && s.bd_seq == Some(3))
    );
    let info = h.node(G, E).expect("node");
    assert_eq!(
        (info.online, info.bd_seq, info.next_seq),
        (true, Some(3), 1)
    );

    let ev = feed(
        &mut h,
        &topic("NDATA", None),
        &vector_with_seq("ndata_node_metric", 1),
        60,
    );
    let cpu = sample(&ev, "Gateway/CPU Load");
    assert_eq!((cpu.alias, cpu.datatype), (Some(14), DataType::Float));
    assert_eq!(cpu.value, Some(Value::Float(37.75)));
    assert_eq!(cpu.timestamp, 1_718_900_062_990);
    assert_eq!(
        (cpu.received_at, cpu.seq, cpu.flags.birth),
        (60, Some(1), false)
    );
    let scan = sample(&ev, "Node Control/Scan Rate");
    assert_eq!(scan.value, Some(Value::Int64(500)));
    assert!(rejects(&ev).is_empty() && rebirths(&ev).is_empty());
}

#[test]
fn dbirth_filler_then_ddata_without_datatype_takes_names_and_types_from_the_birth() {
    let mut h = host(HostConfig::default());
    feed(&mut h, &topic("NBIRTH", None), &vector("nbirth_basic"), 1);
    let ev = feed(
        &mut h,
        &topic("DBIRTH", Some("Filler")),
        &vector_with_seq("dbirth_filler", 1),
        2,
    );
    assert!(
        matches!(ev.first(), Some(HostEvent::DeviceOnline { device, .. }) if &**device == "Filler")
    );
    assert_eq!(samples(&ev).len(), 11);
    let ev = feed(
        &mut h,
        &topic("DDATA", Some("Filler")),
        &vector_with_seq("ddata_alias_only_no_datatype", 2),
        3,
    );
    let got: Vec<(String, DataType, Option<Value>)> = samples(&ev)
        .iter()
        .map(|s| (s.name.to_string(), s.datatype, s.value.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "Counts/Infeed".into(),
                DataType::Int32,
                Some(Value::Int32(8850))
            ),
            (
                "Tank/Pressure".into(),
                DataType::Double,
                Some(Value::Double(3.9375))
            ),
            (
                "Counts/Lifetime".into(),
                DataType::UInt64,
                Some(Value::UInt64(987_654_321_111))
            ),
            (
                "Energy/NetWh".into(),
                DataType::Int64,
                Some(Value::Int64(-1400))
            ),
            ("Alarm/Code".into(), DataType::Int16, Some(Value::Int16(-2))),
            (
                "Nozzle/Temp".into(),
                DataType::Float,
                Some(Value::Float(66.5))
            ),
        ]
    );
    assert!(
        samples(&ev)
            .iter()
            .all(|s| s.device.as_deref() == Some("Filler"))
    );
    assert_eq!(sample(&ev, "Counts/Infeed").timestamp, 1_718_900_060_101);
}

#[test]
fn template_definition_instance_and_partial_ddata_flatten_to_member_samples() {
    let mut h = host(HostConfig::default());
    let ev = feed(
        &mut h,
        &topic("NBIRTH", None),
        &vector("template_definition"),
        1,
    );
    // Definitions are kept, not emitted.
    assert_eq!(names(&ev), ["bdSeq", "Node Control/Rebirth"]);
    let ev = feed(
        &mut h,
        &topic("DBIRTH", Some("CIP-Skid")),
        &vector_with_seq("template_instance", 1),
        2,
    );
    assert_eq!(
        names(&ev),
        [
            "Pumps/P101/Enabled",
            "Pumps/P101/FlowLpm",
            "Pumps/P101/Starts",
            "Pumps/P101/Status",
            "Pumps/P101/RunHours"
        ]
    );
    assert_eq!(
        sample(&ev, "Pumps/P101/Starts").value,
        Some(Value::UInt32(57))
    );
    assert_eq!(sample(&ev, "Pumps/P101/Starts").alias, None);
    let ev = feed(
        &mut h,
        &topic("DDATA", Some("CIP-Skid")),
        &vector_with_seq("template_instance_partial_ddata", 2),
        3,
    );
    assert!(rejects(&ev).is_empty(), "{ev:#?}");
    assert_eq!(names(&ev), ["Pumps/P101/FlowLpm", "Pumps/P101/Starts"]);
    let flow = sample(&ev, "Pumps/P101/FlowLpm");
    assert_eq!(
        (flow.datatype, flow.value.clone()),
        (DataType::Double, Some(Value::Double(212.25)))
    );
    assert_eq!(flow.timestamp, 1_718_900_202_850);
    assert_eq!(
        sample(&ev, "Pumps/P101/Starts").value,
        Some(Value::UInt32(58))
    );
}

#[test]
fn template_nested_instance_flattens_recursively() {
    let mut h = host(HostConfig::default());
    feed(
        &mut h,
        &topic("NBIRTH", None),
        &vector("template_definition"),
        1,
    );
    let ev = feed(
        &mut h,
        &topic("DBIRTH", Some("CIP-Skid")),
        &vector_with_seq("template_nested", 1),
        2,
    );
    let n = names(&ev);
    assert!(n.contains(&"Stations/S1/Label".to_string()), "{n:?}");
    assert!(n.contains(&"Stations/S1/Pump/FlowLpm".to_string()), "{n:?}");
    assert!(n.contains(&"Stations/S1/SetTempC".to_string()), "{n:?}");
    assert_eq!(
        sample(&ev, "Stations/S1/Pump/Starts").datatype,
        DataType::UInt32
    );
}

#[test]
fn ndeath_bdseq_matches_nbirth_basic_and_stales_every_metric_at_receipt_time() {
    let mut h = host(HostConfig::default());
    feed(&mut h, &topic("NBIRTH", None), &vector("nbirth_basic"), 1);
    let ev = feed(
        &mut h,
        &topic("NDEATH", None),
        &vector("ndeath_bdseq"),
        9_999,
    );
    let stale = samples(&ev);
    assert_eq!(stale.len(), 6);
    assert!(stale.iter().all(|s| s.flags.stale
        && s.value.is_none()
        && s.quality == Quality::STALE
        && s.timestamp == 9_999));
    assert!(matches!(
        ev.last(),
        Some(HostEvent::NodeOffline {
            bd_seq: Some(3),
            ..
        })
    ));
    assert_eq!(h.node(G, E).map(|n| n.online), Some(false));
    assert_eq!(h.counters().node_deaths, 1);
}

#[test]
fn seq_255_then_seq_0_after_wrap_are_in_order() {
    let mut h = host(HostConfig::default());
    feed(
        &mut h,
        &topic("NBIRTH", None),
        &vector_with_seq("nbirth_basic", 253),
        1,
    );
    feed(
        &mut h,
        &topic("DBIRTH", Some("Filler")),
        &vector_with_seq("dbirth_filler", 254),
        2,
    );
    let a = feed(
        &mut h,
        &topic("DDATA", Some("Filler")),
        &vector("seq_255"),
        3,
    );
    let b = feed(
        &mut h,
        &topic("DDATA", Some("Filler")),
        &vector("seq_0_after_wrap"),
        4,
    );
    assert_eq!(sample(&a, "Counts/Scrap").value, Some(Value::Int32(39)));
    assert_eq!(sample(&b, "Counts/Scrap").value, Some(Value::Int32(40)));
    assert_eq!(sample(&b, "Counts/Scrap").seq, Some(0));
    let c = h.counters();
    assert_eq!(
        (
            c.reorder_buffered,
            c.seq_gaps,
            c.seq_late,
            c.rebirth_requests
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(h.node(G, E).map(|n| n.next_seq), Some(1));
}

#[test]
fn metric_historical_is_flagged_and_leaves_live_state_alone() {
    let mut h = host(HostConfig::default());
    feed(&mut h, &topic("NBIRTH", None), &vector("nbirth_basic"), 1);
    feed(
        &mut h,
        &topic("DBIRTH", Some("Filler")),
        &vector_with_seq("dbirth_filler", 1),
        2,
    );
    let before = h
        .metric(G, E, Some("Filler"), "Counts/Scrap")
        .expect("metric");
    let ev = feed(
        &mut h,
        &topic("DDATA", Some("Filler")),
        &vector_with_seq("metric_historical", 2),
        3,
    );
    let s = samples(&ev);
    assert_eq!(s.len(), 4);
    assert!(
        s.iter()
            .all(|s| s.flags.historical && &*s.name == "Counts/Scrap")
    );
    assert_eq!(s.first().map(|s| s.timestamp), Some(1_718_892_800_000));
    assert_eq!(h.metric(G, E, Some("Filler"), "Counts/Scrap"), Some(before));
    assert_eq!(h.counters().historical_samples, 4);
}

#[test]
fn properties_quality_gives_good_stale_and_bad() {
    let mut h = host(HostConfig::default());
    feed(&mut h, &topic("NBIRTH", None), &vector("nbirth_basic"), 1);
    let ev = feed(
        &mut h,
        &topic("DBIRTH", Some("Filler")),
        &vector_with_seq("properties_quality", 1),
        2,
    );
    assert_eq!(sample(&ev, "Line/Speed").quality, Quality::GOOD);
    assert_eq!(sample(&ev, "Line/Vibration").quality, Quality::STALE);
    assert_eq!(sample(&ev, "Line/Jam").quality, Quality::BAD);
    assert_eq!(sample(&ev, "Line/Ambient").quality, Quality::GOOD);
    assert_eq!(sample(&ev, "Line/Ambient").value, Some(Value::Int16(-12)));
}

#[test]
fn ddeath_vector_stales_the_device_at_its_payload_timestamp() {
    let mut h = host(HostConfig::default());
    feed(
        &mut h,
        &topic("NBIRTH", None),
        &vector_with_seq("nbirth_basic", 168),
        1,
    );
    feed(
        &mut h,
        &topic("DBIRTH", Some("Capper")),
        &vector_with_seq("dbirth_packaging_machine", 169),
        2,
    );
    let ev = feed(
        &mut h,
        &topic("DDEATH", Some("Capper")),
        &vector("ddeath"),
        3,
    );
    let s = samples(&ev);
    assert_eq!(s.len(), 7);
    assert!(
        s.iter()
            .all(|s| s.flags.stale && s.timestamp == 1_718_900_600_000)
    );
    assert!(matches!(
        ev.last(),
        Some(HostEvent::DeviceOffline {
            timestamp: 1_718_900_600_000,
            ..
        })
    ));
    assert_eq!(h.device_online(G, E, "Capper"), Some(false));
}
