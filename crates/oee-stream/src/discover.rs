//! What `oee-stream discover` learns from births, and the configuration it writes. Pure: the
//! command feeds it messages and prints what it returns.
//!
//! [`Inventory::observe`] reads NBIRTH/DBIRTH payloads (names, datatypes, the `engUnit` and
//! `Quality` properties; template instances flattened to `instance/member` as the host does)
//! and notes nodes and devices that send without a birth seen. [`Inventory::listing`] is the
//! printed report, [`Inventory::config_yaml`] the configuration:
//!
//! - a metric name that appears on two or more devices of a group becomes one pattern rule
//!   `group/{line}/{machine}/name` (edge node = line, device = machine); a node metric that
//!   appears on two or more edge nodes becomes `group/{machine}//name`; everything else an
//!   exact rule;
//! - the signal type is guessed from the name and the datatype ([`guess`]); at most one rule
//!   feeds each counter/state/fault-code signal of a machine (a second candidate stays analog,
//!   so the file is always valid);
//! - session plumbing (`bdSeq`, `Node Control/*`, `Device Control/*`) and values the pipeline
//!   does not store (DataSet, Template definitions, Bytes, File, property sets) get no rule;
//! - every rule carries a `# review:` comment saying what the guess was based on.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use oee_core::normalize::units::Unit;
use sparkplug::{DataType, MessageType, Metric, MetricValue, Payload, Topic, Value};

/// What was learnt about one metric (from births).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricSeen {
    pub datatype: Option<DataType>,
    /// The `engUnit` property.
    pub unit: Option<String>,
    /// The `Quality` property (absent = GOOD, 192).
    pub quality: Option<i64>,
}

/// One edge node: its own metrics and its devices'.
#[derive(Clone, Debug, Default)]
pub struct NodeSeen {
    pub births: u64,
    pub metrics: BTreeMap<String, MetricSeen>,
    pub devices: BTreeMap<String, BTreeMap<String, MetricSeen>>,
    /// Devices that sent DDATA/DDEATH without a DBIRTH seen.
    pub devices_without_birth: BTreeSet<String>,
    /// The node sent something other than NBIRTH before any NBIRTH was seen.
    pub data_without_birth: bool,
}

/// Everything heard so far, by (group, edge node).
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    pub nodes: BTreeMap<(String, String), NodeSeen>,
    pub messages: u64,
    /// Payloads of births that did not decode.
    pub bad_births: u64,
}

/// What [`Inventory::observe`] found worth telling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    Nothing,
    /// A birth: `device` is `None` for an NBIRTH.
    Birth {
        group: String,
        edge_node: String,
        device: Option<String>,
        metrics: usize,
    },
    /// The first message of an edge node whose NBIRTH was not seen (a rebirth would tell).
    Unborn {
        group: String,
        edge_node: String,
    },
}

/// Metrics that belong to the Sparkplug session, not to the machine.
fn is_plumbing(name: &str) -> bool {
    name == "bdSeq" || name.starts_with("Node Control/") || name.starts_with("Device Control/")
}

impl Inventory {
    /// Takes one MQTT message into account.
    pub fn observe(&mut self, topic: &str, payload: &[u8]) -> Observed {
        self.messages += 1;
        let Ok(Topic::Message {
            group,
            message_type,
            edge_node,
            device,
        }) = Topic::parse(topic)
        else {
            return Observed::Nothing;
        };
        if matches!(message_type, MessageType::NCmd | MessageType::DCmd) {
            return Observed::Nothing;
        }
        let node = self
            .nodes
            .entry((group.to_string(), edge_node.to_string()))
            .or_default();
        let birth = matches!(message_type, MessageType::NBirth | MessageType::DBirth);
        if !birth {
            if let Some(d) = device
                && !node.devices.contains_key(d)
            {
                node.devices_without_birth.insert(d.to_string());
            }
            // A dead node cannot answer a rebirth request; anything else says it is alive.
            if node.births == 0 && message_type != MessageType::NDeath && !node.data_without_birth {
                node.data_without_birth = true;
                return Observed::Unborn {
                    group: group.to_string(),
                    edge_node: edge_node.to_string(),
                };
            }
            return Observed::Nothing;
        }
        let Ok(p) = Payload::decode(payload) else {
            self.bad_births += 1;
            return Observed::Nothing;
        };
        let mut seen = BTreeMap::new();
        for m in &p.metrics {
            flatten(m, "", &mut seen);
        }
        let metrics = seen.len();
        match device {
            None => {
                node.births += 1;
                node.metrics.extend(seen);
            }
            Some(d) => {
                node.devices_without_birth.remove(d);
                node.devices.entry(d.to_string()).or_default().extend(seen);
            }
        }
        Observed::Birth {
            group: group.to_string(),
            edge_node: edge_node.to_string(),
            device: device.map(str::to_string),
            metrics,
        }
    }

    /// Counts for the summary: (edge nodes, devices, metrics).
    pub fn counts(&self) -> (usize, usize, usize) {
        let devices = self.nodes.values().map(|n| n.devices.len()).sum();
        let metrics = self
            .nodes
            .values()
            .map(|n| n.metrics.len() + n.devices.values().map(BTreeMap::len).sum::<usize>())
            .sum();
        (self.nodes.len(), devices, metrics)
    }

    /// The printed report: every node, device and metric with datatype, unit and quality, and
    /// the signal type the configuration gives it.
    pub fn listing(&self) -> String {
        let rules = self.rules();
        let mut out = String::new();
        for ((group, edge), node) in &self.nodes {
            let births = if node.births > 0 {
                format!("{} NBIRTH", node.births)
            } else {
                "no NBIRTH seen: start discover before the node, or use --rebirth".to_string()
            };
            let _ = writeln!(out, "edge node {group}/{edge}  ({births})");
            let mut section =
                |title: String, device: Option<&str>, ms: &BTreeMap<String, MetricSeen>| {
                    let _ = writeln!(out, "  {title}");
                    if ms.is_empty() {
                        let _ = writeln!(out, "    (none)");
                    }
                    for (name, m) in ms {
                        let mapped = rules
                            .iter()
                            .find(|r| r.covers(group, edge, device, name))
                            .map_or_else(|| "-".to_string(), |r| r.signal_type.clone());
                        let _ = writeln!(
                            out,
                            "    {name:<36} {:<10} unit {:<10} quality {:<4} → {mapped}",
                            m.datatype.map_or("?", DataType::name),
                            m.unit.as_deref().unwrap_or("-"),
                            m.quality.map_or_else(|| "-".to_string(), |q| q.to_string()),
                        );
                    }
                };
            section("node metrics".to_string(), None, &node.metrics);
            for (d, ms) in &node.devices {
                section(format!("device {d}"), Some(d), ms);
            }
            for d in &node.devices_without_birth {
                let _ = writeln!(out, "  device {d}: data without a DBIRTH seen");
            }
        }
        let (n, d, m) = self.counts();
        let _ = writeln!(
            out,
            "{n} edge nodes, {d} devices, {m} metrics in births; {} tag mapping rules",
            rules.len()
        );
        out
    }

    /// The configuration file: `mqtt.url` and `processing.tag_mappings` (see the module docs).
    /// `header` lines become the opening comment.
    pub fn config_yaml(&self, broker_url: &str, header: &[String]) -> String {
        let rules = self.rules();
        let mut y = String::new();
        for h in header {
            let _ = writeln!(y, "# {h}");
        }
        y.push_str(
            "#\n# A starting point: every rule below is a guess from the metric's name and \
             datatype, marked\n# `# review:`. Edge nodes are taken as lines and devices as \
             machines (pattern rules capture\n# them as {line} and {machine}); rename ids, \
             fix signal types, add ideal_cycle_times and\n# state_codes, then check the file \
             with `oee-stream check-config FILE` (docs/configuration.md).\n\n",
        );
        let _ = writeln!(y, "mqtt:\n  url: {}\n", q(broker_url));
        y.push_str("processing:\n");
        y.push_str("  # Metrics no rule maps are kept as raw telemetry (`drop` discards them).\n");
        y.push_str("  unmapped:\n    policy: telemetry\n");
        if rules.iter().any(|r| r.signal_type == "state.code") {
            y.push_str(
                "  # review: state.code values need categories, e.g.\n  #   - {code: 1, category: running}\n",
            );
            y.push_str("  state_codes:\n    default_category: unknown\n    rules: []\n");
        }
        let machines: BTreeSet<String> = self.machines();
        if !machines.is_empty() {
            y.push_str("  # review: ideal cycle time in seconds per part, for performance, e.g.\n");
            for m in machines.iter().take(10) {
                let _ = writeln!(y, "  #   {}: 2.0", q(m));
            }
        }
        if rules.is_empty() {
            y.push_str("  tag_mappings: []\n");
            return y;
        }
        y.push_str("  tag_mappings:\n");
        for r in &rules {
            let _ = writeln!(y, "    # {}", r.seen);
            let _ = writeln!(y, "    # review: {}", r.why);
            let _ = writeln!(y, "    - source_tag: {}", q(&r.source_tag));
            let _ = writeln!(y, "      signal_type: {}", q(&r.signal_type));
            let _ = writeln!(y, "      site_id: {}", q(&r.site_id));
            if let Some(l) = &r.line_id {
                let _ = writeln!(y, "      line_id: {}", q(l));
            }
            let _ = writeln!(y, "      machine_id: {}", q(&r.machine_id));
            if let Some(u) = &r.source_unit {
                let _ = writeln!(y, "      source_unit: {}", q(u));
            }
            if let Some(c) = r.fault_code {
                let _ = writeln!(y, "      fault_code: {c}");
            }
        }
        y
    }

    /// The machine ids the rules produce (for the ideal cycle time example).
    fn machines(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for ((_, edge), node) in &self.nodes {
            for d in node.devices.keys() {
                out.insert(format!("{edge}-{d}"));
            }
        }
        out
    }

    /// The rules, in file order: patterns, then exact rules, each sorted by source tag.
    pub fn rules(&self) -> Vec<Rule> {
        let mut seen: Seen = BTreeMap::new();
        for ((group, edge), node) in &self.nodes {
            for (name, m) in &node.metrics {
                seen.entry((group, name, true))
                    .or_default()
                    .push((edge, None, m));
            }
            for (d, ms) in &node.devices {
                for (name, m) in ms {
                    seen.entry((group, name, false))
                        .or_default()
                        .push((edge, Some(d), m));
                }
            }
        }
        let mut patterns = Vec::new();
        let mut exact = Vec::new();
        for ((group, name, node_level), on) in &seen {
            if is_plumbing(name) || !expressible(group) || !expressible(name) {
                continue;
            }
            let datatype = common_datatype(on.iter().map(|o| o.2));
            let Some(kind) = guess(name, datatype) else {
                continue;
            };
            let dt = datatype.map_or("?", DataType::name);
            let unit = on.iter().find_map(|o| o.2.unit.clone());
            let applies_to = on
                .iter()
                .map(|(e, d, _)| machine_key(group, e, *d))
                .collect();
            let place = |e: &str, d: Option<&str>| match d {
                Some(d) => format!("{e}/{d}"),
                None => e.to_string(),
            };
            let rule = if on.len() >= 2 {
                let list: Vec<String> = on.iter().map(|(e, d, _)| place(e, *d)).collect();
                let what = if *node_level { "edge nodes" } else { "devices" };
                Rule {
                    source_tag: if *node_level {
                        format!("{group}/{{machine}}//{name}")
                    } else {
                        format!("{group}/{{line}}/{{machine}}/{name}")
                    },
                    site_id: group.to_string(),
                    line_id: (!node_level).then(|| "{line}".to_string()),
                    machine_id: if *node_level {
                        "{machine}"
                    } else {
                        "{line}-{machine}"
                    }
                    .to_string(),
                    seen: format!(
                        "{name} on {} {what}: {} ({dt})",
                        on.len(),
                        abbreviate(&list)
                    ),
                    covers: Covers::Pattern {
                        group: group.to_string(),
                        metric: name.to_string(),
                        node_level: *node_level,
                    },
                    ..Rule::default()
                }
            } else {
                let (edge, device, _) = on[0];
                if !expressible(edge) || !device.is_none_or(expressible) {
                    continue;
                }
                Rule {
                    source_tag: format!("{group}/{edge}/{}/{name}", device.unwrap_or("")),
                    site_id: group.to_string(),
                    line_id: device.map(|_| edge.to_string()),
                    machine_id: place(edge, device).replace('/', "-"),
                    seen: format!("{name} on {} ({dt})", place(edge, device)),
                    covers: Covers::Exact {
                        group: group.to_string(),
                        edge_node: edge.to_string(),
                        device: device.map(str::to_string),
                        metric: name.to_string(),
                    },
                    ..Rule::default()
                }
            };
            let c = Candidate {
                kind,
                unit,
                applies_to,
                rule,
            };
            if on.len() >= 2 {
                patterns.push(c);
            } else {
                exact.push(c);
            }
        }
        // One feeder per counter/state/fault-code signal and machine; patterns claim first.
        let mut claimed: BTreeSet<(String, &'static str)> = BTreeSet::new();
        let mut next_fault_code = 9001;
        let mut rules = Vec::new();
        for c in patterns.into_iter().chain(exact) {
            rules.push(c.finish(&mut claimed, &mut next_fault_code));
        }
        rules
    }
}

/// (group, metric name, node metric?) → where it was seen: (edge node, device, what).
type Seen<'a> = BTreeMap<(&'a str, &'a str, bool), Vec<(&'a str, Option<&'a str>, &'a MetricSeen)>>;

/// A rule of the written configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rule {
    pub source_tag: String,
    pub signal_type: String,
    pub site_id: String,
    pub line_id: Option<String>,
    pub machine_id: String,
    pub source_unit: Option<String>,
    pub fault_code: Option<i64>,
    /// Where the metric was seen (a comment).
    pub seen: String,
    /// What the guess is based on (a comment).
    pub why: String,
    covers: Covers,
}

#[derive(Clone, Debug, Default, PartialEq)]
enum Covers {
    #[default]
    Nothing,
    Pattern {
        group: String,
        metric: String,
        node_level: bool,
    },
    Exact {
        group: String,
        edge_node: String,
        device: Option<String>,
        metric: String,
    },
}

impl Rule {
    /// Whether the rule maps this metric.
    pub fn covers(&self, group: &str, edge_node: &str, device: Option<&str>, metric: &str) -> bool {
        match &self.covers {
            Covers::Nothing => false,
            Covers::Pattern {
                group: g,
                metric: m,
                node_level,
            } => g == group && device.is_none() == *node_level && m == metric,
            Covers::Exact {
                group: g,
                edge_node: e,
                device: d,
                metric: m,
            } => g == group && e == edge_node && d.as_deref() == device && m == metric,
        }
    }
}

struct Candidate {
    kind: Guess,
    unit: Option<String>,
    applies_to: Vec<String>,
    rule: Rule,
}

impl Candidate {
    fn finish(
        self,
        claimed: &mut BTreeSet<(String, &'static str)>,
        next_fault_code: &mut i64,
    ) -> Rule {
        let Candidate {
            kind,
            unit,
            applies_to,
            mut rule,
        } = self;
        let (mut signal_type, mut why) = (kind.signal_type, kind.why);
        if let Some(one) = kind.one_per_machine {
            if applies_to
                .iter()
                .any(|m| claimed.contains(&(m.clone(), one)))
            {
                why = format!(
                    "the name suggests {one}, but another rule already feeds {one} of the same \
                     machine; kept as analog `{}`",
                    kind.analog
                );
                signal_type = kind.analog.clone();
            } else {
                for m in applies_to {
                    claimed.insert((m, one));
                }
            }
        }
        if signal_type == "fault.active" {
            rule.fault_code = Some(*next_fault_code);
            why.push_str(&format!(
                "; fault_code {} is a placeholder: use the code this flag stands for",
                *next_fault_code
            ));
            *next_fault_code += 1;
        }
        let analog = !signal_type.contains('.') || signal_type == kind.analog;
        if analog && let Some(u) = unit {
            match Unit::parse(&u) {
                Some(_) => rule.source_unit = Some(u),
                None => why.push_str(&format!("; engUnit `{u}` is not a unit oee-stream knows")),
            }
        }
        rule.signal_type = signal_type;
        rule.why = why;
        rule
    }
}

/// The guess for one metric name and datatype.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guess {
    pub signal_type: String,
    pub why: String,
    /// The counter/state/fault signal that at most one rule per machine may feed.
    one_per_machine: Option<&'static str>,
    /// The analog name to fall back to.
    analog: String,
}

/// Guesses the signal type of a metric from its name and datatype; `None` for values the
/// pipeline does not store (DataSet, Template, Bytes, File, property sets) or an unknown
/// datatype.
pub fn guess(name: &str, datatype: Option<DataType>) -> Option<Guess> {
    use DataType as T;
    let datatype = datatype?;
    let words = words(name);
    let has = |w: &[&str]| words.iter().any(|x| w.contains(&x.as_str()));
    let analog = analog_name(name);
    let integer = matches!(
        datatype,
        T::Int8 | T::Int16 | T::Int32 | T::Int64 | T::UInt8 | T::UInt16 | T::UInt32 | T::UInt64
    );
    let stored = !matches!(
        datatype,
        T::Unknown
            | T::DataSet
            | T::Template
            | T::Bytes
            | T::File
            | T::PropertySet
            | T::PropertySetList
    );
    if !stored {
        return None;
    }
    let dt = datatype.name();
    let oee = |t: &'static str, why: String| Guess {
        signal_type: t.to_string(),
        why,
        one_per_machine: Some(t),
        analog: analog.clone(),
    };
    let fault_words = [
        "fault", "faults", "alarm", "alarms", "error", "errors", "jam", "estop",
    ];
    let g = if integer {
        if has(&fault_words) && !has(&["count", "counter", "total"]) {
            oee(
                "fault.code",
                format!("{dt} named like a fault or alarm code"),
            )
        } else if has(&["state", "status", "mode"]) {
            oee(
                "state.code",
                format!("{dt} named like a machine state code"),
            )
        } else if has(&[
            "reject", "rejects", "rejected", "scrap", "bad", "ng", "defect", "defects",
        ]) {
            oee("counter.reject", format!("{dt} named like a reject count"))
        } else if has(&["good", "ok"]) {
            oee("counter.good", format!("{dt} named like a good-part count"))
        } else if has(&[
            "total",
            "count",
            "counter",
            "produced",
            "production",
            "parts",
            "pieces",
            "pcs",
            "prodcount",
        ]) {
            oee("counter.total", format!("{dt} named like a part count"))
        } else {
            Guess {
                signal_type: analog.clone(),
                why: format!("{dt} with no counter, state or fault word in its name: analog"),
                one_per_machine: None,
                analog: analog.clone(),
            }
        }
    } else if datatype == T::Boolean {
        if has(&fault_words) || has(&["emergency", "failure", "failed"]) {
            Guess {
                signal_type: "fault.active".to_string(),
                why: "Boolean named like a fault or alarm".to_string(),
                one_per_machine: None,
                analog: analog.clone(),
            }
        } else if has(&[
            "running",
            "run",
            "producing",
            "inproduction",
            "isrunning",
            "started",
        ]) {
            oee(
                "state.running",
                "Boolean named like a running flag".to_string(),
            )
        } else {
            Guess {
                signal_type: analog.clone(),
                why: "Boolean with no running or fault word in its name: analog".to_string(),
                one_per_machine: None,
                analog: analog.clone(),
            }
        }
    } else {
        Guess {
            signal_type: analog.clone(),
            why: format!("{dt}: analog, named after the metric"),
            one_per_machine: None,
            analog: analog.clone(),
        }
    };
    Some(g)
}

/// Lower-case words of a name, split at non-alphanumerics and at lower→upper case changes
/// (`Counters/Total` → counters, total; `ProdCount` → prod, count).
fn split_words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in name.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut cur = String::new();
        let mut prev_lower = false;
        for c in part.chars() {
            if c.is_ascii_uppercase() && prev_lower {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            cur.push(c.to_ascii_lowercase());
        }
        if !cur.is_empty() {
            out.push(cur);
        }
    }
    out
}

/// The words a name is matched on: [`split_words`] and each part whole (`prodcount`).
fn words(name: &str) -> Vec<String> {
    let mut out = split_words(name);
    for part in name.split(|c: char| !c.is_ascii_alphanumeric()) {
        let whole = part.to_ascii_lowercase();
        if !whole.is_empty() && !out.contains(&whole) {
            out.push(whole);
        }
    }
    out
}

/// The analog signal type for a name: `temperature`, `pressure`, `speed` for the usual words,
/// else the words joined with `_` (a valid signal type: lower case, starting with a letter).
fn analog_name(name: &str) -> String {
    let split = split_words(name);
    let has = |w: &[&str]| split.iter().any(|x| w.contains(&x.as_str()));
    if has(&["temperature", "temp"]) {
        return "temperature".into();
    }
    if has(&["pressure"]) {
        return "pressure".into();
    }
    if has(&["speed", "rpm"]) {
        return "speed".into();
    }
    let s = split.join("_");
    if s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s
    } else {
        format!("value_{s}")
    }
}

/// The datatype most devices report (the first of equals); `None` if none is known.
fn common_datatype<'a>(ms: impl Iterator<Item = &'a MetricSeen>) -> Option<DataType> {
    let mut n: BTreeMap<DataType, usize> = BTreeMap::new();
    for d in ms.filter_map(|m| m.datatype) {
        *n.entry(d).or_default() += 1;
    }
    // The most common; the lowest code among equals (max_by_key keeps the last maximum).
    n.into_iter().rev().max_by_key(|(_, c)| *c).map(|(d, _)| d)
}

/// A name can be written in a source tag when it has no wildcard characters.
fn expressible(s: &str) -> bool {
    !s.contains(['*', '{', '}'])
}

fn machine_key(group: &str, edge: &str, device: Option<&str>) -> String {
    format!("{group}/{edge}/{}", device.unwrap_or(""))
}

fn abbreviate(list: &[String]) -> String {
    if list.len() <= 6 {
        list.join(", ")
    } else {
        format!("{}, … ({} more)", list[..5].join(", "), list.len() - 5)
    }
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn q(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// Collects the metrics of a birth, template instances flattened into `instance/member`.
fn flatten(m: &Metric, prefix: &str, out: &mut BTreeMap<String, MetricSeen>) {
    let Some(name) = m.name.as_deref() else {
        return;
    };
    let full = if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    };
    if let MetricValue::Value(Value::Template(t)) = &m.value {
        if t.is_definition {
            return;
        }
        for member in &t.metrics {
            flatten(member, &full, out);
        }
        return;
    }
    let prop = |key: &str| {
        m.properties
            .as_ref()
            .and_then(|p| p.get(key))
            .and_then(|v| v.value.as_value())
    };
    let unit = prop("engUnit").and_then(|v| match v {
        Value::String(s) | Value::Text(s) => Some(s.clone()),
        _ => None,
    });
    let quality = prop("Quality").and_then(|v| match v {
        Value::Int8(i) => Some(i64::from(*i)),
        Value::Int16(i) => Some(i64::from(*i)),
        Value::Int32(i) => Some(i64::from(*i)),
        Value::Int64(i) => Some(*i),
        Value::UInt8(u) => Some(i64::from(*u)),
        Value::UInt16(u) => Some(i64::from(*u)),
        Value::UInt32(u) => Some(i64::from(*u)),
        Value::UInt64(u) => i64::try_from(*u).ok(),
        _ => None,
    });
    out.insert(
        full,
        MetricSeen {
            datatype: m.datatype,
            unit,
            quality,
        },
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use sparkplug::PropertySet;

    use super::*;
    use crate::demo::simulator::{Output, SimConfig, Simulator};
    use crate::settings::load_settings;

    fn metric(name: &str, datatype: DataType, value: Value) -> Metric {
        Metric {
            name: Some(name.into()),
            datatype: Some(datatype),
            value: MetricValue::Value(value),
            ..Metric::default()
        }
    }

    fn birth(metrics: Vec<Metric>) -> Vec<u8> {
        Payload {
            timestamp: Some(1),
            metrics,
            seq: Some(0),
            uuid: None,
            body: None,
        }
        .encode()
        .unwrap()
    }

    fn simulated_plant() -> Inventory {
        let mut inv = Inventory::default();
        for o in Simulator::new(SimConfig::default()).start() {
            if let Output::Publish { topic, payload, .. } = o {
                inv.observe(&topic, &payload);
            }
        }
        inv
    }

    #[test]
    fn names_and_datatypes_give_signal_types() {
        let t = |name: &str, dt: DataType| guess(name, Some(dt)).map(|g| g.signal_type);
        assert_eq!(
            t("Counters/Total", DataType::UInt16).as_deref(),
            Some("counter.total")
        );
        assert_eq!(
            t("ProdCount", DataType::UInt32).as_deref(),
            Some("counter.total")
        );
        assert_eq!(
            t("GoodParts", DataType::Int64).as_deref(),
            Some("counter.good")
        );
        assert_eq!(
            t("Scrap", DataType::UInt32).as_deref(),
            Some("counter.reject")
        );
        assert_eq!(
            t("State/Running", DataType::Boolean).as_deref(),
            Some("state.running")
        );
        assert_eq!(
            t("MachineState", DataType::Int32).as_deref(),
            Some("state.code")
        );
        assert_eq!(
            t("Fault/Code", DataType::Int32).as_deref(),
            Some("fault.code")
        );
        assert_eq!(
            t("AlarmActive", DataType::Boolean).as_deref(),
            Some("fault.active")
        );
        assert_eq!(
            t("Oven Temp", DataType::Float).as_deref(),
            Some("temperature")
        );
        assert_eq!(
            t("Spindle/LoadPct", DataType::Double).as_deref(),
            Some("spindle_load_pct")
        );
        assert_eq!(
            t("2ndAxis", DataType::Double).as_deref(),
            Some("value_2nd_axis")
        );
        assert_eq!(t("Recipe", DataType::DataSet), None);
        assert_eq!(guess("X", None), None);
    }

    #[test]
    fn repeated_device_metrics_become_patterns_and_the_file_loads() {
        let inv = simulated_plant();
        assert_eq!(inv.counts(), (2, 6, 52));
        let rules = inv.rules();
        // Eight machine metrics, each on six devices: eight patterns, no exact rules.
        assert_eq!(rules.len(), 8, "{rules:#?}");
        let total = rules
            .iter()
            .find(|r| r.source_tag == "DemoPlant/{line}/{machine}/Counters/Total")
            .unwrap();
        assert_eq!(total.signal_type, "counter.total");
        assert_eq!(total.machine_id, "{line}-{machine}");
        let temp = rules
            .iter()
            .find(|r| r.source_tag.ends_with("/Process/Temperature"))
            .unwrap();
        assert_eq!(temp.signal_type, "temperature");
        assert_eq!(temp.source_unit.as_deref(), Some("°F"));
        let yaml = inv.config_yaml("mqtt://broker:1883", &["test".into()]);
        let s = load_settings(&yaml, "discovered.yml", &BTreeMap::new())
            .unwrap_or_else(|e| panic!("{e:?}\n{yaml}"));
        assert_eq!(s.domain.rules.len(), 8);
        assert_eq!(s.file.mqtt.url, "mqtt://broker:1883");
        assert!(inv.listing().contains("Counters/Total"));
    }

    #[test]
    fn one_metric_device_rules_are_exact_and_each_machine_signal_has_one_feeder() {
        let mut inv = Inventory::default();
        let unit = PropertySet(vec![(
            "engUnit".into(),
            sparkplug::PropertyValue {
                datatype: Some(DataType::String),
                value: MetricValue::Value(Value::String("furlong".into())),
            },
        )]);
        let speed = Metric {
            properties: Some(unit),
            ..metric("Belt Speed", DataType::Double, Value::Double(1.0))
        };
        inv.observe(
            "spBv1.0/P/DBIRTH/N1/Press",
            &birth(vec![
                metric("PartCount", DataType::UInt32, Value::UInt32(1)),
                metric("TotalCount", DataType::UInt32, Value::UInt32(1)),
                metric("Jam", DataType::Boolean, Value::Boolean(false)),
                metric("Door*Open", DataType::Boolean, Value::Boolean(false)),
                speed,
            ]),
        );
        let rules = inv.rules();
        let tags: Vec<(&str, &str)> = rules
            .iter()
            .map(|r| (r.source_tag.as_str(), r.signal_type.as_str()))
            .collect();
        assert_eq!(
            tags,
            [
                ("P/N1/Press/Belt Speed", "speed"),
                ("P/N1/Press/Jam", "fault.active"),
                ("P/N1/Press/PartCount", "counter.total"),
                // A second part counter of the same machine stays analog.
                ("P/N1/Press/TotalCount", "total_count"),
            ]
        );
        assert_eq!(rules[1].fault_code, Some(9001));
        assert_eq!(rules[0].source_unit, None, "an unknown unit is not written");
        assert!(rules[0].why.contains("furlong"));
        assert_eq!(rules[2].machine_id, "N1-Press");
        let yaml = inv.config_yaml("mqtt://b", &[]);
        let s = load_settings(&yaml, "d.yml", &BTreeMap::new())
            .unwrap_or_else(|e| panic!("{e:?}\n{yaml}"));
        assert_eq!(s.domain.rules.len(), 4);
    }

    #[test]
    fn data_before_a_birth_is_reported_once() {
        let mut inv = Inventory::default();
        let data = birth(vec![]);
        assert_eq!(
            inv.observe("spBv1.0/G/DDATA/E/D", &data),
            Observed::Unborn {
                group: "G".into(),
                edge_node: "E".into()
            }
        );
        assert_eq!(inv.observe("spBv1.0/G/NDATA/E", &data), Observed::Nothing);
        assert_eq!(inv.observe("spBv1.0/G/NCMD/E", &data), Observed::Nothing);
        assert_eq!(inv.observe("spBv1.0/G/NDEATH/F", &data), Observed::Nothing);
        assert!(inv.listing().contains("data without a DBIRTH seen"));
    }
}
