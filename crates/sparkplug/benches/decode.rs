//! Decode throughput of the Sparkplug B codec, and topic parsing.
//!
//! - `decode/ddata_alias_only_20`: a typical DDATA of 20 alias-only metrics (no names, no
//!   datatype, each with a timestamp) carrying a mix of int, long, float, double and bool values.
//! - `decode/dbirth_1000`: a large DBIRTH of 1,000 metrics named like
//!   `Line1/Machine7/Temperature_042`, each with an alias, a datatype and a timestamp; every
//!   analog metric (Temperature, Pressure, Speed) carries an `engUnit` property, and those whose
//!   index is a multiple of ten also `engLow`/`engHigh`.
//! - `topic/parse`: `Topic::parse` on DDATA, NBIRTH and STATE topics.
//!
//! Both payloads are built with the crate's own encoder. Throughput is in metrics (decode) or
//! topics (parse) per second. Run with `cargo bench -p sparkplug --bench decode`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sparkplug::{
    DataType, Metric, MetricValue, Payload, PropertySet, PropertyValue, Topic, Value, WireValue,
};

const T0: u64 = 1_718_900_200_000;

fn ddata_alias_only(n: u64) -> Payload {
    let metrics = (0..n)
        .map(|i| Metric {
            alias: Some(100 + i),
            timestamp: Some(T0 + 250 + i),
            value: MetricValue::Untyped(match i % 5 {
                0 => WireValue::Int(1_000 + i as u32 * 7),
                1 => WireValue::Float(20.5 + i as f32 * 0.25),
                2 => WireValue::Boolean(i % 2 == 0),
                3 => WireValue::Long(987_654_321 + i),
                _ => WireValue::Double(1013.25 + i as f64 * 0.125),
            }),
            ..Default::default()
        })
        .collect();
    Payload {
        timestamp: Some(T0 + 300),
        metrics,
        seq: Some(42),
        uuid: None,
        body: None,
    }
}

fn string_prop(s: &str) -> PropertyValue {
    PropertyValue {
        datatype: Some(DataType::String),
        value: MetricValue::Value(Value::String(s.into())),
    }
}

fn double_prop(v: f64) -> PropertyValue {
    PropertyValue {
        datatype: Some(DataType::Double),
        value: MetricValue::Value(Value::Double(v)),
    }
}

fn dbirth(n: u64) -> Payload {
    let metrics = (0..n)
        .map(|i| {
            let (kind, value, unit) = match i % 6 {
                0 => (
                    "Temperature",
                    Value::Float(21.5 + i as f32 * 0.1),
                    Some("degC"),
                ),
                1 => (
                    "Pressure",
                    Value::Double(1.013 + i as f64 * 0.001),
                    Some("bar"),
                ),
                2 => ("Speed", Value::Int32(1_200 + i as i32), Some("rpm")),
                3 => ("Count", Value::UInt64(1_000_000 + i), None),
                4 => ("Running", Value::Boolean(i % 4 == 0), None),
                _ => ("State", Value::String("Producing".into()), None),
            };
            let properties = unit.map(|u| {
                let mut props = vec![("engUnit".to_string(), string_prop(u))];
                if i % 10 == 0 {
                    props.push(("engLow".to_string(), double_prop(0.0)));
                    props.push(("engHigh".to_string(), double_prop(150.0)));
                }
                PropertySet(props)
            });
            Metric {
                name: Some(format!(
                    "Line{}/Machine{}/{kind}_{:03}",
                    1 + i / 500,
                    1 + (i / 50) % 10,
                    i % 1000
                )),
                alias: Some(i),
                timestamp: Some(T0 + i),
                datatype: Some(value.datatype()),
                properties,
                value: MetricValue::Value(value),
                ..Default::default()
            }
        })
        .collect();
    Payload {
        timestamp: Some(T0),
        metrics,
        seq: Some(0),
        uuid: None,
        body: None,
    }
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (name, payload) in [
        ("ddata_alias_only_20", ddata_alias_only(20)),
        ("dbirth_1000", dbirth(1000)),
    ] {
        let bytes = payload.encode().expect("the bench payload encodes");
        assert_eq!(
            Payload::decode(&bytes).expect("the bench payload decodes"),
            payload
        );
        group.throughput(Throughput::Elements(payload.metrics.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| Payload::decode(black_box(&bytes)).expect("decodes"))
        });
    }
    group.finish();
}

fn bench_topic(c: &mut Criterion) {
    let mut group = c.benchmark_group("topic");
    group.throughput(Throughput::Elements(1));
    for (name, topic) in [
        ("parse_ddata", "spBv1.0/Plant7/DDATA/Gateway-A/Filler"),
        ("parse_nbirth", "spBv1.0/Plant7/NBIRTH/Gateway-A"),
        ("parse_state", "spBv1.0/STATE/scada-host-1"),
    ] {
        assert!(Topic::parse(topic).is_ok());
        group.bench_function(name, |b| {
            b.iter(|| Topic::parse(black_box(topic)).expect("parses"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decode, bench_topic);
criterion_main!(benches);
