//! Normalizer behaviour through the public API: mapping, conversion, quality paths, deadband,
//! unmapped metrics, and a property test that no sample can make it panic.

use std::sync::Arc;

use oee_core::config::processing::{
    ProcessingConfig, StateCategory, StateCodeRule, StateCodesConfig, TagMapping, UnmappedConfig,
    UnmappedPolicy,
};
use oee_core::normalize::rules::RuleSet;
use oee_core::normalize::{Normalizer, Outcome, SignalType, SourceSample, Value, quality};
use proptest::prelude::*;

fn rule(tag: &str, ty: &str) -> TagMapping {
    TagMapping {
        source_tag: Some(tag.into()),
        signal_type: Some(ty.into()),
        machine_id: Some("SITE01-LINE1-M1".into()),
        line_id: Some("SITE01-LINE1".into()),
        site_id: Some("SITE01".into()),
        ..Default::default()
    }
}

fn seed_rules() -> Vec<TagMapping> {
    let mut count = rule("/Devices/Line1/M1/ProdCount", "counter.total");
    count.source_unit = Some("count".into());
    count.target_unit = Some("count".into());
    count.min_quality = Some(192);
    let mut temp = rule("/Devices/Line1/M1/Temperature", "temperature");
    temp.source_unit = Some("fahrenheit".into());
    temp.target_unit = Some("celsius".into());
    temp.scale_factor = Some(0.5556);
    temp.offset = Some(-17.78);
    temp.deadband_absolute = Some(2.0);
    temp.min_quality = Some(192);
    vec![count, temp]
}

fn normalizer(cfg: ProcessingConfig) -> Normalizer {
    Normalizer::new(Arc::new(RuleSet::compile(&cfg).expect("valid rules")))
}

fn sample<'a>(
    device: Option<&'a str>,
    metric: &'a str,
    value: Value,
    ts: i64,
    q: i32,
) -> SourceSample<'a> {
    SourceSample {
        group: "Devices",
        edge_node: "Line1",
        device,
        metric,
        value,
        timestamp_ms: ts,
        quality: q,
        historical: false,
        transient: false,
        int_bits: 32,
    }
}

fn signal(o: Outcome) -> oee_core::normalize::Signal {
    match o {
        Outcome::Signal(s) => s,
        other => panic!("expected a signal, got {other:?}"),
    }
}

#[test]
fn seed_rules_map_convert_and_enrich() {
    let mut n = normalizer(ProcessingConfig {
        tag_mappings: seed_rules(),
        ..Default::default()
    });
    let s = signal(n.normalize(sample(Some("M1"), "ProdCount", Value::UInt(1500), 1, 192)));
    assert_eq!(s.tag.signal_type, SignalType::CounterTotal);
    assert_eq!(s.tag.asset.machine_id, "SITE01-LINE1-M1");
    assert_eq!(s.tag.asset.line_id, "SITE01-LINE1");
    assert_eq!(s.tag.asset.site_id, "SITE01");
    assert_eq!(s.tag.unit, Some("count"));
    assert_eq!(s.value, Value::UInt(1500));
    assert_eq!(s.int_bits, 32);
    assert_eq!(s.tag.source.metric, "ProdCount");

    let t = signal(n.normalize(sample(
        Some("M1"),
        "Temperature",
        Value::Float(212.0),
        2,
        192,
    )));
    assert_eq!(t.tag.unit, Some("celsius"));
    match t.value {
        Value::Float(c) => assert!((c - 100.0).abs() < 1e-9, "{c}"),
        v => panic!("{v:?}"),
    }
}

#[test]
fn deadband_applies_to_analog_only() {
    let mut n = normalizer(ProcessingConfig {
        tag_mappings: seed_rules(),
        ..Default::default()
    });
    // 2 °C band: 212 °F = 100 °C; 215.6 °F = 102 °C exactly at the band → suppressed
    assert!(matches!(
        n.normalize(sample(
            Some("M1"),
            "Temperature",
            Value::Float(212.0),
            0,
            192
        )),
        Outcome::Signal(_)
    ));
    assert_eq!(
        n.normalize(sample(
            Some("M1"),
            "Temperature",
            Value::Float(215.6),
            1,
            192
        )),
        Outcome::Suppressed
    );
    assert!(matches!(
        n.normalize(sample(
            Some("M1"),
            "Temperature",
            Value::Float(215.7),
            2,
            192
        )),
        Outcome::Signal(_)
    ));
    // max silence (default 60 s) emits anyway
    assert!(matches!(
        n.normalize(sample(
            Some("M1"),
            "Temperature",
            Value::Float(215.7),
            60_002,
            192
        )),
        Outcome::Signal(_)
    ));
    // historical data bypasses the deadband
    let mut h = sample(Some("M1"), "Temperature", Value::Float(215.7), 60_003, 192);
    h.historical = true;
    assert!(matches!(n.normalize(h), Outcome::Signal(_)));
    // counters repeat freely
    for ts in 0..3 {
        assert!(matches!(
            n.normalize(sample(Some("M1"), "ProdCount", Value::UInt(7), ts, 192)),
            Outcome::Signal(_)
        ));
    }
    assert_eq!(n.stats().suppressed, 1);
}

#[test]
fn quality_paths() {
    let mut n = normalizer(ProcessingConfig {
        tag_mappings: seed_rules(),
        ..Default::default()
    });
    assert!(matches!(
        n.normalize(sample(
            Some("M1"),
            "Temperature",
            Value::Float(100.0),
            0,
            192
        )),
        Outcome::Signal(_)
    ));
    // below min_quality: dropped, the transition recorded once
    match n.normalize(sample(Some("M1"), "Temperature", Value::Float(100.0), 1, 0)) {
        Outcome::BadQuality {
            went_bad: true,
            quality: 0,
            tag,
            ..
        } => assert_eq!(tag.asset.machine_id, "SITE01-LINE1-M1"),
        o => panic!("{o:?}"),
    }
    assert!(matches!(
        n.normalize(sample(
            Some("M1"),
            "Temperature",
            Value::Float(100.0),
            2,
            64
        )),
        Outcome::BadQuality {
            went_bad: false,
            ..
        }
    ));
    // back to good: emitted even inside the deadband
    assert!(matches!(
        n.normalize(sample(
            Some("M1"),
            "Temperature",
            Value::Float(100.0),
            3,
            192
        )),
        Outcome::Signal(_)
    ));
    // STALE passes through with quality 500, as null or with its last value
    let s = signal(n.normalize(sample(
        Some("M1"),
        "Temperature",
        Value::Null,
        4,
        quality::STALE,
    )));
    assert_eq!((s.quality, &s.value), (500, &Value::Null));
    let s = signal(n.normalize(sample(
        Some("M1"),
        "ProdCount",
        Value::UInt(9),
        5,
        quality::STALE,
    )));
    assert_eq!(s.quality, 500);
    // and the first good value after STALE is emitted whatever the deadband
    assert!(matches!(
        n.normalize(sample(
            Some("M1"),
            "Temperature",
            Value::Float(100.0),
            6,
            192
        )),
        Outcome::Signal(_)
    ));
    assert_eq!(n.stats().bad_quality, 2);
}

#[test]
fn booleans_codes_and_state_categories() {
    let mut fault = rule("Devices/Line1/M1/Alarm42", "fault.active");
    fault.fault_code = Some(42);
    let cfg = ProcessingConfig {
        tag_mappings: vec![
            rule("Devices/Line1/M1/Running", "state.running"),
            rule("Devices/Line1/M1/State", "state.code"),
            rule("Devices/Line1/M1/FaultCode", "fault.code"),
            fault,
            rule("Devices/Line1/M1/Count", "counter.good"),
        ],
        state_codes: StateCodesConfig {
            default_category: StateCategory::UnplannedStop,
            rules: vec![StateCodeRule {
                code: Some(1),
                category: Some(StateCategory::Running),
                reason: Some("producing".into()),
                ..Default::default()
            }],
        },
        ..Default::default()
    };
    let mut n = normalizer(cfg);
    let s = signal(n.normalize(sample(Some("M1"), "Running", Value::Int(1), 0, 192)));
    assert_eq!(s.value, Value::Bool(true));
    assert_eq!(s.state, Some((StateCategory::Running, None)));
    let s = signal(n.normalize(sample(Some("M1"), "State", Value::Float(1.0), 0, 192)));
    assert_eq!(s.value, Value::Int(1));
    assert_eq!(
        s.state,
        Some((StateCategory::Running, Some(Arc::from("producing"))))
    );
    let s = signal(n.normalize(sample(Some("M1"), "State", Value::UInt(7), 0, 192)));
    assert_eq!(s.state, Some((StateCategory::UnplannedStop, None)));
    let s = signal(n.normalize(sample(Some("M1"), "Alarm42", Value::Bool(true), 0, 192)));
    assert_eq!((s.tag.fault_code, s.value), (Some(42), Value::Bool(true)));
    assert!(matches!(
        n.normalize(sample(
            Some("M1"),
            "FaultCode",
            Value::Text("E42".into()),
            0,
            192
        )),
        Outcome::Rejected { .. }
    ));
    assert!(matches!(
        n.normalize(sample(Some("M1"), "Count", Value::Float(1.5), 0, 192)),
        Outcome::Rejected { .. }
    ));
    assert_eq!(
        signal(n.normalize(sample(Some("M1"), "Count", Value::Float(3.0), 0, 192))).value,
        Value::UInt(3)
    );
    assert_eq!(n.stats().rejected, 2);
}

#[test]
fn patterns_capture_assets_and_labels() {
    let mut r = rule("Plant{site}/{line}/{machine}/Temp_*", "temperature");
    r.site_id = Some("S{site}".into());
    r.line_id = Some("S{site}-{line}".into());
    r.machine_id = Some("S{site}-{line}-{machine}".into());
    r.labels = [("zone".to_string(), "{line}".to_string())].into();
    let mut n = normalizer(ProcessingConfig {
        tag_mappings: vec![r],
        ..Default::default()
    });
    let s = signal(n.normalize(SourceSample {
        group: "Plant7",
        edge_node: "L2",
        device: Some("Press3"),
        metric: "Temp_Oil",
        ..sample(None, "", Value::Float(1.0), 0, 192)
    }));
    assert_eq!(s.tag.asset.site_id, "S7");
    assert_eq!(s.tag.asset.line_id, "S7-L2");
    assert_eq!(s.tag.asset.machine_id, "S7-L2-Press3");
    assert_eq!(
        s.tag.asset.labels,
        vec![("zone".to_string(), "L2".to_string())]
    );
}

#[test]
fn unmapped_metrics_are_counted_per_node_and_passed_or_dropped() {
    let mut n = normalizer(ProcessingConfig {
        tag_mappings: seed_rules(),
        ..Default::default()
    });
    for ts in 0..3 {
        match n.normalize(sample(Some("M1"), "Unknown", Value::Int(ts), ts, 192)) {
            Outcome::Unmapped(Some(s)) => assert_eq!(
                (s.tag.signal_type.as_str(), s.value),
                ("raw", Value::Int(ts))
            ),
            o => panic!("{o:?}"),
        }
    }
    assert!(matches!(
        n.normalize(sample(None, "NodeMetric", Value::Int(1), 0, 192)),
        Outcome::Unmapped(Some(_))
    ));
    let u = n.unmapped();
    assert_eq!(u.len(), 1);
    assert_eq!(
        (u[0].group.as_str(), u[0].edge_node.as_str(), u[0].samples),
        ("Devices", "Line1", 4)
    );
    assert_eq!(
        u[0].metrics,
        vec![
            ("M1/Unknown".to_string(), 3),
            ("/NodeMetric".to_string(), 1)
        ]
    );

    let mut d = normalizer(ProcessingConfig {
        unmapped: UnmappedConfig {
            policy: UnmappedPolicy::Drop,
            max_listed_per_node: 1,
            ..Default::default()
        },
        ..Default::default()
    });
    assert_eq!(
        d.normalize(sample(Some("M1"), "A", Value::Int(1), 0, 192)),
        Outcome::Unmapped(None)
    );
    assert_eq!(
        d.normalize(sample(Some("M1"), "B", Value::Int(1), 0, 192)),
        Outcome::Unmapped(None)
    );
    assert_eq!(d.unmapped()[0].metrics.len(), 1);
    assert_eq!(d.unmapped()[0].not_listed, 1);
    assert_eq!(d.stats().unmapped, 2);
}

/// Regression (fuzz/artifacts-found/normalizer/empty_device_then_node_metric): an empty device
/// name and no device shared one identity, so the source of a signal depended on which sample
/// came first; an empty device name is the node itself, whichever comes first.
#[test]
fn an_empty_device_name_is_the_node_itself_in_either_order() {
    let rules = vec![rule("/Devices/Line1/*/Speed", "temperature")];
    for empty_first in [true, false] {
        let mut n = normalizer(ProcessingConfig {
            tag_mappings: rules.clone(),
            ..Default::default()
        });
        let order = if empty_first {
            [Some(""), None]
        } else {
            [None, Some("")]
        };
        let seen: Vec<(bool, Option<String>)> = order
            .into_iter()
            .map(
                |device| match n.normalize(sample(device, "Speed", Value::Float(1.0), 0, 192)) {
                    Outcome::Signal(s) => (true, s.tag.source.device.clone()),
                    Outcome::Unmapped(Some(s)) => (false, s.tag.source.device.clone()),
                    o => panic!("{o:?}"),
                },
            )
            .collect();
        // A device pattern does not match the node's own metric, whichever came first.
        assert_eq!(
            seen,
            vec![(false, None), (false, None)],
            "empty first: {empty_first}"
        );
    }
}

#[test]
fn the_unmapped_list_holds_at_most_max_nodes_nodes() {
    let mut n = normalizer(ProcessingConfig {
        unmapped: UnmappedConfig {
            max_nodes: 2,
            ..Default::default()
        },
        ..Default::default()
    });
    for node in 0..5 {
        let edge = format!("E{node}");
        let s = SourceSample {
            edge_node: &edge,
            ..sample(None, "M", Value::Int(1), 0, 192)
        };
        assert!(matches!(n.normalize(s), Outcome::Unmapped(Some(_))));
    }
    let listed: Vec<&str> = n.unmapped().iter().map(|u| u.edge_node.as_str()).collect();
    assert_eq!(listed, ["E0", "E1"]);
    assert_eq!(n.stats().unmapped, 5, "every sample is still counted");
    assert_eq!(n.stats().unmapped_unlisted, 3);
}

#[test]
fn beyond_max_tracked_sources_samples_are_still_normalized() {
    let mut n = normalizer(ProcessingConfig {
        tag_mappings: seed_rules(),
        max_tracked_sources: 1,
        ..Default::default()
    });
    assert!(matches!(
        n.normalize(sample(Some("M1"), "ProdCount", Value::UInt(1), 0, 192)),
        Outcome::Signal(_)
    ));
    assert!(matches!(
        n.normalize(sample(Some("M1"), "Temperature", Value::Float(1.0), 0, 192)),
        Outcome::Signal(_)
    ));
    assert!(matches!(
        n.normalize(sample(Some("M1"), "Temperature", Value::Float(1.0), 1, 192)),
        Outcome::Signal(_)
    ));
    assert_eq!(n.stats().untracked, 2);
}

fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::UInt),
        any::<f64>().prop_map(Value::Float),
        ".{0,8}".prop_map(Value::Text),
    ]
}

proptest! {
    #[test]
    fn normalization_never_panics(
        group in prop_oneof![Just("Devices".to_string()), Just("Plant1".to_string()), ".{0,6}"],
        node in prop_oneof![Just("Line1".to_string()), ".{0,6}"],
        device in proptest::option::of(prop_oneof![Just("M1".to_string()), ".{0,6}"]),
        metric in prop_oneof![Just("Temperature".to_string()), Just("ProdCount".to_string()), Just("State".to_string()), ".{0,10}"],
        values in proptest::collection::vec((any_value(), any::<i64>(), any::<i32>(), any::<bool>()), 1..8),
    ) {
        let mut rules = seed_rules();
        let mut p = rule("Plant{n}/{line}/{machine}/*", "pressure");
        p.machine_id = Some("{machine}".into());
        p.deadband_percent = Some(1.0);
        p.span_low = Some(0.0);
        p.span_high = Some(10.0);
        rules.push(p);
        rules.push(rule("Devices/Line1/M1/State", "state.code"));
        let mut n = normalizer(ProcessingConfig { tag_mappings: rules, ..Default::default() });
        for (value, ts, q, historical) in values {
            let s = SourceSample {
                group: &group,
                edge_node: &node,
                device: device.as_deref(),
                metric: &metric,
                value,
                timestamp_ms: ts,
                quality: q,
                historical,
                transient: false,
                int_bits: 64,
            };
            let _ = n.normalize(s);
        }
    }
}

#[test]
fn handles_give_the_same_outcomes_as_lookups() {
    use oee_core::normalize::{Reading, SourceId};
    let cfg = ProcessingConfig {
        tag_mappings: seed_rules(),
        ..Default::default()
    };
    let mut a = normalizer(cfg.clone());
    let mut b = normalizer(cfg);
    let id = SourceId {
        group: "Devices",
        edge_node: "Line1",
        device: Some("M1"),
        metric: "Temperature",
    };
    let h = b.handle(&id).unwrap();
    for (ts, v) in [(0, 212.0), (1, 213.0), (2, 220.0)] {
        let via_lookup = a.normalize(sample(Some("M1"), "Temperature", Value::Float(v), ts, 192));
        let via_handle = b.normalize_handle(
            h,
            Reading {
                value: Value::Float(v),
                timestamp_ms: ts,
                quality: 192,
                historical: false,
                transient: false,
                int_bits: 32,
            },
        );
        assert_eq!(via_lookup, via_handle);
    }
    assert_eq!(a.stats(), b.stats());
}

#[test]
fn untracked_unmapped_metrics_are_listed_once() {
    let mut n = normalizer(ProcessingConfig {
        max_tracked_sources: 1,
        ..Default::default()
    });
    for ts in 0..3 {
        let _ = n.normalize(sample(Some("M1"), "A", Value::Int(1), ts, 192));
        let _ = n.normalize(sample(Some("M1"), "B", Value::Int(1), ts, 192));
    }
    assert_eq!(
        n.unmapped()[0].metrics,
        vec![("M1/A".to_string(), 3), ("M1/B".to_string(), 3)]
    );
}
