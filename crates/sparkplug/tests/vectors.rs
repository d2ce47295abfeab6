//! Decodes every Tahu-encoded vector in `testdata/sparkplug-vectors`, renders it with
//! `sparkplug::json` and compares the result with the vector's `expected` content under the
//! conventions of the vectors' README:
//!
//! - 64-bit integers (Int64, UInt64, DateTime values and every uint64 field) are decimal strings
//!   in `expected`, exact JSON integers in our output;
//! - Float values are compared as `f32`, Double values as `f64`, both bit for bit (so −0 and +0
//!   differ); NaN matches NaN; `"NaN"`, `"Infinity"`, `"-Infinity"`, `"-0"` are strings in
//!   `expected`;
//! - properties are ordered lists of `{key, type, datatype, value}` in `expected` and an object
//!   `{key: {type, value}}` (in wire order) in our output;
//! - absent flags are false, absent name/alias/timestamp/uuid/body are null, absent template
//!   parts are null / false / empty.
//!
//! Every mismatch is reported with the vector's name and the JSON path of the field.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use sparkplug::json::{hex, payload_to_json, wire_value_to_json};
use sparkplug::{DataType, MetricValue, Payload, Topic};

/// The vector whose metrics carry no datatype, and the birth that declares their datatypes.
const UNTYPED_VECTOR: &str = "ddata_alias_only_no_datatype";
const UNTYPED_BIRTH: &str = "dbirth_filler";

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sparkplug-vectors")
}

fn read_json(path: &Path) -> Json {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_bin(name: &str) -> Vec<u8> {
    let path = vectors_dir().join(format!("{name}.bin"));
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Collects every mismatch instead of stopping at the first.
#[derive(Default)]
struct Checker {
    errors: Vec<String>,
}

impl Checker {
    fn fail(&mut self, path: &str, msg: impl AsRef<str>) {
        self.errors.push(format!("{path}: {}", msg.as_ref()));
    }

    fn ensure(&mut self, ok: bool, path: &str, msg: impl FnOnce() -> String) {
        if !ok {
            self.fail(path, msg());
        }
    }

    /// The object at `act`, or a failure.
    fn object<'a>(&mut self, act: &'a Json, path: &str) -> Option<&'a Map<String, Json>> {
        let o = act.as_object();
        if o.is_none() {
            self.fail(path, format!("expected an object, got {act}"));
        }
        o
    }

    /// Only `allowed` keys may appear in an `expected` object: a field this test does not know
    /// would otherwise go unchecked.
    fn known_keys(&mut self, exp: &Map<String, Json>, allowed: &[&str], path: &str) {
        for k in exp.keys() {
            if !allowed.contains(&k.as_str()) {
                self.fail(
                    path,
                    format!("expected has field {k:?} that this test does not check"),
                );
            }
        }
    }

    /// Our object must have exactly these keys.
    fn exact_keys(&mut self, act: &Map<String, Json>, keys: &[&str], path: &str) {
        let got: BTreeSet<&str> = act.keys().map(String::as_str).collect();
        let want: BTreeSet<&str> = keys.iter().copied().collect();
        if got != want {
            self.fail(path, format!("fields are {got:?}, expected {want:?}"));
        }
    }

    /// A uint64 field: a decimal string (or absent, meaning null) in `expected`, an integer in
    /// our output.
    fn u64_field(&mut self, exp: Option<&Json>, act: &Json, path: &str) {
        match exp {
            None | Some(Json::Null) => {
                self.ensure(act.is_null(), path, || format!("expected null, got {act}"));
            }
            Some(Json::String(s)) => {
                let ok = act.is_u64() && int_text(act).as_deref() == Some(s.as_str());
                self.ensure(ok, path, || format!("expected integer {s}, got {act}"));
            }
            Some(other) => self.fail(path, format!("expected value {other} is not a string")),
        }
    }

    /// A field compared as is, with a default when `expected` leaves it out.
    fn plain_field(&mut self, exp: Option<&Json>, default: Json, act: &Json, path: &str) {
        let want = exp.cloned().unwrap_or(default);
        self.ensure(*act == want, path, || format!("expected {want}, got {act}"));
    }

    /// The datatype name in our output matches `expected`'s `type`, and `expected`'s own
    /// numeric code agrees with that name.
    fn type_name(&mut self, exp: &Map<String, Json>, act: &Json, path: &str) -> Option<String> {
        let Some(name) = exp.get("type").and_then(Json::as_str) else {
            self.fail(path, "expected has no type");
            return None;
        };
        match (
            DataType::from_name(name),
            exp.get("datatype").and_then(Json::as_u64),
        ) {
            (Some(dt), Some(code)) if u64::from(dt.code()) == code => {}
            (dt, code) => self.fail(
                path,
                format!("expected type {name} ({dt:?}) disagrees with its code {code:?}"),
            ),
        }
        self.ensure(act.as_str() == Some(name), path, || {
            format!("expected type {name}, got {act}")
        });
        Some(name.to_string())
    }

    fn payload(&mut self, exp: &Json, act: &Json, path: &str) {
        let (Some(exp), Some(act)) = (exp.as_object(), self.object(act, path)) else {
            return self.fail(path, "expected is not an object");
        };
        self.known_keys(exp, &["timestamp", "seq", "uuid", "body", "metrics"], path);
        self.exact_keys(act, &["timestamp", "seq", "uuid", "body", "metrics"], path);
        self.u64_field(
            exp.get("timestamp"),
            &act["timestamp"],
            &format!("{path}.timestamp"),
        );
        self.u64_field(exp.get("seq"), &act["seq"], &format!("{path}.seq"));
        self.plain_field(
            exp.get("uuid"),
            Json::Null,
            &act["uuid"],
            &format!("{path}.uuid"),
        );
        self.plain_field(
            exp.get("body"),
            Json::Null,
            &act["body"],
            &format!("{path}.body"),
        );
        self.metrics(
            exp.get("metrics"),
            &act["metrics"],
            &format!("{path}.metrics"),
        );
    }

    fn metrics(&mut self, exp: Option<&Json>, act: &Json, path: &str) {
        let empty = Vec::new();
        let exp = match exp {
            None => &empty,
            Some(Json::Array(a)) => a,
            Some(other) => return self.fail(path, format!("expected {other} is not a list")),
        };
        let Some(act) = act.as_array() else {
            return self.fail(path, format!("expected a list, got {act}"));
        };
        if exp.len() != act.len() {
            self.fail(
                path,
                format!("expected {} metrics, got {}", exp.len(), act.len()),
            );
        }
        for (i, (e, a)) in exp.iter().zip(act).enumerate() {
            self.metric(e, a, &format!("{path}[{i}]"));
        }
    }

    fn metric(&mut self, exp: &Json, act: &Json, path: &str) {
        let (Some(exp), Some(act)) = (exp.as_object(), self.object(act, path)) else {
            return self.fail(path, "expected is not an object");
        };
        self.known_keys(
            exp,
            &[
                "name",
                "alias",
                "timestamp",
                "type",
                "datatype",
                "datatype_on_wire",
                "value",
                "is_historical",
                "is_transient",
                "is_null",
                "metadata",
                "properties",
            ],
            path,
        );
        let mut keys = vec![
            "name",
            "alias",
            "timestamp",
            "datatype",
            "is_historical",
            "is_transient",
            "is_null",
            "value",
        ];
        keys.extend(exp.contains_key("properties").then_some("properties"));
        keys.extend(exp.contains_key("metadata").then_some("metadata"));
        self.exact_keys(act, &keys, path);

        self.plain_field(
            exp.get("name"),
            Json::Null,
            &act["name"],
            &format!("{path}.name"),
        );
        self.u64_field(exp.get("alias"), &act["alias"], &format!("{path}.alias"));
        self.u64_field(
            exp.get("timestamp"),
            &act["timestamp"],
            &format!("{path}.timestamp"),
        );
        for flag in ["is_historical", "is_transient", "is_null"] {
            self.plain_field(
                exp.get(flag),
                Json::Bool(false),
                &act[flag],
                &format!("{path}.{flag}"),
            );
        }
        let Some(ty) = self.type_name(exp, &act["datatype"], &format!("{path}.datatype")) else {
            return;
        };
        let exp_value = exp.get("value").unwrap_or(&Json::Null);
        if exp.get("is_null") == Some(&Json::Bool(true)) {
            self.ensure(exp_value.is_null(), path, || {
                "expected is_null with a value".into()
            });
        }
        self.value(&ty, exp_value, &act["value"], &format!("{path}.value"));
        if let Some(p) = exp.get("properties") {
            self.properties(p, &act["properties"], &format!("{path}.properties"));
        }
        if let Some(md) = exp.get("metadata") {
            self.metadata(md, &act["metadata"], &format!("{path}.metadata"));
        }
    }

    fn value(&mut self, ty: &str, exp: &Json, act: &Json, path: &str) {
        if exp.is_null() {
            return self.ensure(act.is_null(), path, || format!("expected null, got {act}"));
        }
        match ty {
            "Int8" | "Int16" | "Int32" | "UInt8" | "UInt16" | "UInt32" => {
                let ok = (exp.is_i64() || exp.is_u64()) && exp == act;
                self.ensure(ok, path, || format!("expected {ty} {exp}, got {act}"));
            }
            "Int64" | "UInt64" | "DateTime" => {
                let ok =
                    matches!(exp, Json::String(s) if int_text(act).as_deref() == Some(s.as_str()));
                self.ensure(ok, path, || format!("expected {ty} {exp}, got {act}"));
            }
            "Float" => {
                let ok = match (expected_float(exp), actual_float(act)) {
                    (Some(e), Some(a)) => same_f32(e as f32, a as f32),
                    _ => false,
                };
                self.ensure(ok, path, || format!("expected Float {exp}, got {act}"));
            }
            "Double" => {
                let ok = match (expected_float(exp), actual_float(act)) {
                    (Some(e), Some(a)) => same_f64(e, a),
                    _ => false,
                };
                self.ensure(ok, path, || format!("expected Double {exp}, got {act}"));
            }
            "Boolean" => {
                let ok = exp.is_boolean() && exp == act;
                self.ensure(ok, path, || format!("expected {exp}, got {act}"));
            }
            // Bytes and File are lowercase hex on both sides.
            "String" | "Text" | "UUID" | "Bytes" | "File" => {
                let ok = exp.is_string() && exp == act;
                self.ensure(ok, path, || format!("expected {ty} {exp}, got {act}"));
            }
            "DataSet" => self.dataset(exp, act, path),
            "Template" => self.template(exp, act, path),
            "PropertySet" => self.properties(exp, act, path),
            "PropertySetList" => {
                let (Some(e), Some(a)) = (exp.as_array(), act.as_array()) else {
                    return self.fail(path, format!("expected lists, got {exp} and {act}"));
                };
                if e.len() != a.len() {
                    self.fail(path, format!("expected {} sets, got {}", e.len(), a.len()));
                }
                for (i, (e, a)) in e.iter().zip(a).enumerate() {
                    self.properties(e, a, &format!("{path}[{i}]"));
                }
            }
            other => self.fail(path, format!("this test cannot compare a {other} value")),
        }
    }

    fn dataset(&mut self, exp: &Json, act: &Json, path: &str) {
        let (Some(exp), Some(act)) = (exp.as_object(), self.object(act, path)) else {
            return self.fail(path, "expected DataSet is not an object");
        };
        self.known_keys(
            exp,
            &["num_of_columns", "columns", "types", "datatypes", "rows"],
            path,
        );
        self.exact_keys(act, &["num_of_columns", "columns", "types", "rows"], path);
        self.u64_field(
            exp.get("num_of_columns"),
            &act["num_of_columns"],
            &format!("{path}.num_of_columns"),
        );
        self.plain_field(
            exp.get("columns"),
            Json::Array(vec![]),
            &act["columns"],
            &format!("{path}.columns"),
        );
        let types: Vec<String> = exp
            .get("types")
            .and_then(Json::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(Json::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let codes: Vec<Option<u32>> = types
            .iter()
            .map(|t| DataType::from_name(t).map(DataType::code))
            .collect();
        let exp_codes: Vec<Option<u32>> = exp
            .get("datatypes")
            .and_then(Json::as_array)
            .map(|c| {
                c.iter()
                    .map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()))
                    .collect()
            })
            .unwrap_or_default();
        self.ensure(codes == exp_codes, path, || {
            format!("expected types {types:?} disagree with their codes {exp_codes:?}")
        });
        self.plain_field(
            exp.get("types"),
            Json::Array(vec![]),
            &act["types"],
            &format!("{path}.types"),
        );
        let empty = Vec::new();
        let exp_rows = exp.get("rows").and_then(Json::as_array).unwrap_or(&empty);
        let Some(act_rows) = act["rows"].as_array() else {
            return self.fail(&format!("{path}.rows"), "not a list");
        };
        if exp_rows.len() != act_rows.len() {
            self.fail(
                &format!("{path}.rows"),
                format!("expected {} rows, got {}", exp_rows.len(), act_rows.len()),
            );
        }
        for (r, (er, ar)) in exp_rows.iter().zip(act_rows).enumerate() {
            let rpath = format!("{path}.rows[{r}]");
            let (Some(er), Some(ar)) = (er.as_array(), ar.as_array()) else {
                self.fail(&rpath, "row is not a list");
                continue;
            };
            if er.len() != types.len() || ar.len() != types.len() {
                self.fail(
                    &rpath,
                    format!(
                        "expected {} cells, got {} for {} columns",
                        er.len(),
                        ar.len(),
                        types.len()
                    ),
                );
            }
            for (c, ((e, a), ty)) in er.iter().zip(ar).zip(&types).enumerate() {
                self.value(ty, e, a, &format!("{rpath}[{c}]"));
            }
        }
    }

    fn template(&mut self, exp: &Json, act: &Json, path: &str) {
        let (Some(exp), Some(act)) = (exp.as_object(), self.object(act, path)) else {
            return self.fail(path, "expected Template is not an object");
        };
        let keys = [
            "version",
            "template_ref",
            "is_definition",
            "metrics",
            "parameters",
        ];
        self.known_keys(exp, &keys, path);
        self.exact_keys(act, &keys, path);
        self.plain_field(
            exp.get("version"),
            Json::Null,
            &act["version"],
            &format!("{path}.version"),
        );
        self.plain_field(
            exp.get("template_ref"),
            Json::Null,
            &act["template_ref"],
            &format!("{path}.template_ref"),
        );
        self.plain_field(
            exp.get("is_definition"),
            Json::Bool(false),
            &act["is_definition"],
            &format!("{path}.is_definition"),
        );
        self.metrics(
            exp.get("metrics"),
            &act["metrics"],
            &format!("{path}.metrics"),
        );

        let empty = Vec::new();
        let exp_params = exp
            .get("parameters")
            .and_then(Json::as_array)
            .unwrap_or(&empty);
        let Some(act_params) = act["parameters"].as_array() else {
            return self.fail(&format!("{path}.parameters"), "not a list");
        };
        if exp_params.len() != act_params.len() {
            self.fail(
                &format!("{path}.parameters"),
                format!(
                    "expected {} parameters, got {}",
                    exp_params.len(),
                    act_params.len()
                ),
            );
        }
        for (i, (e, a)) in exp_params.iter().zip(act_params).enumerate() {
            let ppath = format!("{path}.parameters[{i}]");
            let (Some(e), Some(a)) = (e.as_object(), self.object(a, &ppath)) else {
                continue;
            };
            self.known_keys(e, &["name", "type", "datatype", "value"], &ppath);
            self.exact_keys(a, &["name", "type", "value"], &ppath);
            self.plain_field(
                e.get("name"),
                Json::Null,
                &a["name"],
                &format!("{ppath}.name"),
            );
            if let Some(ty) = self.type_name(e, &a["type"], &format!("{ppath}.type")) {
                let ev = e.get("value").unwrap_or(&Json::Null);
                self.value(&ty, ev, &a["value"], &format!("{ppath}.value"));
            }
        }
    }

    /// `expected`: an ordered list of `{key, type, datatype, value[, is_null]}`; ours: an object
    /// `{key: {type, value}}` in the same order.
    fn properties(&mut self, exp: &Json, act: &Json, path: &str) {
        let Some(exp) = exp.as_array() else {
            return self.fail(path, format!("expected {exp} is not a list"));
        };
        let Some(act) = self.object(act, path) else {
            return;
        };
        if exp.len() != act.len() {
            self.fail(
                path,
                format!("expected {} properties, got {}", exp.len(), act.len()),
            );
        }
        for (i, (e, (key, a))) in exp.iter().zip(act).enumerate() {
            let Some(e) = e.as_object() else {
                self.fail(path, format!("expected property {i} is not an object"));
                continue;
            };
            self.known_keys(e, &["key", "type", "datatype", "value", "is_null"], path);
            let ekey = e.get("key").and_then(Json::as_str).unwrap_or_default();
            let ppath = format!("{path}[{ekey:?}]");
            if ekey != key {
                self.fail(
                    &ppath,
                    format!("property {i} should be {ekey:?}, got {key:?}"),
                );
                continue;
            }
            let Some(a) = self.object(a, &ppath) else {
                continue;
            };
            self.exact_keys(a, &["type", "value"], &ppath);
            let Some(ty) = self.type_name(e, &a["type"], &format!("{ppath}.type")) else {
                continue;
            };
            let ev = e.get("value").unwrap_or(&Json::Null);
            if e.get("is_null") == Some(&Json::Bool(true)) {
                self.ensure(ev.is_null(), &ppath, || {
                    "expected is_null with a value".into()
                });
            }
            self.value(&ty, ev, &a["value"], &format!("{ppath}.value"));
        }
    }

    fn metadata(&mut self, exp: &Json, act: &Json, path: &str) {
        let (Some(exp), Some(act)) = (exp.as_object(), self.object(act, path)) else {
            return self.fail(path, "expected metadata is not an object");
        };
        let all = [
            "is_multi_part",
            "content_type",
            "size",
            "seq",
            "file_name",
            "file_type",
            "md5",
            "description",
        ];
        self.known_keys(exp, &all, path);
        let present: Vec<&str> = all
            .iter()
            .copied()
            .filter(|k| exp.contains_key(*k))
            .collect();
        self.exact_keys(act, &present, path);
        for k in present {
            let fpath = format!("{path}.{k}");
            let a = act.get(k).unwrap_or(&Json::Null);
            if k == "size" || k == "seq" {
                self.u64_field(exp.get(k), a, &fpath);
            } else {
                self.plain_field(exp.get(k), Json::Null, a, &fpath);
            }
        }
    }
}

/// The decimal text of a JSON integer (None for anything else).
fn int_text(v: &Json) -> Option<String> {
    (v.is_i64() || v.is_u64()).then(|| v.to_string())
}

fn expected_float(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            "-0" => Some(-0.0),
            _ => None,
        },
        _ => None,
    }
}

/// Our format writes only NaN and the infinities as strings.
fn actual_float(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

fn same_f32(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

fn same_f64(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(Sha256::digest(bytes).as_slice())
}

/// alias → datatype, from a decoded birth.
fn birth_datatypes(name: &str) -> HashMap<u64, DataType> {
    let birth = Payload::decode(&read_bin(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    birth
        .metrics
        .iter()
        .filter_map(|m| Some((m.alias?, m.datatype?)))
        .collect()
}

/// Checks one vector; returns the mismatches, each prefixed with the vector's name.
fn check_vector(entry: &Json, checker: &mut Checker) {
    let name = entry["name"].as_str().expect("index entry has a name");
    let doc = read_json(&vectors_dir().join(format!("{name}.json")));
    let bytes = read_bin(name);

    // The bytes are the ones the vector describes.
    let digest = sha256_hex(&bytes);
    checker.ensure(entry["sha256"] == digest.as_str(), name, || {
        format!(
            "sha256 {digest} differs from index.json {}",
            entry["sha256"]
        )
    });
    checker.ensure(doc["sha256"] == digest.as_str(), name, || {
        format!("sha256 {digest} differs from {name}.json {}", doc["sha256"])
    });
    checker.ensure(entry["bytes"] == bytes.len(), name, || {
        format!("{} bytes, index.json says {}", bytes.len(), entry["bytes"])
    });
    checker.ensure(doc["name"] == name, name, || {
        format!("{name}.json names itself {}", doc["name"])
    });

    let mut payload = match Payload::decode(&bytes) {
        Ok(p) => p,
        Err(e) => return checker.fail(name, format!("does not decode: {e}")),
    };
    let expected = &doc["expected"];

    // The topic renders into its parts.
    let topic_str = entry["topic"].as_str().unwrap_or_default();
    match Topic::parse(topic_str) {
        Ok(topic) => {
            let rendered = payload_to_json(&payload, Some(&topic));
            let t = &rendered["topic"];
            let joined = [
                &t["namespace"],
                &t["group_id"],
                &t["message_type"],
                &t["edge_node_id"],
                &t["device_id"],
            ]
            .iter()
            .filter_map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join("/");
            checker.ensure(joined == topic_str, name, || {
                format!("topic {topic_str} renders as {t}")
            });
            checker.ensure(t["message_type"] == doc["message_type"], name, || {
                format!(
                    "topic message_type {} vs {}",
                    t["message_type"], doc["message_type"]
                )
            });
        }
        Err(e) => checker.fail(name, format!("topic {topic_str:?}: {e}")),
    }

    // Metrics without a datatype on the wire: the raw field renders as it is on the wire, then
    // the value is typed with the datatype the birth declares for its alias.
    let exp_metrics = expected["metrics"].as_array().cloned().unwrap_or_default();
    let untyped: Vec<usize> = exp_metrics
        .iter()
        .enumerate()
        .filter(|(_, m)| m.get("datatype_on_wire") == Some(&Json::Bool(false)))
        .map(|(i, _)| i)
        .collect();
    checker.ensure(untyped.is_empty() || name == UNTYPED_VECTOR, name, || {
        "only ddata_alias_only_no_datatype should have datatype_on_wire false".into()
    });
    if name == UNTYPED_VECTOR {
        checker.ensure(
            untyped.len() == exp_metrics.len() && !untyped.is_empty(),
            name,
            || "every metric should have datatype_on_wire false".into(),
        );
    }
    if !untyped.is_empty() {
        let births = birth_datatypes(UNTYPED_BIRTH);
        for &i in &untyped {
            let path = format!("{name}.metrics[{i}]");
            let Some(m) = payload.metrics.get_mut(i) else {
                checker.fail(&path, "missing");
                continue;
            };
            checker.ensure(m.datatype.is_none(), &path, || {
                format!("has datatype {:?} on the wire", m.datatype)
            });
            let MetricValue::Untyped(wire) = &m.value else {
                checker.fail(&path, format!("value should be untyped, is {:?}", m.value));
                continue;
            };
            // The raw rendering is the wire field (uint64 fields are strings in `wire`).
            let raw = wire_value_to_json(wire);
            let wire_doc = &doc["wire"]["metrics"][i][wire.field_name()];
            let raw_ok = match wire_doc {
                Json::String(s) => raw.is_u64() && int_text(&raw).as_deref() == Some(s.as_str()),
                Json::Number(_) if wire.field_name() == "float_value" => {
                    matches!((expected_float(wire_doc), actual_float(&raw)),
                             (Some(e), Some(a)) if same_f32(e as f32, a as f32))
                }
                other => *other == raw,
            };
            checker.ensure(raw_ok, &format!("{path}.value (raw)"), || {
                format!(
                    "raw {} renders as {raw}, wire has {wire_doc}",
                    wire.field_name()
                )
            });
            let Some(dt) = m.alias.and_then(|a| births.get(&a)).copied() else {
                checker.fail(
                    &path,
                    format!("alias {:?} is not in {UNTYPED_BIRTH}", m.alias),
                );
                continue;
            };
            match m.value.clone().resolve(dt) {
                Ok(v) => {
                    m.value = v;
                    m.datatype = Some(dt);
                }
                Err(e) => checker.fail(&path, format!("does not resolve as {dt}: {e}")),
            }
        }
    }

    let rendered = payload_to_json(&payload, None);
    checker.payload(expected, &rendered, name);
}

#[test]
fn every_vector_decodes_to_its_expected_content() {
    let index = read_json(&vectors_dir().join("index.json"));
    let entries = index["vectors"]
        .as_array()
        .expect("index.json lists vectors");
    assert_eq!(
        index["count"].as_u64(),
        Some(entries.len() as u64),
        "index.json count"
    );
    assert!(entries.len() >= 51, "only {} vectors", entries.len());

    // Every .bin in the folder is in the index, and the other way round.
    let listed: BTreeSet<String> = entries
        .iter()
        .filter_map(|e| e["name"].as_str().map(String::from))
        .collect();
    let on_disk: BTreeSet<String> = fs::read_dir(vectors_dir())
        .expect("vectors folder")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".bin")
                .map(String::from)
        })
        .collect();
    assert_eq!(listed, on_disk, "index.json vs the .bin files");

    let mut checker = Checker::default();
    for entry in entries {
        check_vector(entry, &mut checker);
    }
    assert!(
        checker.errors.is_empty(),
        "{} mismatch(es):\n{}",
        checker.errors.len(),
        checker.errors.join("\n")
    );
}

/// A change that makes a rendered payload wrong.
type Mutation = fn(&mut Json);

/// The checker itself must catch wrong content; otherwise a green run means nothing.
#[test]
fn the_comparison_is_strict() {
    let doc = read_json(&vectors_dir().join("dataset_mixed.json"));
    let payload = Payload::decode(&read_bin("dataset_mixed")).expect("decodes");
    let good = payload_to_json(&payload, None);
    let mut checker = Checker::default();
    checker.payload(&doc["expected"], &good, "dataset_mixed");
    assert!(checker.errors.is_empty(), "{:?}", checker.errors);

    let cases: Vec<(&str, Mutation)> = vec![
        ("wrong Int64 cell", |j| {
            j["metrics"][0]["value"]["rows"][0][2] = 251.into();
        }),
        ("wrong type name", |j| {
            j["metrics"][0]["datatype"] = "Template".into();
        }),
        ("NaN as number", |j| {
            j["metrics"][0]["value"]["rows"][3][5] = 0.into();
        }),
        ("missing metric", |j| {
            j["metrics"].as_array_mut().expect("list").clear();
        }),
        ("wrong seq", |j| j["seq"] = 122.into()),
        ("extra field", |j| j["metrics"][0]["extra"] = 1.into()),
        ("seq as string", |j| j["seq"] = "121".into()),
        ("wrong column name", |j| {
            j["metrics"][0]["value"]["columns"][0] = "lot".into();
        }),
    ];
    for (what, mutate) in cases {
        let mut bad = good.clone();
        mutate(&mut bad);
        let mut checker = Checker::default();
        checker.payload(&doc["expected"], &bad, "dataset_mixed");
        assert!(!checker.errors.is_empty(), "{what} was not detected");
        assert!(
            checker
                .errors
                .iter()
                .all(|e| e.starts_with("dataset_mixed")),
            "{:?}",
            checker.errors
        );
    }

    // A float that differs in its last f32 bit, and −0 against +0.
    let mut c = Checker::default();
    c.value(
        "Float",
        &Json::from(0.1_f64),
        &Json::from(0.10000001_f64),
        "f",
    );
    c.value("Float", &Json::from("-0"), &Json::from(0.0), "z");
    c.value(
        "Double",
        &Json::from(0.3),
        &Json::from(0.30000000000000004),
        "d",
    );
    assert_eq!(c.errors.len(), 3, "{:?}", c.errors);
    let mut c = Checker::default();
    c.value(
        "Float",
        &Json::from(0.10000000149011612),
        &Json::from(0.1),
        "f",
    );
    c.value("Float", &Json::from("-0"), &Json::from(-0.0), "z");
    c.value("Double", &Json::from("NaN"), &Json::from("NaN"), "n");
    assert!(c.errors.is_empty(), "{:?}", c.errors);
}

/// The vectors also live in the team's shared folder (`../shared` beside the repository root);
/// where that folder exists, the copy in testdata/ must be byte-identical to it.
#[test]
fn testdata_copy_matches_the_shared_vectors() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/sparkplug-vectors");
    if !shared.is_dir() {
        println!(
            "note: {} does not exist; skipping the comparison with the shared vectors",
            shared.display()
        );
        return;
    }
    let names = |dir: &Path| -> BTreeSet<String> {
        fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .collect()
    };
    let shared_files = names(&shared);
    let local_files = names(&vectors_dir());
    assert!(!shared_files.is_empty(), "{} is empty", shared.display());
    let mut problems = Vec::new();
    for f in &shared_files {
        let theirs = fs::read(shared.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        match fs::read(vectors_dir().join(f)) {
            Ok(ours) if ours == theirs => {}
            Ok(_) => problems.push(format!("{f} differs from the shared copy")),
            Err(e) => problems.push(format!(
                "{f} is in the shared folder but not in testdata: {e}"
            )),
        }
    }
    for f in local_files.difference(&shared_files) {
        problems.push(format!("{f} is in testdata but not in the shared folder"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
