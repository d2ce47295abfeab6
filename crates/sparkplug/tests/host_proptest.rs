//! Arbitrary sequences of (topic, bytes, time) never panic, keep memory within the configured
//! limits, and leave `next_deadline` truthful: after `poll(now)` nothing is due at or before `now`.

use proptest::prelude::*;
use sparkplug::{DataType, Host, HostConfig, Metric, MetricValue, Payload, RebirthMode, Value};

const VERBS: &[&str] = &[
    "NBIRTH", "NDEATH", "NDATA", "NCMD", "DBIRTH", "DDEATH", "DDATA", "DCMD",
];
const EDGES: &[&str] = &["E0", "E1", "E2", "E3"];
const DEVICES: &[&str] = &["D0", "D1", "D2"];
const NAMES: &[&str] = &["bdSeq", "a", "b", "c", "d/e"];

#[derive(Clone, Debug)]
enum Op {
    Msg {
        topic: String,
        bytes: Vec<u8>,
        dt: u64,
    },
    Poll {
        dt: u64,
    },
    Lost {
        dt: u64,
    },
}

fn topic() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (0..VERBS.len(), 0..EDGES.len(), 0..DEVICES.len()).prop_map(|(v, e, d)| {
            let verb = VERBS[v];
            if verb.starts_with('D') {
                format!("spBv1.0/G/{verb}/{}/{}", EDGES[e], DEVICES[d])
            } else {
                format!("spBv1.0/G/{verb}/{}", EDGES[e])
            }
        }),
        1 => "[a-zA-Z/+#.0-9]{0,24}",
        1 => Just("spBv1.0/STATE/h".to_string()),
    ]
}

fn metric() -> impl Strategy<Value = Metric> {
    (
        proptest::option::weighted(0.8, 0..NAMES.len()),
        proptest::option::weighted(0.6, 0u64..6),
        proptest::option::weighted(
            0.7,
            prop_oneof![
                Just(DataType::Int32),
                Just(DataType::UInt64),
                Just(DataType::Double),
                Just(DataType::Boolean),
                Just(DataType::String)
            ],
        ),
        any::<i32>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(name, alias, datatype, n, historical, null)| {
            let value = match datatype {
                _ if null => MetricValue::Null,
                Some(DataType::UInt64) => MetricValue::Value(Value::UInt64(n as u64 & 0xff)),
                Some(DataType::Double) => MetricValue::Value(Value::Double(f64::from(n))),
                Some(DataType::Boolean) => MetricValue::Value(Value::Boolean(n % 2 == 0)),
                Some(DataType::String) => MetricValue::Value(Value::String(n.to_string())),
                Some(_) => MetricValue::Value(Value::Int32(n)),
                None => MetricValue::Untyped(sparkplug::WireValue::Int(n as u32)),
            };
            Metric {
                name: name.map(|i| NAMES[i].to_string()),
                alias,
                datatype,
                is_historical: historical,
                is_null: null,
                value,
                ..Metric::default()
            }
        })
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => (proptest::option::weighted(0.9, 0u64..260), proptest::option::of(0u64..5000), proptest::collection::vec(metric(), 0..6))
            .prop_map(|(seq, timestamp, metrics)| Payload { timestamp, metrics, seq, ..Payload::default() }
                .encode()
                .unwrap_or_default()),
        1 => proptest::collection::vec(any::<u8>(), 0..48),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (topic(), bytes(), 0u64..1500).prop_map(|(topic, bytes, dt)| Op::Msg { topic, bytes, dt }),
        3 => (0u64..4000).prop_map(|dt| Op::Poll { dt }),
        1 => (0u64..100).prop_map(|dt| Op::Lost { dt }),
    ]
}

fn config() -> impl Strategy<Value = HostConfig> {
    (
        0u64..3000,
        0u64..6000,
        0u32..3,
        0usize..4,
        0usize..6,
        any::<bool>(),
        0usize..3,
    )
        .prop_map(
            |(reorder, throttle, rate, buffered, metrics, malformed, mode)| HostConfig {
                reorder_timeout_ms: reorder,
                rebirth_mode: [RebirthMode::Off, RebirthMode::Active, RebirthMode::Primary][mode],
                rebirth_throttle_ms: throttle,
                global_rebirths_per_second: rate,
                max_nodes: 3,
                max_devices_per_node: 2,
                max_metrics_per_node: metrics + 2,
                max_buffered_per_node: buffered,
                rebirth_on_malformed: malformed,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_traffic_never_panics_and_stays_within_limits(
        cfg in config(),
        ops in proptest::collection::vec(op(), 0..60),
    ) {
        let mut h = Host::new(cfg.clone());
        let mut now = 1_000u64;
        let mut out = Vec::new();
        for op in ops {
            match op {
                Op::Msg { topic, bytes, dt } => {
                    now += dt;
                    h.handle(&topic, &bytes, now, &mut out);
                }
                Op::Poll { dt } => {
                    now += dt;
                    h.poll(now, &mut out);
                    if let Some(d) = h.next_deadline() {
                        prop_assert!(d > now, "deadline {} not after poll at {}", d, now);
                    }
                }
                Op::Lost { dt } => {
                    now += dt;
                    h.connection_lost(now, &mut out);
                    prop_assert_eq!(h.next_deadline(), None);
                }
            }
            let u = h.usage();
            prop_assert!(u.nodes <= cfg.max_nodes);
            prop_assert!(u.max_devices_in_a_node <= cfg.max_devices_per_node);
            prop_assert!(u.max_metrics_in_a_node <= cfg.max_metrics_per_node);
            prop_assert!(u.max_buffered_in_a_node <= cfg.max_buffered_per_node);
            prop_assert!(u.queued_rebirths <= cfg.max_nodes);
            if cfg.rebirth_mode == RebirthMode::Off {
                prop_assert_eq!(h.counters().rebirth_requests, 0);
            }
            out.clear();
        }
    }
}
