//! Helpers shared by the host tests: vectors, payload builders, event filters.
#![allow(dead_code)]

use std::path::Path;

use sparkplug::{
    DataType, Host, HostConfig, HostEvent, Metric, MetricSample, MetricValue, Payload, PropertySet,
    PropertyValue, RebirthRequest, RejectReason, Value,
};

pub const G: &str = "Plant7";
pub const E: &str = "Gateway-A";

/// The bytes of a Tahu vector from `testdata/sparkplug-vectors`.
pub fn vector(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/sparkplug-vectors")
        .join(format!("{name}.bin"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A vector re-encoded with another seq, to fit it into a session.
pub fn vector_with_seq(name: &str, seq: u64) -> Vec<u8> {
    let mut p = Payload::decode(&vector(name)).expect("vector decodes");
    p.seq = Some(seq);
    p.encode().expect("vector re-encodes")
}

pub fn topic(verb: &str, device: Option<&str>) -> String {
    match device {
        Some(d) => format!("spBv1.0/{G}/{verb}/{E}/{d}"),
        None => format!("spBv1.0/{G}/{verb}/{E}"),
    }
}

pub fn node_topic(edge: &str, verb: &str) -> String {
    format!("spBv1.0/{G}/{verb}/{edge}")
}

/// A birth metric: name, alias, datatype and value.
pub fn bm(name: &str, alias: Option<u64>, value: Value) -> Metric {
    Metric {
        name: Some(name.into()),
        alias,
        datatype: Some(value.datatype()),
        value: MetricValue::Value(value),
        ..Metric::default()
    }
}

/// A DATA metric by alias only, without datatype (untyped on the wire).
pub fn by_alias(alias: u64, value: Value) -> Metric {
    let wire = value.to_wire().expect("wire").expect("scalar");
    Metric {
        alias: Some(alias),
        value: MetricValue::Untyped(wire),
        ..Metric::default()
    }
}

/// A DATA metric by name only, without datatype.
pub fn by_name(name: &str, value: Value) -> Metric {
    let wire = value.to_wire().expect("wire").expect("scalar");
    Metric {
        name: Some(name.into()),
        value: MetricValue::Untyped(wire),
        ..Metric::default()
    }
}

pub fn with_quality(mut m: Metric, code: i32) -> Metric {
    m.properties = Some(PropertySet(vec![(
        "Quality".into(),
        PropertyValue {
            datatype: Some(DataType::Int32),
            value: MetricValue::Value(Value::Int32(code)),
        },
    )]));
    m
}

pub fn payload(seq: Option<u64>, ts: Option<u64>, metrics: Vec<Metric>) -> Vec<u8> {
    Payload {
        timestamp: ts,
        metrics,
        seq,
        ..Payload::default()
    }
    .encode()
    .expect("encodes")
}

/// NBIRTH with bdSeq (UInt64) and the given metrics.
pub fn nbirth(seq: u64, bd_seq: u64, mut metrics: Vec<Metric>) -> Vec<u8> {
    metrics.insert(0, bm("bdSeq", None, Value::UInt64(bd_seq)));
    payload(Some(seq), Some(1000), metrics)
}

pub fn ndeath(bd_seq: u64) -> Vec<u8> {
    payload(
        None,
        Some(5),
        vec![bm("bdSeq", None, Value::UInt64(bd_seq))],
    )
}

/// A node-level NBIRTH with bdSeq 1, seq 0 and metrics Temp (alias 1, Double), Count (alias 2, Int32).
pub fn standard_nbirth() -> Vec<u8> {
    nbirth(
        0,
        1,
        vec![
            bm("Temp", Some(1), Value::Double(20.0)),
            bm("Count", Some(2), Value::Int32(0)),
        ],
    )
}

/// A DBIRTH of device `d` with metrics Speed (alias 10, Float), Running (alias 11, Boolean).
pub fn standard_dbirth(seq: u64) -> Vec<u8> {
    payload(
        Some(seq),
        Some(1001),
        vec![
            bm("Speed", Some(10), Value::Float(1.5)),
            bm("Running", Some(11), Value::Boolean(true)),
        ],
    )
}

pub fn ndata(seq: u64, count: i32) -> Vec<u8> {
    payload(
        Some(seq),
        Some(2000 + seq),
        vec![by_alias(2, Value::Int32(count))],
    )
}

pub fn host(config: HostConfig) -> Host {
    Host::new(config)
}

/// Feeds one message and returns its events.
pub fn feed(h: &mut Host, topic: &str, bytes: &[u8], now: u64) -> Vec<HostEvent> {
    let mut out = Vec::new();
    h.handle(topic, bytes, now, &mut out);
    out
}

pub fn poll(h: &mut Host, now: u64) -> Vec<HostEvent> {
    let mut out = Vec::new();
    h.poll(now, &mut out);
    out
}

pub fn samples(events: &[HostEvent]) -> Vec<&MetricSample> {
    events.iter().filter_map(HostEvent::as_sample).collect()
}

pub fn sample<'a>(events: &'a [HostEvent], name: &str) -> &'a MetricSample {
    samples(events)
        .into_iter()
        .find(|s| &*s.name == name)
        .unwrap_or_else(|| panic!("no sample {name:?} in {events:#?}"))
}

pub fn names(events: &[HostEvent]) -> Vec<String> {
    samples(events).iter().map(|s| s.name.to_string()).collect()
}

pub fn rebirths(events: &[HostEvent]) -> Vec<&RebirthRequest> {
    events
        .iter()
        .filter_map(|e| match e {
            HostEvent::Rebirth(r) => Some(r),
            _ => None,
        })
        .collect()
}

pub fn rejects(events: &[HostEvent]) -> Vec<&RejectReason> {
    events
        .iter()
        .filter_map(|e| match e {
            HostEvent::Rejected { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

/// A host with the standard node online and device "D" born (seq 0 and 1; next seq 2).
pub fn online_host(config: HostConfig) -> Host {
    let mut h = Host::new(config);
    feed(&mut h, &topic("NBIRTH", None), &standard_nbirth(), 100);
    feed(
        &mut h,
        &topic("DBIRTH", Some("D")),
        &standard_dbirth(1),
        101,
    );
    h
}
