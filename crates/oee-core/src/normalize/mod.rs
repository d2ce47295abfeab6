//! The tag normalizer: raw Sparkplug metric samples in, canonical signals about assets out.
//!
//! For each sample the normalizer finds the rule for the metric's identity (exact rules by hash,
//! patterns bucketed by their literal group and edge node, see [`rules`]), remembers that
//! decision per identity so the next sample costs one hash lookup, then applies the quality
//! filter, the unit conversion and the deadband. No I/O, no clock: time is the sample's own
//! timestamp.

pub mod deadband;
pub mod pattern;
pub mod rules;
pub mod units;

use std::sync::Arc;

use foldhash::HashMap as FastMap;

use crate::config::processing::{StateCategory, UnmappedPolicy};
use deadband::{Deadband, DeadbandState};
pub use pattern::SourceId;
pub use rules::SignalType;
use rules::{Rule, RuleSet, identity_key};
use units::Linear;

/// Sparkplug quality codes.
pub mod quality {
    pub const BAD: i32 = 0;
    pub const GOOD: i32 = 192;
    /// Set by the host on every metric of a node or device that died.
    pub const STALE: i32 = 500;
}

/// A metric value as it arrives (or leaves, converted).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Text(String),
}

impl Value {
    fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::UInt(u) => Some(*u as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::UInt(u) => i64::try_from(*u).ok(),
            Value::Float(f) if f.fract() == 0.0 && f.is_finite() && f.abs() < 9.0e15 => {
                Some(*f as i64)
            }
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }
}

/// The normalizer's input: one metric sample from the Sparkplug host (this crate does not
/// depend on the Sparkplug crate; the pipeline converts).
#[derive(Clone, Debug, PartialEq)]
pub struct SourceSample<'a> {
    pub group: &'a str,
    pub edge_node: &'a str,
    /// `None` for node-level metrics (an empty device name counts as `None`).
    pub device: Option<&'a str>,
    pub metric: &'a str,
    pub value: Value,
    /// Metric timestamp (event time), ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// Sparkplug quality: 192 good, 0 bad, 500 stale.
    pub quality: i32,
    pub historical: bool,
    pub transient: bool,
    /// Bit width of an integer datatype (8/16/32/64), 0 when not an integer; counters roll over
    /// at this width.
    pub int_bits: u8,
}

/// A resolved source identity (see [`Normalizer::handle`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceHandle(u32);

/// A sample without its identity, for [`Normalizer::normalize_handle`].
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub value: Value,
    pub timestamp_ms: i64,
    pub quality: i32,
    pub historical: bool,
    pub transient: bool,
    pub int_bits: u8,
}

impl SourceSample<'_> {
    pub fn id(&self) -> SourceId<'_> {
        SourceId {
            group: self.group,
            edge_node: self.edge_node,
            device: self.device,
            metric: self.metric,
        }
    }
}

/// Site, line, machine and free labels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Asset {
    pub site_id: String,
    pub line_id: String,
    pub machine_id: String,
    pub labels: Vec<(String, String)>,
}

/// Where a signal came from in Sparkplug terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceRef {
    pub group: String,
    pub edge_node: String,
    pub device: Option<String>,
    pub metric: String,
}

/// Everything about a signal that does not change from sample to sample (shared).
#[derive(Clone, Debug, PartialEq)]
pub struct SignalTag {
    pub asset: Asset,
    pub signal_type: SignalType,
    /// Canonical unit name of the value, if any.
    pub unit: Option<&'static str>,
    pub source: SourceRef,
    /// Index of the rule in `processing.tag_mappings`; `None` for unmapped (raw) metrics.
    pub rule: Option<usize>,
    /// For `fault.active`: the fault code from the rule.
    pub fault_code: Option<i64>,
}

/// A normalized sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Signal {
    pub tag: Arc<SignalTag>,
    /// Counters: `Int`/`UInt` as sent; `state.running` / `fault.active`: `Bool`;
    /// `state.code` / `fault.code`: `Int`; analog: `Float` after conversion (or `Bool`/`Text`
    /// as sent); `Null` when the metric is null (e.g. STALE).
    pub value: Value,
    pub timestamp_ms: i64,
    pub quality: i32,
    pub historical: bool,
    pub transient: bool,
    pub int_bits: u8,
    /// For `state.running` and `state.code`: the state category and its configured reason.
    pub state: Option<(StateCategory, Option<Arc<str>>)>,
}

/// What happened to one sample.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Signal(Signal),
    /// Within the deadband: nothing to emit.
    Suppressed,
    /// Quality below the rule's `min_quality`: dropped. `went_bad` is true on the first bad
    /// sample after good ones, so the pipeline can record the transition once.
    BadQuality {
        tag: Arc<SignalTag>,
        quality: i32,
        timestamp_ms: i64,
        went_bad: bool,
    },
    /// The value does not fit the signal type (text for a counter …): dropped and counted.
    Rejected {
        tag: Arc<SignalTag>,
        reason: &'static str,
    },
    /// No rule maps this metric; counted per node. `Some` carries it raw to telemetry when
    /// `processing.unmapped.policy` is `telemetry`.
    Unmapped(Option<Signal>),
}

/// Counters for `/metrics` and the status line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NormalizerStats {
    pub samples: u64,
    pub emitted: u64,
    pub suppressed: u64,
    pub bad_quality: u64,
    pub rejected: u64,
    pub unmapped: u64,
    /// Samples of identities beyond `max_tracked_sources` (normalized without cache/deadband).
    pub untracked: u64,
    /// Unmapped identities not listed because the node list was full
    /// (`processing.unmapped.max_nodes`), once per identity (per sample for an identity beyond
    /// `max_tracked_sources`, which is not remembered); their samples still count in `unmapped`.
    pub unmapped_unlisted: u64,
}

/// Unmapped metrics of one edge node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnmappedNode {
    pub group: String,
    pub edge_node: String,
    /// All unmapped samples of this node.
    pub samples: u64,
    /// Listed metrics (`device/metric` or `/metric` for node metrics) with their sample counts,
    /// at most `processing.unmapped.max_listed_per_node`.
    pub metrics: Vec<(String, u64)>,
    /// Distinct unmapped metrics not listed because the list is full.
    pub not_listed: u64,
}

/// What the hot path needs, copied from the rule so a sample touches one slot only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Running,
    FaultActive,
    StateCode,
    FaultCode,
    Analog,
    Unmapped,
}

struct Slot {
    tag: Arc<SignalTag>,
    kind: Kind,
    transform: Linear,
    deadband: Deadband,
    /// `i32::MIN` when the rule has no `min_quality`.
    min_quality: i32,
    db: DeadbandState,
    bad: bool,
    /// For unmapped identities: (node index, metric index or u32::MAX).
    unmapped: Option<(u32, u32)>,
}

/// The normalizer of one pipeline shard (single-threaded, owns its state).
pub struct Normalizer {
    rules: Arc<RuleSet>,
    cache: FastMap<Box<str>, u32>,
    slots: Vec<Slot>,
    unmapped_nodes: Vec<UnmappedNode>,
    unmapped_index: FastMap<(String, String), u32>,
    key: String,
    stats: NormalizerStats,
}

impl Normalizer {
    pub fn new(rules: Arc<RuleSet>) -> Normalizer {
        Normalizer {
            rules,
            cache: FastMap::default(),
            slots: Vec::new(),
            unmapped_nodes: Vec::new(),
            unmapped_index: FastMap::default(),
            key: String::new(),
            stats: NormalizerStats::default(),
        }
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    pub fn stats(&self) -> NormalizerStats {
        self.stats
    }

    /// Unmapped metrics per node, in first-seen order: how a user finds what to map.
    pub fn unmapped(&self) -> &[UnmappedNode] {
        &self.unmapped_nodes
    }

    /// Normalize one sample: one hash lookup of its identity, then the rule's conversion,
    /// quality filter and deadband.
    pub fn normalize(&mut self, s: SourceSample<'_>) -> Outcome {
        let SourceSample {
            group,
            edge_node,
            device,
            metric,
            value,
            timestamp_ms,
            quality,
            historical,
            transient,
            int_bits,
        } = s;
        let id = SourceId {
            group,
            edge_node,
            device,
            metric,
        };
        let reading = Reading {
            value,
            timestamp_ms,
            quality,
            historical,
            transient,
            int_bits,
        };
        match self.slot_of(&id) {
            Ok(i) => self.normalize_handle(SourceHandle(i), reading),
            Err(mut slot) => {
                self.stats.samples += 1;
                self.stats.untracked += 1;
                process(
                    &self.rules,
                    &mut self.stats,
                    &mut self.unmapped_nodes,
                    &mut slot,
                    reading,
                )
            }
        }
    }

    /// Resolve an identity once, for callers that can remember it (for example per Sparkplug
    /// alias after a birth): [`Normalizer::normalize_handle`] then skips the lookup. `None`
    /// beyond `processing.max_tracked_sources`.
    pub fn handle(&mut self, id: &SourceId<'_>) -> Option<SourceHandle> {
        self.slot_of(id).ok().map(SourceHandle)
    }

    /// Normalize a reading of an identity resolved with [`Normalizer::handle`].
    pub fn normalize_handle(&mut self, h: SourceHandle, reading: Reading) -> Outcome {
        self.stats.samples += 1;
        match self.slots.get_mut(h.0 as usize) {
            Some(slot) => process(
                &self.rules,
                &mut self.stats,
                &mut self.unmapped_nodes,
                slot,
                reading,
            ),
            None => Outcome::Unmapped(None),
        }
    }

    /// The slot index of an identity, created on first sight; a one-off slot when the table is
    /// full.
    fn slot_of(&mut self, id: &SourceId<'_>) -> Result<u32, Slot> {
        // Sparkplug device ids are never empty: an empty one is the node itself. Without this,
        // `Some("")` and `None` share an identity key but could resolve to different rules and
        // report different sources, depending on which came first (found by fuzzing).
        let id = &SourceId {
            device: id.device.filter(|d| !d.is_empty()),
            ..*id
        };
        identity_key(&mut self.key, id);
        if let Some(&i) = self.cache.get(self.key.as_str()) {
            return Ok(i);
        }
        let slot = self.make_slot(id);
        if self.cache.len() >= self.rules.config.max_tracked_sources {
            return Err(slot);
        }
        let i = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(slot);
        self.cache.insert(self.key.as_str().into(), i);
        Ok(i)
    }

    fn make_slot(&mut self, id: &SourceId<'_>) -> Slot {
        let source = SourceRef {
            group: id.group.to_string(),
            edge_node: id.edge_node.to_string(),
            device: id.device.map(str::to_string),
            metric: id.metric.to_string(),
        };
        let mut caps: Vec<&str> = Vec::new();
        let rules = Arc::clone(&self.rules);
        match rules.resolve(id, &self.key, &mut caps) {
            Some(ri) => Slot {
                tag: Arc::new(tag_for(&rules.rules[ri], &caps, source)),
                kind: match rules.rules[ri].signal_type {
                    SignalType::CounterTotal
                    | SignalType::CounterGood
                    | SignalType::CounterReject => Kind::Counter,
                    SignalType::StateRunning => Kind::Running,
                    SignalType::FaultActive => Kind::FaultActive,
                    SignalType::StateCode => Kind::StateCode,
                    SignalType::FaultCode => Kind::FaultCode,
                    SignalType::Analog(_) | SignalType::Raw => Kind::Analog,
                },
                transform: rules.rules[ri].transform,
                deadband: rules.rules[ri].deadband,
                min_quality: rules.rules[ri].min_quality.unwrap_or(i32::MIN),
                db: DeadbandState::default(),
                bad: false,
                unmapped: None,
            },
            None => {
                let unmapped = self.list_unmapped(id);
                Slot {
                    tag: Arc::new(SignalTag {
                        asset: Asset::default(),
                        signal_type: SignalType::Raw,
                        unit: None,
                        source,
                        rule: None,
                        fault_code: None,
                    }),
                    kind: Kind::Unmapped,
                    transform: Linear::IDENTITY,
                    deadband: Deadband::NONE,
                    min_quality: i32::MIN,
                    db: DeadbandState::default(),
                    bad: false,
                    unmapped,
                }
            }
        }
    }

    /// Lists a new unmapped identity under its node: (node index, metric index or `u32::MAX`
    /// when the node's list is full), or `None` when the node list itself is full.
    fn list_unmapped(&mut self, id: &SourceId<'_>) -> Option<(u32, u32)> {
        let node_key = (id.group.to_string(), id.edge_node.to_string());
        let node = match self.unmapped_index.get(&node_key) {
            Some(&n) => n,
            None if self.unmapped_nodes.len() >= self.rules.config.unmapped.max_nodes => {
                self.stats.unmapped_unlisted += 1;
                return None;
            }
            None => {
                self.unmapped_nodes.push(UnmappedNode {
                    group: node_key.0.clone(),
                    edge_node: node_key.1.clone(),
                    ..Default::default()
                });
                let n = u32::try_from(self.unmapped_nodes.len() - 1).unwrap_or(u32::MAX);
                self.unmapped_index.insert(node_key, n);
                n
            }
        };
        let full = self.cache.len() >= self.rules.config.max_tracked_sources;
        let max_listed = self.rules.config.unmapped.max_listed_per_node;
        let entry = &mut self.unmapped_nodes[node as usize];
        let name = format!("{}/{}", id.device.unwrap_or(""), id.metric);
        // Only an untracked identity (table full) can be seen here twice.
        let listed = if full {
            entry.metrics.iter().position(|m| m.0 == name)
        } else {
            None
        };
        let metric = if let Some(i) = listed {
            u32::try_from(i).unwrap_or(u32::MAX)
        } else if entry.metrics.len() < max_listed {
            entry.metrics.push((name, 0));
            u32::try_from(entry.metrics.len() - 1).unwrap_or(u32::MAX)
        } else {
            entry.not_listed += 1;
            u32::MAX
        };
        Some((node, metric))
    }
}

fn process(
    rules: &RuleSet,
    stats: &mut NormalizerStats,
    unmapped_nodes: &mut [UnmappedNode],
    slot: &mut Slot,
    s: Reading,
) -> Outcome {
    if slot.kind == Kind::Unmapped {
        stats.unmapped += 1;
        if let Some((node, metric)) = slot.unmapped
            && let Some(n) = unmapped_nodes.get_mut(node as usize)
        {
            n.samples += 1;
            if let Some(m) = n.metrics.get_mut(metric as usize) {
                m.1 += 1;
            }
        }
        return Outcome::Unmapped(match rules.config.unmapped.policy {
            UnmappedPolicy::Drop => None,
            UnmappedPolicy::Telemetry => Some(Signal {
                tag: Arc::clone(&slot.tag),
                value: s.value,
                timestamp_ms: s.timestamp_ms,
                quality: s.quality,
                historical: s.historical,
                transient: s.transient,
                int_bits: s.int_bits,
                state: None,
            }),
        });
    }

    // Quality: STALE always passes; below min_quality is dropped and recorded once.
    let stale = s.quality == quality::STALE;
    if !stale && s.quality < slot.min_quality {
        stats.bad_quality += 1;
        let went_bad = !slot.bad;
        slot.bad = true;
        return Outcome::BadQuality {
            tag: Arc::clone(&slot.tag),
            quality: s.quality,
            timestamp_ms: s.timestamp_ms,
            went_bad,
        };
    }
    if slot.bad || stale {
        // Back from bad (or going stale): the next value is emitted whatever the deadband.
        slot.bad = false;
        slot.db.reset();
    }

    let mut state = None;
    let value = match (slot.kind, s.value) {
        (_, Value::Null) => Value::Null,
        (Kind::Counter, v) => match v {
            Value::Int(_) | Value::UInt(_) => v,
            Value::Float(f) if f.fract() == 0.0 && (0.0..1.8e19).contains(&f) => {
                Value::UInt(f as u64)
            }
            _ => return reject(stats, slot, "a counter needs a whole number"),
        },
        (Kind::Running | Kind::FaultActive, v) => {
            let b = match v {
                Value::Bool(b) => b,
                Value::Int(i) => i != 0,
                Value::UInt(u) => u != 0,
                Value::Float(f) if !f.is_nan() => f != 0.0,
                _ => return reject(stats, slot, "a boolean signal needs true/false or a number"),
            };
            if slot.kind == Kind::Running {
                state = Some((
                    if b {
                        StateCategory::Running
                    } else {
                        StateCategory::UnplannedStop
                    },
                    None,
                ));
            }
            Value::Bool(b)
        }
        (Kind::StateCode | Kind::FaultCode, v) => match v.as_i64() {
            Some(code) => {
                if slot.kind == Kind::StateCode {
                    let (cat, reason) = rules.state_codes.category(code);
                    state = Some((cat, reason.cloned()));
                }
                Value::Int(code)
            }
            None => return reject(stats, slot, "a code signal needs a whole number"),
        },
        (_, v) => match v.as_f64() {
            Some(x) => {
                let y = slot.transform.apply(x);
                if !s.historical && !stale && !slot.deadband.admit(&mut slot.db, y, s.timestamp_ms)
                {
                    stats.suppressed += 1;
                    return Outcome::Suppressed;
                }
                Value::Float(y)
            }
            None => v,
        },
    };
    stats.emitted += 1;
    Outcome::Signal(Signal {
        tag: Arc::clone(&slot.tag),
        value,
        timestamp_ms: s.timestamp_ms,
        quality: s.quality,
        historical: s.historical,
        transient: s.transient,
        int_bits: s.int_bits,
        state,
    })
}

fn reject(stats: &mut NormalizerStats, slot: &Slot, reason: &'static str) -> Outcome {
    stats.rejected += 1;
    Outcome::Rejected {
        tag: Arc::clone(&slot.tag),
        reason,
    }
}

fn tag_for(rule: &Rule, caps: &[&str], source: SourceRef) -> SignalTag {
    SignalTag {
        asset: Asset {
            site_id: rule.site_id.render(caps),
            line_id: rule.line_id.render(caps),
            machine_id: rule.machine_id.render(caps),
            labels: rule
                .labels
                .iter()
                .map(|(k, t)| (k.clone(), t.render(caps)))
                .collect(),
        },
        signal_type: rule.signal_type.clone(),
        unit: rule.unit.map(|u| u.name),
        source,
        rule: Some(rule.index),
        fault_code: rule.fault_code,
    }
}
