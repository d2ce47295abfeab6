//! Renders decoded payloads as JSON: the output format of `oee-stream decode`.
//!
//! The shape is lossless for everything the codec decodes:
//!
//! ```text
//! {
//!   "topic":     {..}                      (only when a topic is given)
//!   "timestamp": 1718900061000 | null,
//!   "seq":       72 | null,
//!   "uuid":      "…" | null,
//!   "body":      "deadbeef" | null,        (lowercase hex)
//!   "metrics": [                           (wire order)
//!     { "name": "…" | null, "alias": 40 | null, "timestamp": … | null,
//!       "datatype": "Int32" | null,        (null when the wire has no datatype)
//!       "is_historical": false, "is_transient": false, "is_null": false,
//!       "value": …,
//!       "properties": { "engUnit": { "type": "String", "value": "ml" } },   (only when present)
//!       "metadata": { "content_type": "…", … }                            (only when present)
//!     }
//!   ]
//! }
//! ```
//!
//! Values:
//! - integers are exact JSON integers with their signed meaning (UInt64 up to `u64::MAX`,
//!   negative Int64 exactly), DateTime is integer milliseconds since the epoch;
//! - Float and Double are numbers (a Float is written as the shortest decimal that reads back as
//!   the same 32-bit float), NaN and the infinities as the strings `"NaN"`, `"Infinity"`,
//!   `"-Infinity"`; −0 stays the number `-0.0`;
//! - Bytes and File are lowercase hex strings; arrays are JSON arrays;
//! - DataSet is `{num_of_columns, columns, types, rows}` with type names and `null` cells;
//! - Template is `{version, template_ref, is_definition, metrics, parameters}`, its metrics in the
//!   metric shape above and its parameters as `{name, type, value}`;
//! - properties are an object `{key: {type, value}}`, a PropertySet value is again such an object
//!   and a PropertySetList an array of them (a repeated key keeps its last value);
//! - metadata is an object with the specification's field names, only the fields present;
//! - without a datatype on the wire, `value` is the raw field that is set (`int_value` and
//!   `long_value` as unsigned integers, floats as numbers, bytes as hex; an `extension_value`,
//!   whose content is not decoded, is `null`).
//!
//! Objects keep the order in which their fields are written here (serde_json's
//! `preserve_order`), so properties appear in wire order.

use serde_json::{Map, Number, Value as Json, json};

use crate::payload::{
    DataSet, MetaData, Metric, MetricValue, Parameter, Payload, PropertySet, PropertyValue,
    Template,
};
use crate::state::HostState;
use crate::topic::{NAMESPACE, StateVersion, Topic};
use crate::value::{Value, WireValue};

/// Renders a payload, with the topic's parts under `"topic"` when a topic is given.
pub fn payload_to_json(payload: &Payload, topic: Option<&Topic<'_>>) -> Json {
    let mut out = Map::new();
    if let Some(t) = topic {
        out.insert("topic".into(), topic_to_json(t));
    }
    out.insert("timestamp".into(), json!(payload.timestamp));
    out.insert("seq".into(), json!(payload.seq));
    out.insert("uuid".into(), json!(payload.uuid));
    out.insert(
        "body".into(),
        payload.body.as_deref().map_or(Json::Null, hex_json),
    );
    out.insert(
        "metrics".into(),
        Json::Array(payload.metrics.iter().map(metric_to_json).collect()),
    );
    Json::Object(out)
}

/// Renders a host STATE payload (`{"online", "timestamp"}`), with the topic's parts under
/// `"topic"` when a topic is given.
pub fn state_to_json(state: &HostState, topic: Option<&Topic<'_>>) -> Json {
    let mut out = Map::new();
    if let Some(t) = topic {
        out.insert("topic".into(), topic_to_json(t));
    }
    out.insert("online".into(), json!(state.online));
    out.insert("timestamp".into(), json!(state.timestamp));
    Json::Object(out)
}

/// The parts of a topic: `{namespace, group_id, message_type, edge_node_id, device_id}` for
/// node and device messages (`device_id` is null for node messages), `{host_id, version}` for a
/// host's STATE (`version` is `"3.0"` or `"2.2"`).
pub fn topic_to_json(topic: &Topic<'_>) -> Json {
    match *topic {
        Topic::Message {
            group,
            message_type,
            edge_node,
            device,
        } => json!({
            "namespace": NAMESPACE,
            "group_id": group,
            "message_type": message_type.verb(),
            "edge_node_id": edge_node,
            "device_id": device,
        }),
        Topic::State { host_id, version } => json!({
            "host_id": host_id,
            "version": match version {
                StateVersion::V3 => "3.0",
                StateVersion::Legacy => "2.2",
            },
        }),
    }
}

/// Renders one metric (of a payload or a template).
pub fn metric_to_json(m: &Metric) -> Json {
    let mut out = Map::new();
    out.insert("name".into(), json!(m.name));
    out.insert("alias".into(), json!(m.alias));
    out.insert("timestamp".into(), json!(m.timestamp));
    out.insert("datatype".into(), json!(m.datatype.map(|d| d.name())));
    out.insert("is_historical".into(), json!(m.is_historical));
    out.insert("is_transient".into(), json!(m.is_transient));
    out.insert("is_null".into(), json!(m.is_null));
    out.insert("value".into(), metric_value_to_json(&m.value));
    if let Some(p) = &m.properties {
        out.insert("properties".into(), property_set_to_json(p));
    }
    if let Some(md) = &m.metadata {
        out.insert("metadata".into(), metadata_to_json(md));
    }
    Json::Object(out)
}

/// A metric's or property's value: typed, raw (no datatype on the wire) or null.
pub fn metric_value_to_json(v: &MetricValue) -> Json {
    match v {
        MetricValue::Null => Json::Null,
        MetricValue::Value(v) => value_to_json(v),
        MetricValue::Untyped(w) => wire_value_to_json(w),
    }
}

/// A typed value.
pub fn value_to_json(v: &Value) -> Json {
    match v {
        Value::Int8(x) => json!(x),
        Value::Int16(x) => json!(x),
        Value::Int32(x) => json!(x),
        Value::Int64(x) => json!(x),
        Value::UInt8(x) => json!(x),
        Value::UInt16(x) => json!(x),
        Value::UInt32(x) => json!(x),
        Value::UInt64(x) | Value::DateTime(x) => json!(x),
        Value::Float(x) => float32_json(*x),
        Value::Double(x) => float64_json(*x),
        Value::Boolean(x) => json!(x),
        Value::String(s) | Value::Text(s) | Value::Uuid(s) => json!(s),
        Value::Bytes(b) | Value::File(b) => hex_json(b),
        Value::DataSet(ds) => dataset_to_json(ds),
        Value::Template(t) => template_to_json(t),
        Value::PropertySet(set) => property_set_to_json(set),
        Value::PropertySetList(list) => {
            Json::Array(list.iter().map(property_set_to_json).collect())
        }
        Value::Int8Array(a) => json!(a),
        Value::Int16Array(a) => json!(a),
        Value::Int32Array(a) => json!(a),
        Value::Int64Array(a) => json!(a),
        Value::UInt8Array(a) => json!(a),
        Value::UInt16Array(a) => json!(a),
        Value::UInt32Array(a) => json!(a),
        Value::UInt64Array(a) | Value::DateTimeArray(a) => json!(a),
        Value::FloatArray(a) => Json::Array(a.iter().map(|&x| float32_json(x)).collect()),
        Value::DoubleArray(a) => Json::Array(a.iter().map(|&x| float64_json(x)).collect()),
        Value::BooleanArray(a) => json!(a),
        Value::StringArray(a) => json!(a),
    }
}

/// A raw protobuf value field, rendered as it is on the wire.
pub fn wire_value_to_json(w: &WireValue) -> Json {
    match w {
        WireValue::Int(x) => json!(x),
        WireValue::Long(x) => json!(x),
        WireValue::Float(x) => float32_json(*x),
        WireValue::Double(x) => float64_json(*x),
        WireValue::Boolean(x) => json!(x),
        WireValue::String(s) => json!(s),
        WireValue::Bytes(b) => hex_json(b),
        WireValue::Extension => Json::Null,
    }
}

/// `{key: {type, value}}` in wire order.
pub fn property_set_to_json(set: &PropertySet) -> Json {
    Json::Object(
        set.0
            .iter()
            .map(|(key, pv)| (key.clone(), property_value_to_json(pv)))
            .collect(),
    )
}

fn property_value_to_json(pv: &PropertyValue) -> Json {
    json!({
        "type": pv.datatype.map(|d| d.name()),
        "value": metric_value_to_json(&pv.value),
    })
}

/// The MetaData fields that are present, under the specification's names.
pub fn metadata_to_json(md: &MetaData) -> Json {
    let mut out = Map::new();
    let mut put = |key: &str, v: Option<Json>| {
        if let Some(v) = v {
            out.insert(key.into(), v);
        }
    };
    put("is_multi_part", md.is_multi_part.map(Json::from));
    put("content_type", md.content_type.clone().map(Json::from));
    put("size", md.size.map(Json::from));
    put("seq", md.seq.map(Json::from));
    put("file_name", md.file_name.clone().map(Json::from));
    put("file_type", md.file_type.clone().map(Json::from));
    put("md5", md.md5.clone().map(Json::from));
    put("description", md.description.clone().map(Json::from));
    Json::Object(out)
}

fn dataset_to_json(ds: &DataSet) -> Json {
    json!({
        "num_of_columns": ds.num_of_columns,
        "columns": ds.columns,
        "types": ds.types.iter().map(|t| t.name()).collect::<Vec<_>>(),
        "rows": ds
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .map(|cell| cell.as_ref().map_or(Json::Null, value_to_json))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>(),
    })
}

fn template_to_json(t: &Template) -> Json {
    json!({
        "version": t.version,
        "template_ref": t.template_ref,
        "is_definition": t.is_definition,
        "metrics": t.metrics.iter().map(metric_to_json).collect::<Vec<_>>(),
        "parameters": t.parameters.iter().map(parameter_to_json).collect::<Vec<_>>(),
    })
}

fn parameter_to_json(p: &Parameter) -> Json {
    json!({
        "name": p.name,
        "type": p.datatype.name(),
        "value": p.value.as_ref().map_or(Json::Null, value_to_json),
    })
}

/// A non-finite float as the string JSON uses for it in this format.
fn non_finite(is_nan: bool, positive: bool) -> Json {
    Json::from(match (is_nan, positive) {
        (true, _) => "NaN",
        (false, true) => "Infinity",
        (false, false) => "-Infinity",
    })
}

/// A Float as the shortest decimal that reads back as the same `f32` (0.1, not
/// 0.10000000149011612).
fn float32_json(x: f32) -> Json {
    if !x.is_finite() {
        return non_finite(x.is_nan(), x > 0.0);
    }
    // `f32`'s Display is the shortest round-tripping decimal; read as f64 it prints the same.
    let shortest = x.to_string().parse::<f64>().unwrap_or(f64::from(x));
    Number::from_f64(shortest).map_or(Json::Null, Json::Number)
}

fn float64_json(x: f64) -> Json {
    if !x.is_finite() {
        return non_finite(x.is_nan(), x > 0.0);
    }
    Number::from_f64(x).map_or(Json::Null, Json::Number)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn hex_json(bytes: &[u8]) -> Json {
    Json::String(hex(bytes))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::datatype::DataType;
    use crate::topic::MessageType;

    fn metric(datatype: Option<DataType>, value: MetricValue) -> Metric {
        Metric {
            name: Some("m".into()),
            datatype,
            value,
            ..Metric::default()
        }
    }

    fn rendered_value(v: Value) -> Json {
        let dt = v.datatype();
        metric_to_json(&metric(Some(dt), MetricValue::Value(v)))["value"].clone()
    }

    #[test]
    fn empty_payload_has_every_top_level_field() {
        let j = payload_to_json(&Payload::default(), None);
        assert_eq!(
            j,
            json!({"timestamp": null, "seq": null, "uuid": null, "body": null, "metrics": []})
        );
        let keys: Vec<&String> = j.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["timestamp", "seq", "uuid", "body", "metrics"]);
    }

    #[test]
    fn payload_fields_and_metric_shape() {
        let p = Payload {
            timestamp: Some(u64::MAX),
            seq: Some(255),
            uuid: Some("u-1".into()),
            body: Some(Bytes::from_static(&[0xde, 0xad, 0x00, 0x0f])),
            metrics: vec![Metric {
                name: Some("Line/Speed".into()),
                alias: Some(7),
                timestamp: Some(1_718_900_000_000),
                datatype: Some(DataType::Int8),
                is_historical: true,
                is_transient: false,
                is_null: false,
                metadata: None,
                properties: None,
                value: MetricValue::Value(Value::Int8(-1)),
            }],
        };
        assert_eq!(
            payload_to_json(&p, None),
            json!({
                "timestamp": 18_446_744_073_709_551_615_u64,
                "seq": 255,
                "uuid": "u-1",
                "body": "dead000f",
                "metrics": [{
                    "name": "Line/Speed",
                    "alias": 7,
                    "timestamp": 1_718_900_000_000_u64,
                    "datatype": "Int8",
                    "is_historical": true,
                    "is_transient": false,
                    "is_null": false,
                    "value": -1
                }]
            })
        );
    }

    #[test]
    fn integers_are_exact() {
        assert_eq!(rendered_value(Value::Int64(i64::MIN)), json!(i64::MIN));
        assert_eq!(rendered_value(Value::UInt64(u64::MAX)), json!(u64::MAX));
        assert_eq!(
            rendered_value(Value::UInt64(u64::MAX)).to_string(),
            "18446744073709551615"
        );
        assert_eq!(
            rendered_value(Value::Int64(-(1 << 53) - 7)).to_string(),
            "-9007199254740999"
        );
        assert_eq!(rendered_value(Value::Int16(i16::MIN)), json!(-32768));
        assert_eq!(
            rendered_value(Value::UInt32(u32::MAX)),
            json!(4_294_967_295_u32)
        );
        assert_eq!(
            rendered_value(Value::DateTime(1_718_900_000_123)),
            json!(1_718_900_000_123_u64)
        );
    }

    #[test]
    fn floats_and_special_values() {
        assert_eq!(rendered_value(Value::Float(0.1)).to_string(), "0.1");
        assert_eq!(rendered_value(Value::Double(0.1)).to_string(), "0.1");
        assert_eq!(rendered_value(Value::Float(f32::NAN)), json!("NaN"));
        assert_eq!(rendered_value(Value::Double(f64::NAN)), json!("NaN"));
        assert_eq!(
            rendered_value(Value::Float(f32::INFINITY)),
            json!("Infinity")
        );
        assert_eq!(
            rendered_value(Value::Double(f64::NEG_INFINITY)),
            json!("-Infinity")
        );
        let neg_zero = rendered_value(Value::Float(-0.0));
        assert!(neg_zero.as_f64().expect("number").is_sign_negative());
        // Every finite f32 reads back as itself.
        for x in [f32::MAX, f32::MIN_POSITIVE, 1e-45, -123.456, 16_777_217.0] {
            let back = rendered_value(Value::Float(x)).as_f64().expect("number") as f32;
            assert_eq!(back.to_bits(), x.to_bits(), "{x}");
        }
    }

    #[test]
    fn bytes_strings_and_arrays() {
        assert_eq!(
            rendered_value(Value::Bytes(Bytes::from_static(&[0x80, 0x0a]))),
            json!("800a")
        );
        assert_eq!(rendered_value(Value::File(Bytes::new())), json!(""));
        assert_eq!(rendered_value(Value::Uuid("x".into())), json!("x"));
        assert_eq!(
            rendered_value(Value::BooleanArray(vec![true, false])),
            json!([true, false])
        );
        assert_eq!(
            rendered_value(Value::FloatArray(vec![1.5, f32::NAN])),
            json!([1.5, "NaN"])
        );
        assert_eq!(
            rendered_value(Value::UInt64Array(vec![u64::MAX])),
            json!([u64::MAX])
        );
        assert_eq!(
            rendered_value(Value::StringArray(vec!["a".into(), String::new()])),
            json!(["a", ""])
        );
        assert_eq!(
            rendered_value(Value::Int8Array(vec![-23, 123])),
            json!([-23, 123])
        );
    }

    #[test]
    fn untyped_values_render_the_raw_field() {
        let raw = |w| metric_to_json(&metric(None, MetricValue::Untyped(w)));
        let j = raw(WireValue::Int(u32::MAX));
        assert_eq!(j["datatype"], Json::Null);
        assert_eq!(j["value"], json!(4_294_967_295_u32));
        assert_eq!(raw(WireValue::Long(u64::MAX))["value"], json!(u64::MAX));
        assert_eq!(raw(WireValue::Double(2.5))["value"], json!(2.5));
        assert_eq!(raw(WireValue::Float(f32::NAN))["value"], json!("NaN"));
        assert_eq!(raw(WireValue::Boolean(false))["value"], json!(false));
        assert_eq!(raw(WireValue::String("s".into()))["value"], json!("s"));
        assert_eq!(
            raw(WireValue::Bytes(Bytes::from_static(&[1])))["value"],
            json!("01")
        );
        assert_eq!(raw(WireValue::Extension)["value"], Json::Null);
    }

    #[test]
    fn null_metric() {
        let mut m = metric(Some(DataType::Double), MetricValue::Null);
        m.is_null = true;
        let j = metric_to_json(&m);
        assert_eq!(j["is_null"], json!(true));
        assert_eq!(j["value"], Json::Null);
        assert_eq!(j["datatype"], json!("Double"));
        assert!(j.get("properties").is_none() && j.get("metadata").is_none());
    }

    #[test]
    fn dataset_and_template() {
        let ds = Value::DataSet(DataSet {
            num_of_columns: 2,
            columns: vec!["a".into(), "b".into()],
            types: vec![DataType::Int64, DataType::Float],
            rows: vec![vec![Some(Value::Int64(-9)), None]],
        });
        assert_eq!(
            rendered_value(ds),
            json!({"num_of_columns": 2, "columns": ["a", "b"], "types": ["Int64", "Float"],
                   "rows": [[-9, null]]})
        );
        let t = Value::Template(Template {
            version: Some("1.0".into()),
            template_ref: None,
            is_definition: true,
            metrics: vec![metric(
                Some(DataType::Boolean),
                MetricValue::Value(Value::Boolean(true)),
            )],
            parameters: vec![Parameter {
                name: Some("Vendor".into()),
                datatype: DataType::String,
                value: Some(Value::String("ACME".into())),
            }],
        });
        assert_eq!(
            rendered_value(t),
            json!({
                "version": "1.0",
                "template_ref": null,
                "is_definition": true,
                "metrics": [{
                    "name": "m", "alias": null, "timestamp": null, "datatype": "Boolean",
                    "is_historical": false, "is_transient": false, "is_null": false,
                    "value": true
                }],
                "parameters": [{"name": "Vendor", "type": "String", "value": "ACME"}]
            })
        );
    }

    #[test]
    fn properties_keep_wire_order_and_nest() {
        let inner = PropertySet(vec![(
            "Level".into(),
            PropertyValue {
                datatype: Some(DataType::Int8),
                value: MetricValue::Value(Value::Int8(-3)),
            },
        )]);
        let set = PropertySet(vec![
            (
                "z".into(),
                PropertyValue {
                    datatype: Some(DataType::String),
                    value: MetricValue::Value(Value::String("ml".into())),
                },
            ),
            (
                "a".into(),
                PropertyValue {
                    datatype: Some(DataType::PropertySet),
                    value: MetricValue::Value(Value::PropertySet(inner.clone())),
                },
            ),
            (
                "list".into(),
                PropertyValue {
                    datatype: Some(DataType::PropertySetList),
                    value: MetricValue::Value(Value::PropertySetList(vec![
                        inner,
                        PropertySet::default(),
                    ])),
                },
            ),
            (
                "gone".into(),
                PropertyValue {
                    datatype: Some(DataType::Double),
                    value: MetricValue::Null,
                },
            ),
            (
                "raw".into(),
                PropertyValue {
                    datatype: None,
                    value: MetricValue::Untyped(WireValue::Int(5)),
                },
            ),
        ]);
        let mut m = metric(Some(DataType::Int32), MetricValue::Value(Value::Int32(1)));
        m.properties = Some(set);
        let j = metric_to_json(&m);
        let level = json!({"Level": {"type": "Int8", "value": -3}});
        assert_eq!(
            j["properties"],
            json!({
                "z": {"type": "String", "value": "ml"},
                "a": {"type": "PropertySet", "value": level},
                "list": {"type": "PropertySetList", "value": [level, {}]},
                "gone": {"type": "Double", "value": null},
                "raw": {"type": null, "value": 5},
            })
        );
        let keys: Vec<&String> = j["properties"]
            .as_object()
            .expect("object")
            .keys()
            .collect();
        assert_eq!(keys, ["z", "a", "list", "gone", "raw"]);
    }

    #[test]
    fn metadata_has_only_present_fields() {
        let mut m = metric(
            Some(DataType::Bytes),
            MetricValue::Value(Value::Bytes(Bytes::new())),
        );
        m.metadata = Some(MetaData {
            is_multi_part: Some(true),
            size: Some(u64::MAX),
            seq: Some(7),
            md5: Some("abc".into()),
            ..MetaData::default()
        });
        assert_eq!(
            metric_to_json(&m)["metadata"],
            json!({"is_multi_part": true, "size": u64::MAX, "seq": 7, "md5": "abc"})
        );
    }

    #[test]
    fn topics() {
        let t = Topic::parse("spBv1.0/Plant7/DDATA/Gateway-A/Filler").expect("topic");
        assert_eq!(
            payload_to_json(&Payload::default(), Some(&t))["topic"],
            json!({"namespace": "spBv1.0", "group_id": "Plant7", "message_type": "DDATA",
                   "edge_node_id": "Gateway-A", "device_id": "Filler"})
        );
        let t = Topic::Message {
            group: "G",
            message_type: MessageType::NBirth,
            edge_node: "E",
            device: None,
        };
        assert_eq!(topic_to_json(&t)["device_id"], Json::Null);
        let s = Topic::parse("spBv1.0/STATE/scada").expect("topic");
        assert_eq!(
            topic_to_json(&s),
            json!({"host_id": "scada", "version": "3.0"})
        );
        let s = Topic::parse("STATE/scada").expect("topic");
        assert_eq!(topic_to_json(&s)["version"], json!("2.2"));
        let state = HostState {
            online: true,
            timestamp: Some(5),
        };
        assert_eq!(
            state_to_json(&state, Some(&s)),
            json!({"topic": {"host_id": "scada", "version": "2.2"}, "online": true, "timestamp": 5})
        );
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0x00, 0xAB, 0xFF, 0x10]), "00abff10");
        assert_eq!(hex(&[]), "");
    }
}
