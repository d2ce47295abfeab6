//! Property tests for the Sparkplug B codec.
//!
//! - Every datatype 1–19 and 22–34 survives encode → decode, as do metric flags, metadata,
//!   nested properties and the payload's timestamp, seq, uuid and body.
//! - Narrow signed integers zero-extended at their own width (Python Tahu) decode to the same
//!   value as the sign-extended form (Java Tahu).
//! - `Payload::decode` on arbitrary or mutated bytes and `Topic::parse` on arbitrary strings
//!   return `Ok` or `Err`, never panic; whatever decodes, round-trips.
//!
//! Payloads are compared through their `Debug` text: it shows every field exactly, prints every
//! NaN as `NaN` (so NaN compares equal to NaN, as `is_nan` would) and keeps the sign of zero
//! (`-0.0` vs `0.0`), which `PartialEq` on floats gets wrong both ways.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};
use prost::Message;
use sparkplug::proto::payload as pb;
use sparkplug::topic::{message_topic, state_topic};
use sparkplug::{
    DataSet, DataType, MetaData, Metric, MetricValue, Parameter, Payload, PropertySet,
    PropertyValue, StateVersion, Template, Topic, Value, WireValue,
};

// ---- strategies ----

fn int<T: Arbitrary + Copy + std::fmt::Debug + 'static>(extremes: [T; 4]) -> BoxedStrategy<T> {
    prop_oneof![
        1 => proptest::sample::select(extremes.to_vec()),
        3 => any::<T>(),
    ]
    .boxed()
}

fn f32s() -> BoxedStrategy<f32> {
    prop_oneof![
        2 => any::<f32>(),
        1 => any::<u32>().prop_map(f32::from_bits), // every bit pattern, NaN payloads included
        1 => proptest::sample::select(vec![
            f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0,
            f32::MIN, f32::MAX, f32::MIN_POSITIVE, f32::EPSILON, 1e-45,
        ]),
    ]
    .boxed()
}

fn f64s() -> BoxedStrategy<f64> {
    prop_oneof![
        2 => any::<f64>(),
        1 => any::<u64>().prop_map(f64::from_bits),
        1 => proptest::sample::select(vec![
            f64::NAN, -f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.0,
            f64::MIN, f64::MAX, f64::MIN_POSITIVE, f64::EPSILON, 5e-324,
        ]),
    ]
    .boxed()
}

fn strings() -> BoxedStrategy<String> {
    prop_oneof![
        3 => any::<String>(), // any Unicode, NUL included: protobuf strings may hold it
        1 => "[A-Za-z0-9_/ .-]{0,24}",
    ]
    .boxed()
}

fn uuids() -> BoxedStrategy<String> {
    prop_oneof![
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        any::<String>(),
    ]
    .boxed()
}

fn bytes_values() -> BoxedStrategy<Bytes> {
    vec(any::<u8>(), 0..48).prop_map(Bytes::from).boxed()
}

fn u64s() -> BoxedStrategy<u64> {
    int([0, 1, u64::MAX, 1_718_900_200_900])
}

/// The scalar datatypes 1–15 that DataSet columns, template parameters and properties use.
const SCALAR_TYPES: [DataType; 15] = [
    DataType::Int8,
    DataType::Int16,
    DataType::Int32,
    DataType::Int64,
    DataType::UInt8,
    DataType::UInt16,
    DataType::UInt32,
    DataType::UInt64,
    DataType::Float,
    DataType::Double,
    DataType::Boolean,
    DataType::String,
    DataType::DateTime,
    DataType::Text,
    DataType::UUID,
];

/// The datatypes a metric value can have: 1–19 and 22–34.
fn metric_types() -> Vec<DataType> {
    DataType::ALL
        .iter()
        .copied()
        .filter(|dt| !matches!(dt.code(), 0 | 20 | 21))
        .collect()
}

fn scalar_value(dt: DataType) -> BoxedStrategy<Value> {
    use DataType as D;
    match dt {
        D::Int8 => int([i8::MIN, i8::MAX, 0, -1]).prop_map(Value::Int8).boxed(),
        D::Int16 => int([i16::MIN, i16::MAX, 0, -1])
            .prop_map(Value::Int16)
            .boxed(),
        D::Int32 => int([i32::MIN, i32::MAX, 0, -1])
            .prop_map(Value::Int32)
            .boxed(),
        D::Int64 => int([i64::MIN, i64::MAX, 0, -1])
            .prop_map(Value::Int64)
            .boxed(),
        D::UInt8 => int([0, 1, u8::MAX, 0x80]).prop_map(Value::UInt8).boxed(),
        D::UInt16 => int([0, 1, u16::MAX, 0x8000])
            .prop_map(Value::UInt16)
            .boxed(),
        D::UInt32 => int([0, 1, u32::MAX, 0x8000_0000])
            .prop_map(Value::UInt32)
            .boxed(),
        D::UInt64 => u64s().prop_map(Value::UInt64).boxed(),
        D::Float => f32s().prop_map(Value::Float).boxed(),
        D::Double => f64s().prop_map(Value::Double).boxed(),
        D::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
        D::String => strings().prop_map(Value::String).boxed(),
        D::DateTime => u64s().prop_map(Value::DateTime).boxed(),
        D::Text => strings().prop_map(Value::Text).boxed(),
        D::UUID => uuids().prop_map(Value::Uuid).boxed(),
        other => panic!("{other} is not a scalar datatype"),
    }
}

fn array_value(dt: DataType) -> BoxedStrategy<Value> {
    use DataType as D;
    const N: usize = 20;
    match dt {
        D::Int8Array => vec(int([i8::MIN, i8::MAX, 0, -1]), 0..N)
            .prop_map(Value::Int8Array)
            .boxed(),
        D::Int16Array => vec(int([i16::MIN, i16::MAX, 0, -1]), 0..N)
            .prop_map(Value::Int16Array)
            .boxed(),
        D::Int32Array => vec(int([i32::MIN, i32::MAX, 0, -1]), 0..N)
            .prop_map(Value::Int32Array)
            .boxed(),
        D::Int64Array => vec(int([i64::MIN, i64::MAX, 0, -1]), 0..N)
            .prop_map(Value::Int64Array)
            .boxed(),
        D::UInt8Array => vec(any::<u8>(), 0..N).prop_map(Value::UInt8Array).boxed(),
        D::UInt16Array => vec(int([0, 1, u16::MAX, 0x8000]), 0..N)
            .prop_map(Value::UInt16Array)
            .boxed(),
        D::UInt32Array => vec(int([0, 1, u32::MAX, 0x8000_0000]), 0..N)
            .prop_map(Value::UInt32Array)
            .boxed(),
        D::UInt64Array => vec(u64s(), 0..N).prop_map(Value::UInt64Array).boxed(),
        D::FloatArray => vec(f32s(), 0..N).prop_map(Value::FloatArray).boxed(),
        D::DoubleArray => vec(f64s(), 0..N).prop_map(Value::DoubleArray).boxed(),
        // Lengths 0..40 cover the empty array and every remainder modulo 8.
        D::BooleanArray => vec(any::<bool>(), 0..40)
            .prop_map(Value::BooleanArray)
            .boxed(),
        D::StringArray => vec("[^\u{0}]{0,8}", 0..8)
            .prop_map(Value::StringArray)
            .boxed(),
        D::DateTimeArray => vec(u64s(), 0..N).prop_map(Value::DateTimeArray).boxed(),
        other => panic!("{other} is not an array datatype"),
    }
}

fn scalar_type() -> impl Strategy<Value = DataType> {
    proptest::sample::select(SCALAR_TYPES.to_vec())
}

fn dataset() -> BoxedStrategy<DataSet> {
    vec((scalar_type(), strings()), 0..5)
        .prop_flat_map(|cols| {
            let types: Vec<DataType> = cols.iter().map(|(t, _)| *t).collect();
            let columns: Vec<String> = cols.into_iter().map(|(_, c)| c).collect();
            let row: Vec<_> = types
                .iter()
                .map(|&t| proptest::option::weighted(0.8, scalar_value(t)))
                .collect();
            let n = types.len() as u64;
            (
                prop_oneof![4 => Just(n), 1 => any::<u64>()],
                Just(columns),
                Just(types),
                vec(row, 0..4),
            )
        })
        .prop_map(|(num_of_columns, columns, types, rows)| DataSet {
            num_of_columns,
            columns,
            types,
            rows,
        })
        .boxed()
}

fn parameter() -> impl Strategy<Value = Parameter> {
    (proptest::option::of(strings()), scalar_type()).prop_flat_map(|(name, datatype)| {
        proptest::option::weighted(0.8, scalar_value(datatype)).prop_map(move |value| Parameter {
            name: name.clone(),
            datatype,
            value,
        })
    })
}

fn metadata() -> impl Strategy<Value = MetaData> {
    (
        proptest::option::of(any::<bool>()),
        proptest::option::of(strings()),
        proptest::option::of(u64s()),
        proptest::option::of(u64s()),
        proptest::option::of(strings()),
        proptest::option::of(strings()),
        proptest::option::of("[0-9a-f]{32}"),
        proptest::option::of(strings()),
    )
        .prop_map(
            |(is_multi_part, content_type, size, seq, file_name, file_type, md5, description)| {
                MetaData {
                    is_multi_part,
                    content_type,
                    size,
                    seq,
                    file_name,
                    file_type,
                    md5,
                    description,
                }
            },
        )
}

/// A wire value as an untyped (datatype-less) field carries it.
fn wire_value(bytes: bool) -> BoxedStrategy<WireValue> {
    let scalar = prop_oneof![
        any::<u32>().prop_map(WireValue::Int),
        any::<u64>().prop_map(WireValue::Long),
        f32s().prop_map(WireValue::Float),
        f64s().prop_map(WireValue::Double),
        any::<bool>().prop_map(WireValue::Boolean),
        strings().prop_map(WireValue::String),
        Just(WireValue::Extension),
    ];
    if bytes {
        prop_oneof![6 => scalar, 1 => bytes_values().prop_map(WireValue::Bytes)].boxed()
    } else {
        scalar.boxed()
    }
}

/// A PropertyValue that is a scalar, a null, an untyped scalar or (when `nested` is given) a
/// nested PropertySet or PropertySetList.
fn property_value(nested: Option<BoxedStrategy<PropertySet>>) -> BoxedStrategy<PropertyValue> {
    let leaf = prop_oneof![
        4 => scalar_type().prop_flat_map(|dt| scalar_value(dt).prop_map(move |v| PropertyValue {
            datatype: Some(dt),
            value: MetricValue::Value(v),
        })),
        1 => proptest::option::of(proptest::sample::select(DataType::ALL.to_vec()))
            .prop_map(|datatype| PropertyValue { datatype, value: MetricValue::Null }),
        1 => wire_value(false).prop_map(|w| PropertyValue {
            datatype: None,
            value: MetricValue::Untyped(w),
        }),
    ];
    let Some(nested) = nested else {
        return leaf.boxed();
    };
    prop_oneof![
        3 => leaf,
        1 => (any::<bool>(), nested.clone()).prop_map(|(typed, set)| PropertyValue {
            datatype: typed.then_some(DataType::PropertySet),
            value: MetricValue::Value(Value::PropertySet(set)),
        }),
        1 => (any::<bool>(), vec(nested, 0..3)).prop_map(|(typed, sets)| PropertyValue {
            datatype: typed.then_some(DataType::PropertySetList),
            value: MetricValue::Value(Value::PropertySetList(sets)),
        }),
    ]
    .boxed()
}

fn property_set() -> BoxedStrategy<PropertySet> {
    let leaf = vec(("[a-zA-Z]{0,10}", property_value(None)), 0..4).prop_map(PropertySet);
    leaf.prop_recursive(3, 24, 4, |inner| {
        vec(("[a-zA-Z]{0,10}", property_value(Some(inner))), 0..4).prop_map(PropertySet)
    })
    .boxed()
}

/// The value of a metric of `dt` that is not a Template (templates recurse, see `metric`).
fn leaf_value(dt: DataType) -> BoxedStrategy<Value> {
    use DataType as D;
    match dt {
        D::DataSet => dataset().prop_map(Value::DataSet).boxed(),
        D::Bytes => bytes_values().prop_map(Value::Bytes).boxed(),
        D::File => bytes_values().prop_map(Value::File).boxed(),
        dt if dt.is_scalar() => scalar_value(dt),
        dt if dt.is_array() => array_value(dt),
        other => panic!("no leaf strategy for {other}"),
    }
}

/// How a metric carries its value: typed, null or untyped.
#[derive(Clone, Debug)]
enum Shape {
    Typed(Value),
    Null(Option<DataType>, bool),
    Untyped(WireValue, bool),
}

fn shape(template: Option<BoxedStrategy<Template>>) -> BoxedStrategy<Shape> {
    let non_template: Vec<DataType> = metric_types()
        .into_iter()
        .filter(|dt| *dt != DataType::Template)
        .collect();
    let typed = proptest::sample::select(non_template)
        .prop_flat_map(leaf_value)
        .prop_map(Shape::Typed);
    let null = (
        proptest::option::of(proptest::sample::select(DataType::ALL.to_vec())),
        any::<bool>(),
    )
        .prop_map(|(dt, flag)| Shape::Null(dt, flag));
    let untyped = (wire_value(true), any::<bool>()).prop_map(|(w, u)| Shape::Untyped(w, u));
    match template {
        None => prop_oneof![6 => typed, 1 => null, 1 => untyped].boxed(),
        Some(t) => prop_oneof![
            5 => typed,
            1 => null,
            1 => untyped,
            2 => t.prop_map(|t| Shape::Typed(Value::Template(t))),
        ]
        .boxed(),
    }
}

fn template_of(metric: BoxedStrategy<Metric>) -> BoxedStrategy<Template> {
    (
        proptest::option::of(strings()),
        proptest::option::of(strings()),
        any::<bool>(),
        vec(metric, 0..4),
        vec(parameter(), 0..4),
    )
        .prop_map(
            |(version, template_ref, is_definition, metrics, parameters)| Template {
                version,
                template_ref,
                is_definition,
                metrics,
                parameters,
            },
        )
        .boxed()
}

#[allow(clippy::type_complexity)]
fn metric_with(shape: BoxedStrategy<Shape>) -> BoxedStrategy<Metric> {
    (
        (
            proptest::option::of(strings()),
            proptest::option::of(u64s()),
            proptest::option::of(u64s()),
        ),
        (any::<bool>(), any::<bool>()),
        proptest::option::weighted(0.2, metadata()),
        proptest::option::weighted(0.3, property_set()),
        shape,
    )
        .prop_map(
            |(
                (name, alias, timestamp),
                (is_historical, is_transient),
                metadata,
                properties,
                shape,
            )| {
                // A typed metric without a value is null, flag or not; the flag alone is kept.
                let (datatype, is_null, value) = match shape {
                    Shape::Typed(v) => (Some(v.datatype()), false, MetricValue::Value(v)),
                    Shape::Null(dt, flag) => (dt, dt.is_some() || flag, MetricValue::Null),
                    Shape::Untyped(w, unknown) => (
                        unknown.then_some(DataType::Unknown),
                        false,
                        MetricValue::Untyped(w),
                    ),
                };
                Metric {
                    name,
                    alias,
                    timestamp,
                    datatype,
                    is_historical,
                    is_transient,
                    is_null,
                    metadata,
                    properties,
                    value,
                }
            },
        )
        .boxed()
}

fn metric() -> BoxedStrategy<Metric> {
    metric_with(shape(None))
        .prop_recursive(3, 16, 4, |inner| {
            metric_with(shape(Some(template_of(inner))))
        })
        .boxed()
}

fn payload() -> BoxedStrategy<Payload> {
    (
        proptest::option::of(u64s()),
        vec(metric(), 0..6),
        proptest::option::of(prop_oneof![0..=255u64, any::<u64>()]),
        proptest::option::of(uuids()),
        proptest::option::of(bytes_values()),
    )
        .prop_map(|(timestamp, metrics, seq, uuid, body)| Payload {
            timestamp,
            metrics,
            seq,
            uuid,
            body,
        })
        .boxed()
}

// ---- checks ----

/// Encodes `p`, decodes the bytes and checks that the result is `p` and that encoding it again
/// gives the same bytes.
fn assert_round_trip(p: &Payload) -> Result<(), TestCaseError> {
    let bytes = p.encode().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back = Payload::decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(format!("{p:?}"), format!("{back:?}"));
    prop_assert_eq!(back.encode().expect("encodes again"), bytes);
    Ok(())
}

/// NaN equals NaN and zeros compare by sign; everything else by `==`.
fn same_f32(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

fn same_f64(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => same_f32(*x, *y),
        (Value::Double(x), Value::Double(y)) => same_f64(*x, *y),
        (Value::FloatArray(x), Value::FloatArray(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_f32(*x, *y))
        }
        (Value::DoubleArray(x), Value::DoubleArray(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_f64(*x, *y))
        }
        // Containers may hold floats: compare them by their Debug text (see the module docs).
        (Value::DataSet(_), _) | (Value::Template(_), _) => format!("{a:?}") == format!("{b:?}"),
        _ => a == b,
    }
}

fn one_metric(m: Metric) -> Payload {
    Payload {
        timestamp: Some(1_718_900_201_000),
        metrics: vec![m],
        seq: Some(7),
        uuid: None,
        body: None,
    }
}

// ---- round trips ----

/// Every metric datatype 1–19 and 22–34, each with its own run of cases, so that none is left to
/// chance: the value decodes back with its datatype, from a metric of that datatype.
#[test]
fn every_datatype_round_trips_as_a_metric_value() {
    let leaf_metric = metric_with(shape(None));
    for dt in metric_types() {
        let strategy = if dt == DataType::Template {
            template_of(leaf_metric.clone())
                .prop_map(Value::Template)
                .boxed()
        } else {
            leaf_value(dt)
        };
        let mut runner = TestRunner::new(Config {
            cases: 96,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&strategy, |v| {
                prop_assert_eq!(v.datatype(), dt);
                let p = one_metric(Metric {
                    name: Some(format!("Line1/{dt}")),
                    datatype: Some(dt),
                    value: MetricValue::Value(v.clone()),
                    ..Default::default()
                });
                let back = Payload::decode(&p.encode().expect("encodes")).expect("decodes");
                let got = back.metrics[0].value.as_value().expect("a typed value");
                prop_assert!(same_value(got, &v), "{dt}: {v:?} came back as {got:?}");
                prop_assert_eq!(back.metrics[0].datatype, Some(dt));
                assert_round_trip(&p)
            })
            .unwrap_or_else(|e| panic!("{dt}: {e}"));
    }
}

proptest! {
    #![proptest_config(Config { cases: 256, failure_persistence: None, ..Config::default() })]

    /// Whole payloads: every datatype, nested templates with parameters, DataSets with null
    /// cells, nested PropertySets and PropertySetLists, metadata, flags, untyped values, and
    /// the payload's timestamp, seq, uuid and body.
    #[test]
    fn payloads_round_trip(p in payload()) {
        assert_round_trip(&p)?;
    }

    /// File values with their MetaData, and the metric flags in every combination.
    #[test]
    fn files_with_metadata_and_flags_round_trip(
        file in bytes_values(),
        md in metadata(),
        is_historical in any::<bool>(),
        is_transient in any::<bool>(),
        is_null in any::<bool>(),
    ) {
        let p = one_metric(Metric {
            name: Some("Recipe/File".into()),
            alias: Some(42),
            timestamp: Some(1_718_900_200_900),
            datatype: Some(DataType::File),
            is_historical,
            is_transient,
            is_null,
            metadata: Some(md),
            properties: None,
            value: if is_null { MetricValue::Null } else { MetricValue::Value(Value::File(file)) },
        });
        assert_round_trip(&p)?;
    }

    /// Narrow signed integers: Python Tahu writes Int8 −1 as 0xFF (zero-extended at the type's
    /// own width), Java Tahu as 0xFFFFFFFF (sign-extended to 32 bits), and some encoders use
    /// `long_value` sign-extended to 64 bits. All decode to the same value, wherever the value
    /// sits: a metric, a property, a DataSet cell or a template parameter.
    #[test]
    fn narrow_signed_ints_decode_alike_in_every_convention(
        (dt, value, own_width, sign_extended) in prop_oneof![
            int([i8::MIN, i8::MAX, 0, -1]).prop_map(|v| {
                (DataType::Int8, Value::Int8(v), u32::from(v as u8), i64::from(v))
            }),
            int([i16::MIN, i16::MAX, 0, -1]).prop_map(|v| {
                (DataType::Int16, Value::Int16(v), u32::from(v as u16), i64::from(v))
            }),
            int([i32::MIN, i32::MAX, 0, -1]).prop_map(|v| {
                (DataType::Int32, Value::Int32(v), v as u32, i64::from(v))
            }),
        ],
    ) {
        let encodings = [
            pb::metric::Value::IntValue(own_width),
            pb::metric::Value::IntValue(sign_extended as u32),
            pb::metric::Value::LongValue(sign_extended as u64),
        ];
        for field in encodings {
            let wire_value: WireValue = match &field {
                pb::metric::Value::IntValue(x) => WireValue::Int(*x),
                pb::metric::Value::LongValue(x) => WireValue::Long(*x),
                _ => unreachable!(),
            };
            let (cell, param, prop) = match field {
                pb::metric::Value::IntValue(x) => (
                    pb::data_set::data_set_value::Value::IntValue(x),
                    pb::template::parameter::Value::IntValue(x),
                    pb::property_value::Value::IntValue(x),
                ),
                pb::metric::Value::LongValue(x) => (
                    pb::data_set::data_set_value::Value::LongValue(x),
                    pb::template::parameter::Value::LongValue(x),
                    pb::property_value::Value::LongValue(x),
                ),
                _ => unreachable!(),
            };
            let raw = sparkplug::proto::Payload {
                timestamp: Some(1),
                seq: Some(0),
                metrics: vec![
                    pb::Metric {
                        name: Some("m".into()),
                        datatype: Some(dt.code()),
                        value: Some(field.clone()),
                        properties: Some(pb::PropertySet {
                            keys: vec!["p".into()],
                            values: vec![pb::PropertyValue {
                                r#type: Some(dt.code()),
                                is_null: None,
                                value: Some(prop),
                            }],
                        }),
                        ..Default::default()
                    },
                    pb::Metric {
                        name: Some("ds".into()),
                        datatype: Some(DataType::DataSet.code()),
                        value: Some(pb::metric::Value::DatasetValue(pb::DataSet {
                            num_of_columns: Some(1),
                            columns: vec!["c".into()],
                            types: vec![dt.code()],
                            rows: vec![pb::data_set::Row {
                                elements: vec![pb::data_set::DataSetValue { value: Some(cell) }],
                            }],
                        })),
                        ..Default::default()
                    },
                    pb::Metric {
                        name: Some("t".into()),
                        datatype: Some(DataType::Template.code()),
                        value: Some(pb::metric::Value::TemplateValue(pb::Template {
                            template_ref: Some("T".into()),
                            parameters: vec![pb::template::Parameter {
                                name: Some("p".into()),
                                r#type: Some(dt.code()),
                                value: Some(param),
                            }],
                            ..Default::default()
                        })),
                        ..Default::default()
                    },
                    // Untyped (DATA without datatype), resolved later with the birth's datatype.
                    pb::Metric { alias: Some(9), value: Some(field), ..Default::default() },
                ],
                ..Default::default()
            };
            let p = Payload::decode(&raw.encode_to_vec()).expect("decodes");
            let m = &p.metrics;
            prop_assert_eq!(m[0].value.as_value(), Some(&value));
            let props = m[0].properties.as_ref().expect("properties");
            prop_assert_eq!(props.get("p").and_then(|p| p.value.as_value()), Some(&value));
            let Some(Value::DataSet(ds)) = m[1].value.as_value() else { panic!("a DataSet") };
            prop_assert_eq!(ds.rows[0][0].as_ref(), Some(&value));
            let Some(Value::Template(t)) = m[2].value.as_value() else { panic!("a Template") };
            prop_assert_eq!(t.parameters[0].value.as_ref(), Some(&value));
            prop_assert_eq!(&m[3].value, &MetricValue::Untyped(wire_value));
            prop_assert_eq!(m[3].value.clone().resolve(dt), Ok(MetricValue::Value(value.clone())));
        }
    }
}

// ---- never panic ----

fn vectors() -> &'static [Vec<u8>] {
    static VECTORS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    VECTORS.get_or_init(load_vectors)
}

fn load_vectors() -> Vec<Vec<u8>> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sparkplug-vectors");
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("testdata/sparkplug-vectors")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .map(|p| std::fs::read(p).expect("readable vector"))
        .collect();
    out.sort();
    assert!(out.len() > 40, "test vectors missing");
    out
}

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Truncate(Index),
    Remove(Index),
    Insert(Index, u8),
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    vec(
        prop_oneof![
            (any::<Index>(), 0..8u8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
            (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
            any::<Index>().prop_map(Mutation::Truncate),
            any::<Index>().prop_map(Mutation::Remove),
            (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        ],
        1..6,
    )
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        let n = bytes.len();
        match m {
            Mutation::FlipBit(i, b) => bytes[i.index(n)] ^= 1 << b,
            Mutation::SetByte(i, b) => bytes[i.index(n)] = *b,
            Mutation::Truncate(i) => bytes.truncate(i.index(n)),
            Mutation::Remove(i) => {
                bytes.remove(i.index(n));
            }
            Mutation::Insert(i, b) => bytes.insert(i.index(n + 1), *b),
        }
    }
    bytes
}

/// Decoding returns Ok or Err and never panics; whatever decodes must encode, and decode back to
/// the same payload.
fn decode_never_panics(bytes: &[u8]) -> Result<(), TestCaseError> {
    match Payload::decode(bytes) {
        Ok(p) => assert_round_trip(&p),
        Err(e) => {
            let _ = e.to_string();
            Ok(())
        }
    }
}

proptest! {
    #![proptest_config(Config { cases: 2048, failure_persistence: None, ..Config::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        decode_never_panics(&bytes)?;
    }

    #[test]
    fn mutated_test_vectors_never_panic(
        which in any::<Index>(),
        muts in mutations(),
    ) {
        let vectors = vectors();
        let original = vectors[which.index(vectors.len())].clone();
        decode_never_panics(&mutate(original, &muts))?;
    }

    #[test]
    fn topic_parse_never_panics(topic in any::<String>()) {
        check_topic(&topic)?;
    }

    /// Strings built from Sparkplug-looking levels, so that parsing gets past the namespace.
    #[test]
    fn topic_like_strings_parse_or_fail_cleanly(
        levels in vec(prop_oneof![
            Just("spBv1.0".to_string()),
            Just("STATE".to_string()),
            proptest::sample::select(vec![
                "NBIRTH", "NDEATH", "NDATA", "NCMD", "DBIRTH", "DDEATH", "DDATA", "DCMD",
            ]).prop_map(String::from),
            "[A-Za-z0-9+#_. -]{0,6}",
        ], 0..7),
    ) {
        check_topic(&levels.join("/"))?;
    }
}

proptest! {
    #![proptest_config(Config { cases: 256, failure_persistence: None, ..Config::default() })]

    #[test]
    fn mutated_encoded_payloads_never_panic(p in payload(), muts in mutations()) {
        let bytes = p.encode().expect("encodes");
        decode_never_panics(&mutate(bytes, &muts))?;
    }
}

fn check_topic(topic: &str) -> Result<(), TestCaseError> {
    match Topic::parse(topic) {
        Ok(Topic::Message {
            group,
            message_type,
            edge_node,
            device,
        }) => {
            prop_assert_eq!(device.is_some(), message_type.is_device());
            prop_assert_eq!(message_topic(group, message_type, edge_node, device), topic);
        }
        Ok(Topic::State { host_id, version }) => {
            prop_assert!(!host_id.is_empty() && !host_id.contains(['/', '+', '#']));
            if version == StateVersion::V3 {
                prop_assert_eq!(state_topic(host_id), topic);
            } else {
                prop_assert_eq!(format!("STATE/{host_id}"), topic);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    Ok(())
}
