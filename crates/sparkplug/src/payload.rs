//! The typed Sparkplug B payload: decode from protobuf bytes and encode back.
//!
//! Decoding checks everything a consumer relies on (datatype codes, value fields that fit their
//! datatype, array packing, DataSet shape, PropertySet key/value counts) and returns a
//! [`DecodeError`] that names the place, never a panic.

use bytes::Bytes;
use prost::Message;
use thiserror::Error;

use crate::datatype::DataType;
use crate::proto::payload as pb;
use crate::value::{Value, ValueError, WireValue};

/// A decoded Sparkplug B payload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Payload {
    /// Publish time, ms since the epoch (UTC).
    pub timestamp: Option<u64>,
    pub metrics: Vec<Metric>,
    /// Sequence number; 0–255 for conformant edge nodes, absent on NDEATH and commands.
    pub seq: Option<u64>,
    pub uuid: Option<String>,
    pub body: Option<Bytes>,
}

/// One metric of a payload, a template or a template definition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metric {
    pub name: Option<String>,
    pub alias: Option<u64>,
    /// Acquisition time, ms since the epoch (UTC).
    pub timestamp: Option<u64>,
    /// The datatype on the wire; DATA messages usually leave it out.
    pub datatype: Option<DataType>,
    pub is_historical: bool,
    pub is_transient: bool,
    pub is_null: bool,
    pub metadata: Option<MetaData>,
    pub properties: Option<PropertySet>,
    pub value: MetricValue,
}

/// A metric's or property's value.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum MetricValue {
    /// `is_null` was set, or no value field was present.
    #[default]
    Null,
    /// A value typed by its datatype.
    Value(Value),
    /// No datatype on the wire: the raw field, to be typed with the birth's datatype.
    Untyped(WireValue),
}

impl MetricValue {
    /// Types an untyped value with `datatype`; typed values and nulls are returned unchanged.
    pub fn resolve(self, datatype: DataType) -> Result<MetricValue, ValueError> {
        match self {
            MetricValue::Untyped(w) => w.into_value(datatype).map(MetricValue::Value),
            other => Ok(other),
        }
    }

    pub fn as_value(&self) -> Option<&Value> {
        match self {
            MetricValue::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// A metric's MetaData (used mostly by Bytes and File values).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetaData {
    pub is_multi_part: Option<bool>,
    pub content_type: Option<String>,
    pub size: Option<u64>,
    pub seq: Option<u64>,
    pub file_name: Option<String>,
    pub file_type: Option<String>,
    pub md5: Option<String>,
    pub description: Option<String>,
}

/// An ordered set of properties.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PropertySet(pub Vec<(String, PropertyValue)>);

impl PropertySet {
    pub fn get(&self, key: &str) -> Option<&PropertyValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// One property's value. `datatype` is mandatory in births but may be absent in DATA.
#[derive(Clone, Debug, PartialEq)]
pub struct PropertyValue {
    pub datatype: Option<DataType>,
    pub value: MetricValue,
}

/// A DataSet: typed columns and rows of cells; a cell is `None` when it is null.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DataSet {
    pub num_of_columns: u64,
    pub columns: Vec<String>,
    pub types: Vec<DataType>,
    pub rows: Vec<Vec<Option<Value>>>,
}

/// A Template definition (in NBIRTH) or instance.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Template {
    pub version: Option<String>,
    pub template_ref: Option<String>,
    pub is_definition: bool,
    pub metrics: Vec<Metric>,
    pub parameters: Vec<Parameter>,
}

/// A template parameter; `value` is `None` when no value field is set.
#[derive(Clone, Debug, PartialEq)]
pub struct Parameter {
    pub name: Option<String>,
    pub datatype: DataType,
    pub value: Option<Value>,
}

/// Why a payload could not be decoded. The `path` names the place, such as
/// `metrics[3] "Line/Speed": properties "Limits"`.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("not a Sparkplug B protobuf payload: {0}")]
    Protobuf(String),
    #[error("{path}: unknown datatype code {code}")]
    UnknownDatatype { path: String, code: u32 },
    #[error("{path}: {source}")]
    Value { path: String, source: ValueError },
    #[error("{path}: {reason}")]
    Shape { path: String, reason: String },
}

/// Why a value could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{path}: {source}")]
pub struct EncodeError {
    pub path: String,
    pub source: ValueError,
}

/// Decoding nests deeply (templates hold metrics that hold properties that hold property sets);
/// this bounds the recursion so that hostile input cannot exhaust the stack. prost itself stops
/// at 100 levels of message nesting.
const MAX_DEPTH: usize = 32;

/// The scalar oneofs of `Metric`, `PropertyValue`, `DataSetValue` and `Template.Parameter` share
/// their variants; this maps each to and from [`WireValue`]. A bytes or message variant that a
/// oneof lacks maps to `None`.
macro_rules! scalar_oneof {
    ($oneof:path $(, $bytes:ident)?) => {
        impl From<$oneof> for WireValue {
            fn from(v: $oneof) -> WireValue {
                use $oneof as V;
                #[allow(unreachable_patterns)]
                match v {
                    V::IntValue(x) => WireValue::Int(x),
                    V::LongValue(x) => WireValue::Long(x),
                    V::FloatValue(x) => WireValue::Float(x),
                    V::DoubleValue(x) => WireValue::Double(x),
                    V::BooleanValue(x) => WireValue::Boolean(x),
                    V::StringValue(x) => WireValue::String(x),
                    $(V::$bytes(x) => WireValue::Bytes(x),)?
                    _ => WireValue::Extension,
                }
            }
        }

        impl ScalarOneof for $oneof {
            fn from_wire(w: WireValue) -> Option<Self> {
                use $oneof as V;
                Some(match w {
                    WireValue::Int(x) => V::IntValue(x),
                    WireValue::Long(x) => V::LongValue(x),
                    WireValue::Float(x) => V::FloatValue(x),
                    WireValue::Double(x) => V::DoubleValue(x),
                    WireValue::Boolean(x) => V::BooleanValue(x),
                    WireValue::String(x) => V::StringValue(x),
                    $(WireValue::Bytes(x) => V::$bytes(x),)?
                    // Its content is not decoded, but that there was one is kept.
                    WireValue::Extension => V::ExtensionValue(Default::default()),
                    #[allow(unreachable_patterns)]
                    _ => return None,
                })
            }
        }
    };
}

trait ScalarOneof: Sized {
    fn from_wire(w: WireValue) -> Option<Self>;
}

scalar_oneof!(pb::metric::Value, BytesValue);
scalar_oneof!(pb::property_value::Value);
scalar_oneof!(pb::data_set::data_set_value::Value);
scalar_oneof!(pb::template::parameter::Value);

impl Payload {
    /// Decodes a payload from protobuf bytes.
    pub fn decode(bytes: &[u8]) -> Result<Payload, DecodeError> {
        let raw = crate::proto::Payload::decode(bytes)
            .map_err(|e| DecodeError::Protobuf(e.to_string()))?;
        Payload::from_proto(raw)
    }

    /// Types an already-decoded protobuf payload.
    pub fn from_proto(raw: crate::proto::Payload) -> Result<Payload, DecodeError> {
        let metrics = raw
            .metrics
            .into_iter()
            .enumerate()
            .map(|(i, m)| metric_from_proto(m, None, i, 0))
            .collect::<Result<_, _>>()?;
        Ok(Payload {
            timestamp: raw.timestamp,
            metrics,
            seq: raw.seq,
            uuid: raw.uuid,
            body: raw.body,
        })
    }

    /// Encodes the payload to protobuf bytes.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        Ok(self.to_proto()?.encode_to_vec())
    }

    pub fn to_proto(&self) -> Result<crate::proto::Payload, EncodeError> {
        Ok(crate::proto::Payload {
            timestamp: self.timestamp,
            metrics: self
                .metrics
                .iter()
                .enumerate()
                .map(|(i, m)| metric_to_proto(m, &format!("metrics[{i}]")))
                .collect::<Result<_, _>>()?,
            seq: self.seq,
            uuid: self.uuid.clone(),
            body: self.body.clone(),
        })
    }
}

/// Where in the payload we are, rendered only when an error needs it.
enum Path<'a> {
    /// A metric of the payload (no parent) or of a template, labelled with its name or alias
    /// so that the user can find it: `metrics[2] "Line/Speed"`, `metrics[0] (alias 41)`.
    Metric {
        parent: Option<&'a Path<'a>>,
        index: usize,
        name: Option<&'a str>,
        alias: Option<u64>,
    },
    Property(&'a Path<'a>, &'a str),
    Other(&'a Path<'a>, String),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Metric {
                parent,
                index,
                name,
                alias,
            } => {
                match parent {
                    Some(p) => write!(f, "{p}.template.metrics[{index}]")?,
                    None => write!(f, "metrics[{index}]")?,
                }
                match (name, alias) {
                    (Some(name), _) => write!(f, " {name:?}"),
                    (None, Some(alias)) => write!(f, " (alias {alias})"),
                    (None, None) => Ok(()),
                }
            }
            Path::Property(p, k) => write!(f, "{p}.properties[{k:?}]"),
            Path::Other(p, s) => write!(f, "{p}.{s}"),
        }
    }
}

fn datatype(code: u32, path: &Path<'_>) -> Result<DataType, DecodeError> {
    DataType::from_code(code).ok_or_else(|| DecodeError::UnknownDatatype {
        path: path.to_string(),
        code,
    })
}

fn value_err(path: &Path<'_>, source: ValueError) -> DecodeError {
    DecodeError::Value {
        path: path.to_string(),
        source,
    }
}

fn too_deep(path: &Path<'_>) -> DecodeError {
    DecodeError::Shape {
        path: path.to_string(),
        reason: format!("nested more than {MAX_DEPTH} levels deep"),
    }
}

fn metric_from_proto(
    m: pb::Metric,
    parent: Option<&Path<'_>>,
    index: usize,
    depth: usize,
) -> Result<Metric, DecodeError> {
    let path = &Path::Metric {
        parent,
        index,
        name: m.name.as_deref(),
        alias: m.alias,
    };
    if depth > MAX_DEPTH {
        return Err(too_deep(path));
    }
    let datatype = m.datatype.map(|c| datatype(c, path)).transpose()?;
    // A typed metric without a value field is null, whether or not the flag says so: this is
    // what the encoder writes for it, so decoding and encoding again keep the payload the same.
    let is_null = m.is_null.unwrap_or(false) || (m.value.is_none() && datatype.is_some());
    let properties = m
        .properties
        .map(|p| property_set_from_proto(p, path, depth + 1))
        .transpose()?;
    let value = if is_null {
        MetricValue::Null
    } else {
        match m.value {
            None => MetricValue::Null,
            Some(pb::metric::Value::DatasetValue(ds)) => {
                check_compatible(datatype, DataType::DataSet, "dataset_value", path)?;
                MetricValue::Value(Value::DataSet(dataset_from_proto(ds, path)?))
            }
            Some(pb::metric::Value::TemplateValue(t)) => {
                check_compatible(datatype, DataType::Template, "template_value", path)?;
                MetricValue::Value(Value::Template(template_from_proto(t, path, depth + 1)?))
            }
            Some(scalar) => {
                let wire = WireValue::from(scalar);
                match datatype {
                    None | Some(DataType::Unknown) => MetricValue::Untyped(wire),
                    Some(dt) => {
                        MetricValue::Value(wire.into_value(dt).map_err(|e| value_err(path, e))?)
                    }
                }
            }
        }
    };
    Ok(Metric {
        name: m.name,
        alias: m.alias,
        timestamp: m.timestamp,
        datatype,
        is_historical: m.is_historical.unwrap_or(false),
        is_transient: m.is_transient.unwrap_or(false),
        is_null,
        metadata: m.metadata.map(metadata_from_proto),
        properties,
        value,
    })
}

fn check_compatible(
    declared: Option<DataType>,
    carried: DataType,
    field: &'static str,
    path: &Path<'_>,
) -> Result<(), DecodeError> {
    match declared {
        Some(dt) if dt != carried && dt != DataType::Unknown => Err(DecodeError::Value {
            path: path.to_string(),
            source: ValueError::Mismatch {
                datatype: dt,
                field,
            },
        }),
        _ => Ok(()),
    }
}

fn metadata_from_proto(m: pb::MetaData) -> MetaData {
    MetaData {
        is_multi_part: m.is_multi_part,
        content_type: m.content_type,
        size: m.size,
        seq: m.seq,
        file_name: m.file_name,
        file_type: m.file_type,
        md5: m.md5,
        description: m.description,
    }
}

fn property_set_from_proto(
    p: pb::PropertySet,
    path: &Path<'_>,
    depth: usize,
) -> Result<PropertySet, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(too_deep(path));
    }
    if p.keys.len() != p.values.len() {
        return Err(DecodeError::Shape {
            path: path.to_string(),
            reason: format!(
                "PropertySet has {} keys but {} values",
                p.keys.len(),
                p.values.len()
            ),
        });
    }
    p.keys
        .into_iter()
        .zip(p.values)
        .map(|(key, v)| {
            let value = property_value_from_proto(v, &Path::Property(path, &key), depth)?;
            Ok((key, value))
        })
        .collect::<Result<_, _>>()
        .map(PropertySet)
}

fn property_value_from_proto(
    v: pb::PropertyValue,
    path: &Path<'_>,
    depth: usize,
) -> Result<PropertyValue, DecodeError> {
    use pb::property_value::Value as V;
    let datatype = v.r#type.map(|c| datatype(c, path)).transpose()?;
    let value = if v.is_null.unwrap_or(false) {
        MetricValue::Null
    } else {
        match v.value {
            None => MetricValue::Null,
            Some(V::PropertysetValue(set)) => {
                check_compatible(datatype, DataType::PropertySet, "propertyset_value", path)?;
                MetricValue::Value(Value::PropertySet(property_set_from_proto(
                    set,
                    path,
                    depth + 1,
                )?))
            }
            Some(V::PropertysetsValue(list)) => {
                check_compatible(
                    datatype,
                    DataType::PropertySetList,
                    "propertysets_value",
                    path,
                )?;
                let sets = list
                    .propertyset
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| {
                        property_set_from_proto(s, &Path::Other(path, format!("[{i}]")), depth + 1)
                    })
                    .collect::<Result<_, _>>()?;
                MetricValue::Value(Value::PropertySetList(sets))
            }
            Some(scalar) => {
                let wire = WireValue::from(scalar);
                match datatype {
                    None | Some(DataType::Unknown) => MetricValue::Untyped(wire),
                    Some(dt) => {
                        MetricValue::Value(wire.into_value(dt).map_err(|e| value_err(path, e))?)
                    }
                }
            }
        }
    };
    Ok(PropertyValue { datatype, value })
}

fn dataset_from_proto(ds: pb::DataSet, path: &Path<'_>) -> Result<DataSet, DecodeError> {
    let path = Path::Other(path, "dataset".into());
    if ds.types.len() != ds.columns.len() {
        return Err(DecodeError::Shape {
            path: path.to_string(),
            reason: format!(
                "DataSet has {} columns but {} types",
                ds.columns.len(),
                ds.types.len()
            ),
        });
    }
    let types = ds
        .types
        .iter()
        .map(|&c| {
            let dt = datatype(c, &path)?;
            if dt.is_scalar() {
                Ok(dt)
            } else {
                Err(DecodeError::Value {
                    path: path.to_string(),
                    source: ValueError::NotAllowed { datatype: dt },
                })
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rows = ds
        .rows
        .into_iter()
        .enumerate()
        .map(|(r, row)| {
            if row.elements.len() != types.len() {
                return Err(DecodeError::Shape {
                    path: format!("{path}.rows[{r}]"),
                    reason: format!(
                        "row has {} cells for {} columns",
                        row.elements.len(),
                        types.len()
                    ),
                });
            }
            row.elements
                .into_iter()
                .zip(&types)
                .enumerate()
                .map(|(c, (cell, &dt))| {
                    let Some(wire) = cell.value.map(WireValue::from) else {
                        return Ok(None);
                    };
                    let cell_path = Path::Other(&path, format!("rows[{r}][{c}]"));
                    wire.into_value(dt)
                        .map(Some)
                        .map_err(|e| value_err(&cell_path, e))
                })
                .collect()
        })
        .collect::<Result<_, _>>()?;
    Ok(DataSet {
        num_of_columns: ds.num_of_columns.unwrap_or(types.len() as u64),
        columns: ds.columns,
        types,
        rows,
    })
}

fn template_from_proto(
    t: pb::Template,
    path: &Path<'_>,
    depth: usize,
) -> Result<Template, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(too_deep(path));
    }
    let metrics = t
        .metrics
        .into_iter()
        .enumerate()
        .map(|(i, m)| metric_from_proto(m, Some(path), i, depth + 1))
        .collect::<Result<_, _>>()?;
    let parameters = t
        .parameters
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let ppath = Path::Other(path, format!("template.parameters[{i}]"));
            let code = p.r#type.ok_or_else(|| DecodeError::Shape {
                path: ppath.to_string(),
                reason: "template parameter has no type".into(),
            })?;
            let dt = datatype(code, &ppath)?;
            let value = p
                .value
                .map(WireValue::from)
                .map(|w| w.into_value(dt))
                .transpose()
                .map_err(|e| value_err(&ppath, e))?;
            Ok(Parameter {
                name: p.name,
                datatype: dt,
                value,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Template {
        version: t.version,
        template_ref: t.template_ref,
        is_definition: t.is_definition.unwrap_or(false),
        metrics,
        parameters,
    })
}

// ---- encoding ----

fn enc_err(path: &str) -> impl FnOnce(ValueError) -> EncodeError + '_ {
    move |source| EncodeError {
        path: path.to_string(),
        source,
    }
}

fn metric_to_proto(m: &Metric, path: &str) -> Result<pb::Metric, EncodeError> {
    use pb::metric::Value as V;
    let value = match &m.value {
        MetricValue::Null => None,
        MetricValue::Untyped(w) => ScalarOneof::from_wire(w.clone()),
        MetricValue::Value(Value::DataSet(ds)) => {
            Some(V::DatasetValue(dataset_to_proto(ds, path)?))
        }
        MetricValue::Value(Value::Template(t)) => {
            Some(V::TemplateValue(template_to_proto(t, path)?))
        }
        MetricValue::Value(v) => v
            .to_wire()
            .map_err(enc_err(path))?
            .and_then(ScalarOneof::from_wire),
    };
    Ok(pb::Metric {
        name: m.name.clone(),
        alias: m.alias,
        timestamp: m.timestamp,
        datatype: m.datatype.map(DataType::code),
        is_historical: m.is_historical.then_some(true),
        is_transient: m.is_transient.then_some(true),
        is_null: (m.is_null || matches!(m.value, MetricValue::Null) && m.datatype.is_some())
            .then_some(true),
        metadata: m.metadata.as_ref().map(|md| pb::MetaData {
            is_multi_part: md.is_multi_part,
            content_type: md.content_type.clone(),
            size: md.size,
            seq: md.seq,
            file_name: md.file_name.clone(),
            file_type: md.file_type.clone(),
            md5: md.md5.clone(),
            description: md.description.clone(),
        }),
        properties: m
            .properties
            .as_ref()
            .map(|p| property_set_to_proto(p, path))
            .transpose()?,
        value,
    })
}

/// The scalar wire value for a cell, parameter or property, which have no bytes field.
fn scalar_wire(v: &Value, path: &str) -> Result<WireValue, EncodeError> {
    match v.to_wire().map_err(enc_err(path))? {
        Some(WireValue::Bytes(_)) | None => Err(EncodeError {
            path: path.to_string(),
            source: ValueError::NotAllowed {
                datatype: v.datatype(),
            },
        }),
        Some(w) => Ok(w),
    }
}

fn property_set_to_proto(p: &PropertySet, path: &str) -> Result<pb::PropertySet, EncodeError> {
    use pb::property_value::Value as V;
    let mut out = pb::PropertySet::default();
    for (key, pv) in &p.0 {
        let ppath = format!("{path}.properties[{key:?}]");
        let value = match &pv.value {
            MetricValue::Null => None,
            MetricValue::Value(Value::PropertySet(set)) => {
                Some(V::PropertysetValue(property_set_to_proto(set, &ppath)?))
            }
            MetricValue::Value(Value::PropertySetList(list)) => {
                Some(V::PropertysetsValue(pb::PropertySetList {
                    propertyset: list
                        .iter()
                        .map(|s| property_set_to_proto(s, &ppath))
                        .collect::<Result<_, _>>()?,
                }))
            }
            MetricValue::Value(v) => ScalarOneof::from_wire(scalar_wire(v, &ppath)?),
            MetricValue::Untyped(w) => ScalarOneof::from_wire(w.clone()),
        };
        out.keys.push(key.clone());
        out.values.push(pb::PropertyValue {
            r#type: pv.datatype.map(DataType::code),
            is_null: matches!(pv.value, MetricValue::Null).then_some(true),
            value,
        });
    }
    Ok(out)
}

fn dataset_to_proto(ds: &DataSet, path: &str) -> Result<pb::DataSet, EncodeError> {
    let rows = ds
        .rows
        .iter()
        .enumerate()
        .map(|(r, row)| {
            let elements = row
                .iter()
                .enumerate()
                .map(|(c, cell)| {
                    let value = match cell {
                        None => None,
                        Some(v) => ScalarOneof::from_wire(scalar_wire(
                            v,
                            &format!("{path}.rows[{r}][{c}]"),
                        )?),
                    };
                    Ok(pb::data_set::DataSetValue { value })
                })
                .collect::<Result<_, EncodeError>>()?;
            Ok(pb::data_set::Row { elements })
        })
        .collect::<Result<_, EncodeError>>()?;
    Ok(pb::DataSet {
        num_of_columns: Some(ds.num_of_columns),
        columns: ds.columns.clone(),
        types: ds.types.iter().map(|t| t.code()).collect(),
        rows,
    })
}

fn template_to_proto(t: &Template, path: &str) -> Result<pb::Template, EncodeError> {
    Ok(pb::Template {
        version: t.version.clone(),
        metrics: t
            .metrics
            .iter()
            .enumerate()
            .map(|(i, m)| metric_to_proto(m, &format!("{path}.template.metrics[{i}]")))
            .collect::<Result<_, _>>()?,
        parameters: t
            .parameters
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let ppath = format!("{path}.template.parameters[{i}]");
                let value = match &p.value {
                    None => None,
                    Some(v) => ScalarOneof::from_wire(scalar_wire(v, &ppath)?),
                };
                Ok(pb::template::Parameter {
                    name: p.name.clone(),
                    r#type: Some(p.datatype.code()),
                    value,
                })
            })
            .collect::<Result<_, EncodeError>>()?,
        template_ref: t.template_ref.clone(),
        is_definition: Some(t.is_definition),
    })
}
