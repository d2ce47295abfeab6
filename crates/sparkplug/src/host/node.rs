//! One edge node's session: its birth tables (node and devices), template definitions, seq
//! state and reorder buffer, and how each message type changes them.

use std::sync::Arc;

use foldhash::{HashMap, HashSet};

use crate::datatype::DataType;
use crate::payload::{Metric, MetricValue, Payload, Template};
use crate::topic::MessageType;
use crate::value::{Value, ValueError, WireValue};

use super::config::HostConfig;
use super::counters::HostCounters;
use super::rebirth::NodeRebirth;
use super::sample::{
    HostEvent, MetricSample, OfflineReason, Quality, RebirthReason, RejectReason, SampleFlags,
};
use super::seq::{self, Behind, ReorderBuffer, SeqCheck, SeqWindow};

/// Template definitions of a node, by definition name.
pub(crate) type Templates = HashMap<String, Template>;

/// What the host remembers about one metric of a birth (a template instance's members are
/// entries of their own, named `<instance>/<member>`).
#[derive(Clone, Debug)]
pub(crate) struct MetricDef {
    pub(crate) name: Arc<str>,
    pub(crate) alias: Option<u64>,
    pub(crate) datatype: DataType,
    /// Live state: updated by current (not historical, not late) samples only.
    pub(crate) last_timestamp: Option<u64>,
    pub(crate) quality: Quality,
}

/// The metrics of one birth, in birth order, by name and by alias.
#[derive(Clone, Debug, Default)]
pub(crate) struct MetricTable {
    pub(crate) defs: Vec<MetricDef>,
    pub(crate) by_name: HashMap<Arc<str>, usize>,
    pub(crate) by_alias: HashMap<u64, usize>,
}

impl MetricTable {
    pub(crate) fn len(&self) -> usize {
        self.defs.len()
    }

    /// Adds a metric; a second metric with the same name in one birth updates the first.
    fn add(&mut self, name: Arc<str>, alias: Option<u64>, datatype: DataType, live: Live) {
        let def = MetricDef {
            name: name.clone(),
            alias,
            datatype,
            last_timestamp: live.timestamp,
            quality: live.quality,
        };
        let i = match self.by_name.get(&name) {
            Some(&i) => {
                if let Some(slot) = self.defs.get_mut(i) {
                    *slot = def;
                }
                i
            }
            None => {
                self.defs.push(def);
                let i = self.defs.len() - 1;
                self.by_name.insert(name, i);
                i
            }
        };
        if let Some(a) = alias {
            self.by_alias.insert(a, i);
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&MetricDef> {
        self.by_name.get(name).and_then(|&i| self.defs.get(i))
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Live {
    timestamp: Option<u64>,
    quality: Quality,
}

/// A device of an edge node.
#[derive(Debug)]
pub(crate) struct Device {
    pub(crate) online: bool,
    pub(crate) metrics: MetricTable,
}

/// A message that takes part in seq ordering (DBIRTH, NDATA, DDATA, DDEATH), decoded.
#[derive(Debug)]
pub(crate) struct Msg {
    pub(crate) kind: MessageType,
    pub(crate) device: Option<Arc<str>>,
    pub(crate) topic: String,
    pub(crate) payload: Payload,
    pub(crate) seq: u8,
    pub(crate) received_at: u64,
}

/// Everything a message handler needs besides the node: configuration, counters, the output,
/// the time, and the rebirth wish it raises (the host acts on it after the handler returns).
pub(crate) struct Cx<'a> {
    pub(crate) cfg: &'a HostConfig,
    pub(crate) counters: &'a mut HostCounters,
    pub(crate) out: &'a mut Vec<HostEvent>,
    pub(crate) now: u64,
    pub(crate) rebirth: Option<RebirthReason>,
}

impl Cx<'_> {
    pub(crate) fn reject(&mut self, topic: &str, reason: RejectReason) {
        self.out.push(HostEvent::Rejected {
            topic: topic.to_string(),
            reason,
        });
    }

    /// The first reason raised while handling one message is the one reported.
    pub(crate) fn want_rebirth(&mut self, reason: RebirthReason) {
        self.rebirth.get_or_insert(reason);
    }

    fn emit(&mut self, s: MetricSample) {
        self.counters.samples += 1;
        if s.flags.historical {
            self.counters.historical_samples += 1;
        }
        if s.flags.stale {
            self.counters.stale_samples += 1;
        }
        self.out.push(HostEvent::Sample(s));
    }
}

/// Where samples come from.
struct Origin<'a> {
    group: &'a Arc<str>,
    edge_node: &'a Arc<str>,
    device: Option<&'a Arc<str>>,
    seq: Option<u8>,
    bd_seq: Option<u64>,
    payload_ts: Option<u64>,
    received_at: u64,
}

impl Origin<'_> {
    #[allow(clippy::too_many_arguments)]
    fn sample(
        &self,
        name: Arc<str>,
        alias: Option<u64>,
        datatype: DataType,
        value: Option<Value>,
        metric_ts: Option<u64>,
        quality: Quality,
        flags: SampleFlags,
    ) -> MetricSample {
        MetricSample {
            group: self.group.clone(),
            edge_node: self.edge_node.clone(),
            device: self.device.cloned(),
            name,
            alias,
            datatype,
            value,
            timestamp: metric_ts.or(self.payload_ts).unwrap_or(self.received_at),
            received_at: self.received_at,
            quality,
            flags,
            seq: self.seq,
            bd_seq: self.bd_seq,
        }
    }

    /// STALE markers for every metric of a table (template containers have no value of their
    /// own and get none).
    fn stale(
        &self,
        table: &mut MetricTable,
        ts: u64,
        only_missing_from: Option<&MetricTable>,
        cx: &mut Cx<'_>,
    ) {
        for def in &mut table.defs {
            if def.datatype == DataType::Template {
                continue;
            }
            if only_missing_from.is_some_and(|t| t.by_name.contains_key(&def.name)) {
                continue;
            }
            def.quality = Quality::STALE;
            let flags = SampleFlags {
                stale: true,
                ..SampleFlags::default()
            };
            let mut s = self.sample(
                def.name.clone(),
                def.alias,
                def.datatype,
                None,
                Some(ts),
                Quality::STALE,
                flags,
            );
            s.timestamp = ts;
            cx.emit(s);
        }
    }
}

/// The result of reading a birth.
struct Birth {
    table: MetricTable,
    definitions: Templates,
    /// Members of the definitions, counted against `max_metrics_per_node`.
    definition_members: usize,
    samples: Vec<MetricSample>,
    rejects: Vec<RejectReason>,
}

/// Recursion bound for template instances (the decoder already bounds nesting).
const MAX_TEMPLATE_DEPTH: usize = 16;

fn named_datatype(m: &Metric) -> Option<DataType> {
    m.datatype.filter(|d| *d != DataType::Unknown)
}

/// Reads the metrics of an NBIRTH (`definitions_allowed`) or DBIRTH into a table and samples.
/// `Err` = malformed birth.
fn read_birth(
    metrics: Vec<Metric>,
    node_templates: &Templates,
    definitions_allowed: bool,
    origin: &Origin<'_>,
) -> Result<Birth, String> {
    let mut definitions = Templates::default();
    let mut definition_members = 0usize;
    let mut rejects = Vec::new();
    let mut rest = Vec::with_capacity(metrics.len());
    for m in metrics {
        match &m.value {
            MetricValue::Value(Value::Template(t)) if t.is_definition => {
                let name = m.name.clone().unwrap_or_default();
                if !definitions_allowed {
                    rejects.push(RejectReason::TemplateDefinition { metric: name });
                    continue;
                }
                if name.is_empty() {
                    return Err("template definition without a name".into());
                }
                definition_members += t.metrics.len() + 1;
                if let MetricValue::Value(Value::Template(t)) = m.value {
                    definitions.insert(name, t);
                }
            }
            _ => rest.push(m),
        }
    }
    let templates = if definitions_allowed {
        &definitions
    } else {
        node_templates
    };
    let mut table = MetricTable::default();
    let mut samples = Vec::new();
    let mut aliases = HashSet::default();
    for (i, m) in rest.into_iter().enumerate() {
        let Some(name) = m.name.clone().filter(|n| !n.is_empty()) else {
            return Err(format!("metric #{i} has no name"));
        };
        let Some(datatype) = named_datatype(&m) else {
            return Err(format!("metric {name:?} has no datatype"));
        };
        if let Some(a) = m.alias
            && !aliases.insert(a)
        {
            return Err(format!("alias {a} used twice (again by {name:?})"));
        }
        let quality = Quality::from_properties(m.properties.as_ref()).unwrap_or_default();
        let flags = SampleFlags {
            historical: m.is_historical,
            transient: m.is_transient,
            birth: true,
            ..SampleFlags::default()
        };
        let live = |ts: u64| Live {
            timestamp: (!flags.historical).then_some(ts),
            quality,
        };
        let name: Arc<str> = name.into();
        if datatype == DataType::Template {
            let ts = m
                .timestamp
                .or(origin.payload_ts)
                .unwrap_or(origin.received_at);
            table.add(name.clone(), m.alias, datatype, live(ts));
            match m.value {
                MetricValue::Value(Value::Template(t)) => {
                    let parent = Parent {
                        ts: m.timestamp,
                        flags,
                        quality: Quality::from_properties(m.properties.as_ref()),
                    };
                    birth_members(
                        &name,
                        t,
                        templates,
                        &parent,
                        origin,
                        0,
                        &mut table,
                        &mut samples,
                    )?;
                }
                MetricValue::Null => {}
                _ => {
                    return Err(format!(
                        "metric {name:?} is a Template without a template value"
                    ));
                }
            }
            continue;
        }
        let value = match m.value.resolve(datatype) {
            Ok(MetricValue::Value(v)) => Some(v),
            Ok(_) => None,
            Err(e) => return Err(format!("metric {name:?}: {e}")),
        };
        let s = origin.sample(
            name.clone(),
            m.alias,
            datatype,
            value,
            m.timestamp,
            quality,
            flags,
        );
        table.add(name, m.alias, datatype, live(s.timestamp));
        samples.push(s);
    }
    Ok(Birth {
        table,
        definitions,
        definition_members,
        samples,
        rejects,
    })
}

/// What a template member inherits from its instance metric.
struct Parent {
    ts: Option<u64>,
    flags: SampleFlags,
    quality: Option<Quality>,
}

/// Flattens a template instance of a birth into `<prefix>/<member>` entries and samples.
#[allow(clippy::too_many_arguments)]
fn birth_members(
    prefix: &str,
    t: Template,
    templates: &Templates,
    parent: &Parent,
    origin: &Origin<'_>,
    depth: usize,
    table: &mut MetricTable,
    samples: &mut Vec<MetricSample>,
) -> Result<(), String> {
    if depth > MAX_TEMPLATE_DEPTH {
        return Err(format!("template instance {prefix:?} is nested too deeply"));
    }
    let definition = t.template_ref.as_deref().and_then(|r| templates.get(r));
    for m in t.metrics {
        let Some(member) = m.name.clone().filter(|n| !n.is_empty()) else {
            return Err(format!(
                "a member of template instance {prefix:?} has no name"
            ));
        };
        let full: Arc<str> = format!("{prefix}/{member}").into();
        let from_definition = || {
            definition
                .and_then(|d| {
                    d.metrics
                        .iter()
                        .find(|dm| dm.name.as_deref() == Some(&member))
                })
                .and_then(named_datatype)
        };
        let Some(datatype) = named_datatype(&m).or_else(from_definition) else {
            return Err(format!("template member {full:?} has no datatype"));
        };
        let quality = Quality::from_properties(m.properties.as_ref())
            .or(parent.quality)
            .unwrap_or_default();
        let flags = SampleFlags {
            historical: parent.flags.historical || m.is_historical,
            transient: parent.flags.transient || m.is_transient,
            birth: true,
            ..SampleFlags::default()
        };
        let ts = m.timestamp.or(parent.ts);
        let live = Live {
            timestamp: (!flags.historical)
                .then(|| ts.or(origin.payload_ts).unwrap_or(origin.received_at)),
            quality,
        };
        if datatype == DataType::Template {
            table.add(full.clone(), None, datatype, live);
            if let MetricValue::Value(Value::Template(inner)) = m.value {
                let p = Parent {
                    ts,
                    flags,
                    quality: Some(quality),
                };
                birth_members(
                    &full,
                    inner,
                    templates,
                    &p,
                    origin,
                    depth + 1,
                    table,
                    samples,
                )?;
            }
            continue;
        }
        let value = match m.value.resolve(datatype) {
            Ok(MetricValue::Value(v)) => Some(v),
            Ok(_) => None,
            Err(e) => return Err(format!("template member {full:?}: {e}")),
        };
        table.add(full.clone(), None, datatype, live);
        samples.push(origin.sample(full, None, datatype, value, ts, quality, flags));
    }
    Ok(())
}

/// Gives a DATA value the birth datatype. A value typed differently on the wire is converted
/// when it fits (e.g. an Int64 declared UInt32 in the birth); otherwise it is rejected.
fn coerce(value: MetricValue, datatype: DataType) -> Result<Option<Value>, ValueError> {
    match value {
        MetricValue::Null => Ok(None),
        MetricValue::Untyped(w) => w.into_value(datatype).map(Some),
        MetricValue::Value(v) if v.datatype() == datatype => Ok(Some(v)),
        MetricValue::Value(v) => {
            let field = match &v {
                Value::DataSet(_) => "dataset_value",
                Value::Template(_) => "template_value",
                _ => "a value field",
            };
            match v.to_wire()? {
                Some(WireValue::Extension) | None => Err(ValueError::Mismatch { datatype, field }),
                Some(w) => w.into_value(datatype).map(Some),
            }
        }
    }
}

/// The bdSeq metric's value, of any integer datatype.
pub(crate) fn bd_seq(metrics: &[Metric]) -> Option<u64> {
    let m = metrics
        .iter()
        .find(|m| m.name.as_deref() == Some("bdSeq"))?;
    // Signed values go through i64 so that every signed width maps a value to the same u64.
    Some(match &m.value {
        MetricValue::Value(v) => match *v {
            Value::Int8(x) => i64::from(x) as u64,
            Value::Int16(x) => i64::from(x) as u64,
            Value::Int32(x) => i64::from(x) as u64,
            Value::Int64(x) => x as u64,
            Value::UInt8(x) => u64::from(x),
            Value::UInt16(x) => u64::from(x),
            Value::UInt32(x) => u64::from(x),
            Value::UInt64(x) => x,
            _ => return None,
        },
        MetricValue::Untyped(WireValue::Int(x)) => u64::from(*x),
        MetricValue::Untyped(WireValue::Long(x)) => *x,
        _ => return None,
    })
}

/// One edge node as the host sees it. A node that has no session (never born, dead, or only
/// known because the host asked it for a rebirth) is kept with `online == false` and empty
/// tables.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) group: Arc<str>,
    pub(crate) edge_node: Arc<str>,
    pub(crate) online: bool,
    pub(crate) bd_seq: Option<u64>,
    /// The seq the next message must carry.
    pub(crate) expected: u8,
    /// Which seq positions behind `expected` were given up, to classify a seq that is behind.
    window: SeqWindow,
    pub(crate) metrics: MetricTable,
    pub(crate) templates: Templates,
    pub(crate) template_members: usize,
    pub(crate) devices: HashMap<Arc<str>, Device>,
    pub(crate) reorder: ReorderBuffer<Msg>,
    pub(crate) rebirth: NodeRebirth,
    /// In the host's list of nodes with timers.
    pub(crate) armed: bool,
}

impl Node {
    pub(crate) fn new(group: Arc<str>, edge_node: Arc<str>) -> Node {
        Node {
            group,
            edge_node,
            online: false,
            bd_seq: None,
            expected: 0,
            window: SeqWindow::default(),
            metrics: MetricTable::default(),
            templates: Templates::default(),
            template_members: 0,
            devices: HashMap::default(),
            reorder: ReorderBuffer::default(),
            rebirth: NodeRebirth::default(),
            armed: false,
        }
    }

    /// Metrics held for this node, its devices and its template definitions.
    pub(crate) fn metric_count(&self) -> usize {
        self.metrics.len()
            + self.template_members
            + self
                .devices
                .values()
                .map(|d| d.metrics.len())
                .sum::<usize>()
    }

    /// When `poll` next has work for this node.
    pub(crate) fn deadline(&self, cfg: &HostConfig) -> Option<u64> {
        let held = self.rebirth.release_at(cfg.rebirth_throttle_ms);
        match (self.reorder.deadline, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn origin<'a>(
        &'a self,
        device: Option<&'a Arc<str>>,
        seq: Option<u8>,
        payload_ts: Option<u64>,
        received_at: u64,
    ) -> Origin<'a> {
        Origin {
            group: &self.group,
            edge_node: &self.edge_node,
            device,
            seq,
            bd_seq: self.bd_seq,
            payload_ts,
            received_at,
        }
    }

    fn sorted_device_names(&self) -> Vec<Arc<str>> {
        let mut names: Vec<Arc<str>> = self.devices.keys().cloned().collect();
        names.sort();
        names
    }

    /// Marks a device offline: STALE markers for its metrics at `ts`, then `DeviceOffline`.
    fn device_offline(
        &mut self,
        name: &Arc<str>,
        ts: u64,
        seq: Option<u8>,
        reason: OfflineReason,
        cx: &mut Cx<'_>,
    ) {
        let Some(dev) = self.devices.get_mut(name) else {
            return;
        };
        if !dev.online {
            return;
        }
        dev.online = false;
        let mut table = std::mem::take(&mut dev.metrics);
        let origin = Origin {
            group: &self.group,
            edge_node: &self.edge_node,
            device: Some(name),
            seq,
            bd_seq: self.bd_seq,
            payload_ts: None,
            received_at: cx.now,
        };
        origin.stale(&mut table, ts, None, cx);
        cx.out.push(HostEvent::DeviceOffline {
            group: self.group.clone(),
            edge_node: self.edge_node.clone(),
            device: name.clone(),
            timestamp: ts,
            reason,
        });
    }

    /// Ends the current session: every device offline, every metric STALE at `ts`, node offline,
    /// reorder buffer dropped. Nothing happens for a node without a session.
    pub(crate) fn end_session(&mut self, ts: u64, reason: OfflineReason, cx: &mut Cx<'_>) {
        cx.counters.reorder_discarded += self.reorder.clear() as u64;
        if !self.online {
            return;
        }
        for name in self.sorted_device_names() {
            self.device_offline(&name, ts, None, reason, cx);
        }
        self.devices.clear();
        let mut table = std::mem::take(&mut self.metrics);
        self.origin(None, None, None, cx.now)
            .stale(&mut table, ts, None, cx);
        self.templates.clear();
        self.template_members = 0;
        self.online = false;
        cx.out.push(HostEvent::NodeOffline {
            group: self.group.clone(),
            edge_node: self.edge_node.clone(),
            bd_seq: self.bd_seq,
            timestamp: ts,
            reason,
        });
    }

    /// A birth for this node could not be used: the old session is over (the edge node started
    /// a new one), the new one is unknown.
    pub(crate) fn reject_birth(
        &mut self,
        topic: &str,
        reason: RejectReason,
        rebirth: bool,
        cx: &mut Cx<'_>,
    ) {
        if matches!(reason, RejectReason::Limit(_)) {
            cx.counters.limit_metrics += 1;
        } else {
            cx.counters.births_malformed += 1;
        }
        cx.reject(topic, reason);
        self.end_session(cx.now, OfflineReason::RejectedBirth, cx);
        if rebirth {
            cx.want_rebirth(RebirthReason::MalformedBirth);
        }
    }

    /// NBIRTH: always applied at once; it replaces everything and resets seq.
    pub(crate) fn nbirth(&mut self, topic: &str, payload: Payload, cx: &mut Cx<'_>) {
        let received_at = cx.now;
        let seq = match payload.seq {
            None => {
                return self.reject_birth(
                    topic,
                    RejectReason::MalformedBirth("NBIRTH has no seq".into()),
                    true,
                    cx,
                );
            }
            Some(s) => match u8::try_from(s) {
                Ok(s) => s,
                Err(_) => {
                    return self.reject_birth(topic, RejectReason::SeqOutOfRange(s), true, cx);
                }
            },
        };
        let bd_seq = bd_seq(&payload.metrics);
        let origin = Origin {
            group: &self.group,
            edge_node: &self.edge_node,
            device: None,
            seq: Some(seq),
            bd_seq,
            payload_ts: payload.timestamp,
            received_at,
        };
        let birth = match read_birth(payload.metrics, &Templates::default(), true, &origin) {
            Ok(b) => b,
            Err(e) => return self.reject_birth(topic, RejectReason::MalformedBirth(e), true, cx),
        };
        if birth.table.len() + birth.definition_members > cx.cfg.max_metrics_per_node {
            return self.reject_birth(topic, RejectReason::Limit("metrics per node"), false, cx);
        }
        cx.counters.reorder_discarded += self.reorder.clear() as u64;
        for name in self.sorted_device_names() {
            self.device_offline(&name, received_at, None, OfflineReason::NewBirth, cx);
        }
        self.devices.clear();
        if self.online {
            let mut old = std::mem::take(&mut self.metrics);
            self.origin(None, Some(seq), payload.timestamp, received_at)
                .stale(&mut old, received_at, Some(&birth.table), cx);
        }
        self.online = true;
        self.bd_seq = bd_seq;
        self.expected = seq.wrapping_add(1);
        self.window.reset(payload.timestamp);
        self.metrics = birth.table;
        self.templates = birth.definitions;
        self.template_members = birth.definition_members;
        self.rebirth.answered();
        cx.counters.node_births += 1;
        cx.out.push(HostEvent::NodeOnline {
            group: self.group.clone(),
            edge_node: self.edge_node.clone(),
            bd_seq,
            seq,
            timestamp: payload.timestamp.unwrap_or(received_at),
            received_at,
        });
        for r in birth.rejects {
            cx.counters.template_definition_rejected += 1;
            cx.reject(topic, r);
        }
        for s in birth.samples {
            cx.emit(s);
        }
    }

    /// A seq-carrying message of an online node: applied in seq order, buffered, or late.
    pub(crate) fn deliver(&mut self, msg: Msg, cx: &mut Cx<'_>) {
        match seq::check(self.expected, msg.seq) {
            SeqCheck::InOrder => {
                self.pass(&msg);
                self.apply(msg, false, cx);
                let mut filled = false;
                while let Some(next) = self.reorder.take(self.expected) {
                    filled = true;
                    self.pass(&next);
                    self.apply(next, false, cx);
                }
                if filled {
                    cx.counters.reorder_recovered += 1;
                    // Another gap may remain: it gets a full timeout of its own.
                    self.reorder.deadline = (!self.reorder.is_empty())
                        .then(|| cx.now.saturating_add(cx.cfg.reorder_timeout_ms));
                }
            }
            SeqCheck::Ahead(_) => {
                if self.reorder.contains(msg.seq) {
                    cx.counters.seq_duplicates += 1;
                    cx.reject(&msg.topic, RejectReason::Duplicate(msg.seq));
                } else if cx.cfg.reorder_timeout_ms == 0
                    || self.reorder.len() >= cx.cfg.max_buffered_per_node
                {
                    if cx.cfg.reorder_timeout_ms != 0 {
                        cx.counters.reorder_overflow += 1;
                    }
                    self.reorder.push(msg.seq, msg);
                    self.give_up_gap(cx);
                } else {
                    cx.counters.reorder_buffered += 1;
                    self.reorder.push(msg.seq, msg);
                    if self.reorder.deadline.is_none() {
                        self.reorder.deadline =
                            Some(cx.now.saturating_add(cx.cfg.reorder_timeout_ms));
                    }
                }
            }
            SeqCheck::Behind => match self.window.classify(msg.seq, msg.payload.timestamp) {
                Behind::Late => {
                    cx.counters.seq_late += 1;
                    self.window.arrived_late(msg.seq);
                    match msg.kind {
                        MessageType::NData | MessageType::DData => self.apply(msg, true, cx),
                        kind => {
                            let reason = RejectReason::Late {
                                seq: msg.seq,
                                expected: self.expected,
                                what: kind.verb(),
                            };
                            cx.reject(&msg.topic, reason);
                        }
                    }
                }
                Behind::Duplicate => {
                    cx.counters.seq_duplicates += 1;
                    cx.reject(&msg.topic, RejectReason::Duplicate(msg.seq));
                }
                Behind::New => {
                    // 128 or more messages were lost, so the seq wrapped past the expected one.
                    // What waits in the reorder buffer was sent before this message.
                    cx.counters.seq_gaps += 1;
                    self.apply_buffered(cx);
                    self.pass(&msg);
                    self.apply(msg, false, cx);
                    cx.want_rebirth(RebirthReason::SequenceGap);
                }
            },
        }
    }

    /// `msg` is applied now: the expected seq moves past it, positions skipped on the way are
    /// given up.
    fn pass(&mut self, msg: &Msg) {
        self.window
            .pass(self.expected, msg.seq, msg.payload.timestamp);
        self.expected = msg.seq.wrapping_add(1);
    }

    /// Applies everything in the reorder buffer, in seq order, as current data.
    fn apply_buffered(&mut self, cx: &mut Cx<'_>) {
        for (_, msg) in self.reorder.drain_in_order(self.expected) {
            self.pass(&msg);
            self.apply(msg, false, cx);
        }
    }

    /// The open gap will not fill: apply what is buffered in seq order and ask for a rebirth.
    fn give_up_gap(&mut self, cx: &mut Cx<'_>) {
        cx.counters.seq_gaps += 1;
        self.apply_buffered(cx);
        cx.want_rebirth(RebirthReason::SequenceGap);
    }

    /// Shutdown: applies what waits in the reorder buffer, in seq order, without asking for a
    /// rebirth (there will be no session to answer it).
    pub(crate) fn flush_reorder(&mut self, cx: &mut Cx<'_>) {
        if self.reorder.is_empty() {
            return;
        }
        cx.counters.reorder_flushed += 1;
        self.apply_buffered(cx);
    }

    /// Reorder timeout.
    pub(crate) fn poll_reorder(&mut self, cx: &mut Cx<'_>) {
        if self.reorder.deadline.is_some_and(|d| d <= cx.now) {
            self.give_up_gap(cx);
        }
    }

    fn apply(&mut self, msg: Msg, late: bool, cx: &mut Cx<'_>) {
        match msg.kind {
            MessageType::DBirth => self.dbirth(msg, cx),
            MessageType::NData | MessageType::DData => self.data(msg, late, cx),
            MessageType::DDeath => self.ddeath(msg, cx),
            // NBIRTH, NDEATH and commands never get here.
            _ => {}
        }
    }

    fn dbirth(&mut self, msg: Msg, cx: &mut Cx<'_>) {
        let Some(name) = msg.device.clone() else {
            return;
        };
        let existing = self.devices.get(&name).map(|d| d.metrics.len());
        if existing.is_none() && self.devices.len() >= cx.cfg.max_devices_per_node {
            cx.counters.limit_devices += 1;
            cx.reject(&msg.topic, RejectReason::Limit("devices per node"));
            return;
        }
        let origin = self.origin(
            Some(&name),
            Some(msg.seq),
            msg.payload.timestamp,
            msg.received_at,
        );
        let birth = read_birth(msg.payload.metrics, &self.templates, false, &origin);
        let birth = match birth {
            Ok(b)
                if self.metric_count() - existing.unwrap_or(0) + b.table.len()
                    > cx.cfg.max_metrics_per_node =>
            {
                cx.counters.limit_metrics += 1;
                cx.reject(&msg.topic, RejectReason::Limit("metrics per node"));
                self.device_offline(
                    &name,
                    cx.now,
                    Some(msg.seq),
                    OfflineReason::RejectedBirth,
                    cx,
                );
                return;
            }
            Ok(b) => b,
            Err(e) => {
                cx.counters.births_malformed += 1;
                cx.reject(&msg.topic, RejectReason::MalformedBirth(e));
                self.device_offline(
                    &name,
                    cx.now,
                    Some(msg.seq),
                    OfflineReason::RejectedBirth,
                    cx,
                );
                cx.want_rebirth(RebirthReason::MalformedBirth);
                return;
            }
        };
        if let Some(dev) = self.devices.get_mut(&name)
            && dev.online
        {
            let mut old = std::mem::take(&mut dev.metrics);
            let origin = Origin {
                group: &self.group,
                edge_node: &self.edge_node,
                device: Some(&name),
                seq: Some(msg.seq),
                bd_seq: self.bd_seq,
                payload_ts: msg.payload.timestamp,
                received_at: msg.received_at,
            };
            origin.stale(&mut old, msg.received_at, Some(&birth.table), cx);
        }
        self.devices.insert(
            name.clone(),
            Device {
                online: true,
                metrics: birth.table,
            },
        );
        cx.counters.device_births += 1;
        cx.out.push(HostEvent::DeviceOnline {
            group: self.group.clone(),
            edge_node: self.edge_node.clone(),
            device: name,
            timestamp: msg.payload.timestamp.unwrap_or(msg.received_at),
            received_at: msg.received_at,
        });
        for r in birth.rejects {
            cx.counters.template_definition_rejected += 1;
            cx.reject(&msg.topic, r);
        }
        for s in birth.samples {
            cx.emit(s);
        }
    }

    fn ddeath(&mut self, msg: Msg, cx: &mut Cx<'_>) {
        let Some(name) = msg.device.clone() else {
            return;
        };
        match self.devices.get(&name).map(|d| d.online) {
            Some(true) => {
                cx.counters.device_deaths += 1;
                let ts = msg.payload.timestamp.unwrap_or(msg.received_at);
                self.device_offline(&name, ts, Some(msg.seq), OfflineReason::Death, cx);
            }
            Some(false) => cx.counters.device_deaths_ignored += 1,
            None => {
                cx.counters.unknown_device += 1;
                cx.reject(&msg.topic, RejectReason::UnknownDevice);
                cx.want_rebirth(RebirthReason::UnknownDevice);
            }
        }
    }

    fn data(&mut self, msg: Msg, late: bool, cx: &mut Cx<'_>) {
        let Msg {
            device,
            topic,
            payload,
            seq,
            received_at,
            ..
        } = msg;
        let table = match &device {
            None => &mut self.metrics,
            Some(d) => match self.devices.get_mut(d) {
                Some(dev) if dev.online => &mut dev.metrics,
                _ => {
                    cx.counters.unknown_device += 1;
                    cx.reject(&topic, RejectReason::UnknownDevice);
                    cx.want_rebirth(RebirthReason::UnknownDevice);
                    return;
                }
            },
        };
        cx.counters.data_messages += 1;
        let origin = Origin {
            group: &self.group,
            edge_node: &self.edge_node,
            device: device.as_ref(),
            seq: Some(seq),
            bd_seq: self.bd_seq,
            payload_ts: payload.timestamp,
            received_at,
        };
        let mut d = DataCx {
            origin,
            topic: &topic,
            late,
        };
        for m in payload.metrics {
            let idx = match resolve_id(table, &m) {
                Ok(i) => i,
                Err(reason) => {
                    d.unresolved(reason, cx);
                    continue;
                }
            };
            let parent = Parent {
                ts: m.timestamp,
                flags: SampleFlags {
                    historical: m.is_historical,
                    transient: m.is_transient,
                    late,
                    ..SampleFlags::default()
                },
                quality: Quality::from_properties(m.properties.as_ref()),
            };
            d.metric(table, idx, m.value, &parent, 0, cx);
        }
    }
}

/// The metric a DATA metric refers to: by alias (checked against the name when both are
/// present), else by name.
fn resolve_id(table: &MetricTable, m: &Metric) -> Result<usize, RejectReason> {
    match (m.alias, m.name.as_deref()) {
        (Some(a), name) => {
            let i = *table
                .by_alias
                .get(&a)
                .ok_or_else(|| RejectReason::UnknownMetric {
                    metric: format!("alias {a}"),
                })?;
            match (name, table.defs.get(i)) {
                (Some(n), Some(def)) if *def.name != *n => Err(RejectReason::UnknownMetric {
                    metric: format!(
                        "{n:?} with alias {a} (the birth gave alias {a} to {:?})",
                        def.name
                    ),
                }),
                _ => Ok(i),
            }
        }
        (None, Some(n)) => {
            table
                .by_name
                .get(n)
                .copied()
                .ok_or_else(|| RejectReason::UnknownMetric {
                    metric: format!("{n:?}"),
                })
        }
        (None, None) => Err(RejectReason::MetricWithoutId),
    }
}

struct DataCx<'a> {
    origin: Origin<'a>,
    topic: &'a str,
    late: bool,
}

impl DataCx<'_> {
    fn unresolved(&self, reason: RejectReason, cx: &mut Cx<'_>) {
        match reason {
            RejectReason::MetricWithoutId => {
                cx.counters.metric_without_id += 1;
                if cx.cfg.rebirth_on_malformed {
                    cx.want_rebirth(RebirthReason::MalformedData);
                }
            }
            _ => {
                cx.counters.unknown_metric += 1;
                cx.want_rebirth(RebirthReason::UnknownMetric);
            }
        }
        cx.reject(self.topic, reason);
    }

    /// One resolved DATA metric (or template member) with its value.
    fn metric(
        &mut self,
        table: &mut MetricTable,
        idx: usize,
        value: MetricValue,
        parent: &Parent,
        depth: usize,
        cx: &mut Cx<'_>,
    ) {
        let Some(def) = table.defs.get(idx) else {
            return;
        };
        let name = def.name.clone();
        let datatype = def.datatype;
        let alias = def.alias;
        if datatype == DataType::Template {
            match value {
                MetricValue::Value(Value::Template(t)) if t.is_definition => {
                    cx.counters.template_definition_rejected += 1;
                    cx.reject(
                        self.topic,
                        RejectReason::TemplateDefinition {
                            metric: name.to_string(),
                        },
                    );
                }
                MetricValue::Value(Value::Template(t)) if depth <= MAX_TEMPLATE_DEPTH => {
                    self.members(table, &name, t, parent, depth, cx);
                }
                MetricValue::Null => {}
                other => {
                    let field = match other {
                        MetricValue::Untyped(w) => w.field_name(),
                        _ => "a value field",
                    };
                    cx.counters.value_mismatch += 1;
                    let source = ValueError::Mismatch { datatype, field };
                    cx.reject(
                        self.topic,
                        RejectReason::Value {
                            metric: name.to_string(),
                            source,
                        },
                    );
                }
            }
            return;
        }
        let value = match coerce(value, datatype) {
            Ok(v) => v,
            Err(source) => {
                cx.counters.value_mismatch += 1;
                cx.reject(
                    self.topic,
                    RejectReason::Value {
                        metric: name.to_string(),
                        source,
                    },
                );
                if cx.cfg.rebirth_on_malformed {
                    cx.want_rebirth(RebirthReason::MalformedData);
                }
                return;
            }
        };
        let quality = parent.quality.unwrap_or_default();
        let s = self.origin.sample(
            name,
            alias,
            datatype,
            value,
            parent.ts,
            quality,
            parent.flags,
        );
        if !s.flags.historical
            && !self.late
            && let Some(def) = table.defs.get_mut(idx)
        {
            def.last_timestamp = Some(s.timestamp);
            def.quality = quality;
        }
        cx.emit(s);
    }

    /// Members of a template instance in DATA (any subset of the birth's members).
    fn members(
        &mut self,
        table: &mut MetricTable,
        prefix: &str,
        t: Template,
        parent: &Parent,
        depth: usize,
        cx: &mut Cx<'_>,
    ) {
        for m in t.metrics {
            let Some(member) = m.name.as_deref().filter(|n| !n.is_empty()) else {
                self.unresolved(RejectReason::MetricWithoutId, cx);
                continue;
            };
            let full = format!("{prefix}/{member}");
            let Some(&idx) = table.by_name.get(full.as_str()) else {
                self.unresolved(
                    RejectReason::UnknownMetric {
                        metric: format!("{full:?}"),
                    },
                    cx,
                );
                continue;
            };
            let p = Parent {
                ts: m.timestamp.or(parent.ts),
                flags: SampleFlags {
                    historical: parent.flags.historical || m.is_historical,
                    transient: parent.flags.transient || m.is_transient,
                    ..parent.flags
                },
                quality: Quality::from_properties(m.properties.as_ref()).or(parent.quality),
            };
            self.metric(table, idx, m.value, &p, depth + 1, cx);
        }
    }
}
