//! The host session state machine on its hot path: DDATA in seq order.
//!
//! - `host/ddata_in_order_20`: `Host::handle` on a DDATA of 20 alias-only metrics (one device of
//!   one edge node), seq 0–255 wrapping, every message the expected one: decode, seq check,
//!   alias lookup, typing and one sample per metric.
//!
//! Throughput is in messages per second. Run with `cargo bench -p sparkplug --bench host`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sparkplug::{
    DataType, Host, HostConfig, Metric, MetricValue, Payload, RebirthMode, Value, WireValue,
};

const T0: u64 = 1_718_900_200_000;
const METRICS: u64 = 20;
const NODE: &str = "spBv1.0/Plant7/NBIRTH/Gateway-A";
const DEVICE: &str = "spBv1.0/Plant7/DBIRTH/Gateway-A/Filler";
const DATA: &str = "spBv1.0/Plant7/DDATA/Gateway-A/Filler";

fn encode(seq: u64, metrics: Vec<Metric>) -> Vec<u8> {
    Payload {
        timestamp: Some(T0 + seq),
        metrics,
        seq: Some(seq),
        uuid: None,
        body: None,
    }
    .encode()
    .expect("the bench payload encodes")
}

fn nbirth() -> Vec<u8> {
    let bd_seq = Metric {
        name: Some("bdSeq".into()),
        datatype: Some(DataType::UInt64),
        value: MetricValue::Value(Value::UInt64(0)),
        ..Default::default()
    };
    encode(0, vec![bd_seq])
}

fn dbirth() -> Vec<u8> {
    let metrics = (0..METRICS)
        .map(|i| Metric {
            name: Some(format!("Line1/Filler/Value_{i:02}")),
            alias: Some(100 + i),
            datatype: Some(DataType::Double),
            value: MetricValue::Value(Value::Double(0.0)),
            ..Default::default()
        })
        .collect();
    encode(1, metrics)
}

/// DDATA with this seq: 20 alias-only Double values, each with a timestamp.
fn ddata(seq: u64) -> Vec<u8> {
    let metrics = (0..METRICS)
        .map(|i| Metric {
            alias: Some(100 + i),
            timestamp: Some(T0 + seq),
            value: MetricValue::Untyped(WireValue::Double(20.0 + (seq + i) as f64)),
            ..Default::default()
        })
        .collect();
    encode(seq, metrics)
}

fn bench_host(c: &mut Criterion) {
    let mut group = c.benchmark_group("host");
    group.throughput(Throughput::Elements(1));
    let data: Vec<Vec<u8>> = (0..256).map(ddata).collect();
    let mut host = Host::new(HostConfig {
        rebirth_mode: RebirthMode::Off,
        ..HostConfig::default()
    });
    let mut out = Vec::new();
    host.handle(NODE, &nbirth(), T0, &mut out);
    host.handle(DEVICE, &dbirth(), T0, &mut out);
    // The births took seq 0 and 1; the next DDATA is 2.
    let mut seq = 2usize;
    let mut now = T0;
    group.bench_function("ddata_in_order_20", |b| {
        b.iter(|| {
            out.clear();
            now += 1;
            host.handle(DATA, black_box(&data[seq]), now, &mut out);
            seq = (seq + 1) % 256;
        })
    });
    group.finish();
    let c = host.counters();
    assert_eq!(c.data_messages, c.messages - 2, "every DDATA applied");
    assert_eq!((c.reorder_buffered, c.seq_gaps, c.seq_late), (0, 0, 0));
}

criterion_group!(benches, bench_host);
criterion_main!(benches);
