//! Named regression tests for codec bugs found by the property tests and the fuzzer, and a test
//! that replays every input the fuzzer kept under `fuzz/artifacts-found/`.

use std::path::Path;

use prost::Message;
use sparkplug::proto::payload as pb;
use sparkplug::{DataType, MetricValue, Payload, WireValue};

fn round_trip(p: &Payload) -> Payload {
    let bytes = p.encode().expect("a decoded payload encodes");
    let again = Payload::decode(&bytes).expect("our own encoding decodes");
    // Debug text compares NaN equal to NaN and keeps the sign of zero.
    assert_eq!(format!("{p:?}"), format!("{again:?}"));
    assert_eq!(
        again.encode().expect("encodes"),
        bytes,
        "encoding is stable"
    );
    again
}

fn wire(metrics: Vec<pb::Metric>) -> Vec<u8> {
    sparkplug::proto::Payload {
        timestamp: Some(1),
        metrics,
        seq: Some(0),
        uuid: None,
        body: None,
    }
    .encode_to_vec()
}

/// Found by the fuzzer (fuzz/artifacts-found/decode/typed_metric_without_value_or_is_null): a
/// template definition member with a datatype but neither a value nor `is_null` decoded with
/// `is_null: false`, the encoder then wrote `is_null: true`, so decode → encode → decode changed
/// the payload. A typed metric without a value now decodes as null with `is_null: true`.
#[test]
fn typed_metric_without_value_or_is_null_flag_round_trips() {
    let member = pb::Metric {
        name: Some("Enabled".into()),
        datatype: Some(DataType::Boolean.code()),
        ..Default::default()
    };
    let bytes = wire(vec![
        member.clone(),
        pb::Metric {
            name: Some("_types_/Pump".into()),
            datatype: Some(DataType::Template.code()),
            value: Some(pb::metric::Value::TemplateValue(pb::Template {
                is_definition: Some(true),
                metrics: vec![member],
                ..Default::default()
            })),
            ..Default::default()
        },
    ]);
    let p = Payload::decode(&bytes).expect("decodes");
    assert!(p.metrics[0].is_null);
    assert_eq!(p.metrics[0].value, MetricValue::Null);
    round_trip(&p);

    // Without a datatype (an alias-only DATA metric with no value) nothing changes.
    let p = Payload::decode(&wire(vec![pb::Metric {
        alias: Some(3),
        ..Default::default()
    }]))
    .expect("decodes");
    assert!(!p.metrics[0].is_null);
    round_trip(&p);
}

/// An `extension_value` decodes as `Untyped(WireValue::Extension)`; the encoder used to drop it,
/// so the metric came back as a null (and, with a datatype, as `is_null`). It now writes an
/// empty extension value back, which keeps the payload the same.
#[test]
fn extension_value_survives_a_round_trip() {
    let ext = Some(pb::metric::Value::ExtensionValue(Default::default()));
    let bytes = wire(vec![
        pb::Metric {
            alias: Some(1),
            value: ext.clone(),
            ..Default::default()
        },
        pb::Metric {
            alias: Some(2),
            datatype: Some(DataType::Unknown.code()),
            value: ext,
            properties: Some(pb::PropertySet {
                keys: vec!["x".into()],
                values: vec![pb::PropertyValue {
                    r#type: None,
                    is_null: None,
                    value: Some(pb::property_value::Value::ExtensionValue(Default::default())),
                }],
            }),
            ..Default::default()
        },
    ]);
    let p = Payload::decode(&bytes).expect("decodes");
    for m in &p.metrics {
        assert_eq!(m.value, MetricValue::Untyped(WireValue::Extension));
        assert!(!m.is_null);
    }
    round_trip(&p);
}

/// Every input the fuzzer found and we kept decodes without panicking and, when it decodes,
/// round-trips.
#[test]
fn fuzz_artifacts_replay() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/artifacts-found/decode");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/artifacts-found/decode exists") {
        let path = entry.expect("readable directory").path();
        let bytes = std::fs::read(&path).expect("readable artifact");
        if let Ok(p) = Payload::decode(&bytes) {
            round_trip(&p);
        }
        n += 1;
    }
    assert!(n > 0, "no artifacts in {}", dir.display());
}
