//! The Sparkplug B host session state machine: pure, no I/O, no clock, no threads.
//!
//! A [`Host`] takes MQTT messages (`handle(topic, payload, now_ms, out)`) and the passing of time
//! (`poll(now_ms, out)`, driven by [`Host::next_deadline`]) and produces [`HostEvent`]s:
//! flattened [`MetricSample`]s, node/device online/offline events, [`RebirthRequest`]s to
//! publish, and rejections. Every notable event also increments a [`HostCounters`] field.
//! Bad input never panics: it is counted, reported as [`HostEvent::Rejected`] and, where the
//! host's view of the node may be wrong, answered with a rebirth request.
//!
//! # Sessions
//!
//! State is kept per `(group, edge node)`. **NBIRTH** always applies at once: it records the
//! bdSeq (the `bdSeq` metric, any integer datatype) and seq (any 0–255; the next expected is
//! seq+1 mod 256), replaces the node's alias/datatype map and template definitions, drops the
//! previous session's reorder buffer (`reorder_discarded`), takes every device offline until
//! its DBIRTH (STALE markers for their metrics), writes STALE markers for node metrics that the
//! new birth no longer has, and emits `NodeOnline` and every birth value as a sample
//! (`flags.birth`). **DBIRTH** needs an online node (else: rejected, rebirth requested) and
//! replaces that device's map. Alias maps are per node and per device (as Tahu keys them), so
//! edge nodes that reuse an alias across devices still work. A birth with a metric without name
//! or datatype, a duplicate alias, a value that does not fit its datatype or a payload that
//! does not decode is a malformed birth: rejected, counted, the old session of that node
//! (device) ended, a rebirth requested.
//!
//! **NDATA/DDATA** resolve each metric by alias (checked against the name if both are present)
//! or by name, and type it with the birth datatype (an untyped value is resolved; a value typed
//! differently on the wire is converted when it fits, else rejected per metric). An unknown node,
//! device, alias or name is rejected and counted and yields one rebirth request; the host never
//! invents names such as `alias_42`.
//!
//! **Templates**: definitions are only accepted from NBIRTH (elsewhere rejected per metric) and
//! kept per node, never emitted. Instances are flattened into samples named
//! `<instance>/<member>`, recursively; a member without a datatype takes it from the definition.
//! DATA may carry any subset of an instance's members, addressed through the instance's alias
//! or name.
//!
//! **NDEATH** acts only on an online node whose NBIRTH bdSeq equals the NDEATH's (both absent
//! also matches); otherwise it is ignored and counted (a late Will of an older session, a
//! duplicate, or a death relayed by another server after the node re-birthed). It takes the
//! node and its devices offline and writes a STALE marker (quality 500, value `None`,
//! `flags.stale`) for every birth metric at the host's receipt time. **DDEATH** does the same
//! for one device at the DDEATH payload timestamp (receipt time if absent), in seq order.
//! [`Host::connection_lost`] ends every session with STALE markers at the time of the loss and
//! clears all rebirth state: after reconnecting nothing is trusted until new births arrive.
//!
//! # Sequence numbers and reordering
//!
//! seq is checked across NBIRTH, DBIRTH, NDATA, DDATA and DDEATH of one node (not NDEATH, not
//! commands). A message with the expected seq is applied, then any buffered successors. A seq
//! 1–127 steps ahead opens (or extends) a gap: the message waits in the node's reorder buffer
//! (at most `max_buffered_per_node`). If the gap fills before `reorder_timeout_ms` the buffered
//! messages are applied in order, no rebirth, `reorder_recovered` counts it (a remaining gap gets
//! a fresh timeout). If it does not, `poll` applies what is buffered in seq order, counts
//! `seq_gaps` and requests exactly one rebirth; a full buffer does the same at once
//! (`reorder_overflow`), and so does any gap when the timeout is 0. DBIRTH/NDATA/DDATA/DDEATH
//! without seq or with seq > 255 are rejected (`seq_invalid`).
//!
//! **A seq behind the expected one** (128–255 steps ahead in mod-256 arithmetic) is one of three
//! things, and seq alone cannot tell which: the missing message of a gap that was given up, a
//! copy of a message already received, or the next message after 128 or more lost ones (a burst
//! dropped by an overloaded broker: the seq wraps past the expected one). Per node the host
//! remembers which of the positions it passed were given up (a 256-bit map, kept per applied
//! message) and the newest payload timestamp applied in the session (NBIRTH included). In this
//! order:
//!
//! - **New** — the payload timestamp is later than every one applied: messages were lost. The
//!   same as a gap that timed out: `seq_gaps` counts it, the reorder buffer (older messages) is
//!   applied in seq order, then this message as current data (not late), the expected seq
//!   becomes its seq + 1, and one rebirth is requested. So an open gap is also given up as soon
//!   as a message 128 or more past its first missing seq arrives, before the timeout.
//! - **Late** — its position was given up in this session: `seq_late`. NDATA/DDATA are applied,
//!   because their data was never seen, but their samples carry `flags.late` and, like historical
//!   samples, do not update the live state. A late DBIRTH or DDEATH is dropped (rejected):
//!   applying a state change out of order would leave the wrong state. Either way the position
//!   counts as received from then on.
//! - **Duplicate** — anything else: a seq already applied (or received late), or a message older
//!   than the current NBIRTH. Dropped (rejected), `seq_duplicates`; so is a second message with a
//!   seq already in the reorder buffer.
//!
//! Without a payload timestamp (the spec requires one) a position that was not given up counts
//! as new: Sparkplug sends data at QoS 0, which loses but never duplicates, and the wrong guess
//! costs a rebirth, not data. An edge node whose clock steps back inside a session can have a
//! loss of 128 or more taken for duplicates until the seq catches up. A loss of exactly 256 (or
//! a multiple) leaves the seq where it was and cannot be seen; a loss of 256 + n looks like a
//! loss of n. NBIRTH starts over: no position is given up, the newest timestamp is the birth's.
//!
//! # Rebirth requests
//!
//! [`RebirthMode::Off`] never emits one (only `rebirth_disabled` counts); `Active` and `Primary`
//! emit them. Per node at most one per `rebirth_throttle_ms`: while a request is outstanding (no
//! NBIRTH since) further triggers add nothing; once answered, a new trigger inside the interval
//! is held and sent when it ends (unless an NBIRTH comes first). Globally a token bucket of
//! `global_rebirths_per_second` (burst = rate); requests beyond it wait in a FIFO and are
//! released by `poll`, never lost. The request is an NCMD on `spBv1.0/<group>/NCMD/<edge node>`
//! with a payload timestamp, no seq, and one metric `Node Control/Rebirth` = true (Boolean, by
//! name, no alias) — never a DCMD.
//!
//! # Flags, quality, time
//!
//! `is_historical` samples carry `flags.historical` and never update live state (the per-metric
//! last timestamp and quality visible through [`Host::metric`]); `is_transient` is flagged.
//! Quality comes from the metric's `Quality` property (0 BAD, 192 GOOD, 500 STALE, others kept),
//! missing = GOOD; template members inherit their instance's. A sample's timestamp is the metric
//! timestamp, else the payload timestamp, else the receipt time; `received_at` is always set.
//!
//! # Limits
//!
//! Memory is bounded by what births declare and by the configuration: `max_nodes` (a node
//! without a session is evicted to make room for a new one; otherwise new nodes are refused),
//! `max_devices_per_node`, `max_metrics_per_node` (node + devices + template definitions; a
//! birth over the limit is refused without a rebirth request, which would only repeat it),
//! `max_buffered_per_node`; the global rebirth FIFO holds at most one entry per node. Overflow
//! is counted and rejected, never fatal. STATE, NCMD and DCMD are ignored (counted); an
//! unparseable topic is rejected.

mod config;
mod counters;
mod node;
mod rebirth;
mod sample;
mod seq;

use std::sync::Arc;

use foldhash::HashMap;

use crate::datatype::DataType;
use crate::payload::Payload;
use crate::topic::{MessageType, Topic};

pub use config::{HostConfig, RebirthMode};
pub use counters::HostCounters;
pub use rebirth::{REBIRTH_METRIC, rebirth_request};
pub use sample::{
    HostEvent, MetricSample, OfflineReason, Quality, RebirthReason, RebirthRequest, RejectReason,
    SampleFlags,
};

use node::{Cx, Msg, Node};
use rebirth::{Decision, GlobalLimiter};

/// A snapshot of one edge node, for health pages and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub online: bool,
    pub bd_seq: Option<u64>,
    /// The seq the next message must carry.
    pub next_seq: u8,
    pub devices_online: usize,
    /// Metrics held for the node, its devices and its template definitions.
    pub metrics: usize,
    /// Messages in the reorder buffer.
    pub buffered: usize,
    /// A rebirth request was sent and no NBIRTH has answered it yet.
    pub rebirth_outstanding: bool,
}

/// The live state the host keeps for one metric (from its birth and current DATA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricInfo {
    pub datatype: DataType,
    pub alias: Option<u64>,
    /// Timestamp of the last current (not historical, not late) value.
    pub last_timestamp: Option<u64>,
    pub quality: Quality,
}

/// How much the host holds, to check the limits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostUsage {
    pub nodes: usize,
    /// Metrics held over all nodes, devices and template definitions (the alias cache).
    pub metrics: usize,
    pub max_devices_in_a_node: usize,
    pub max_metrics_in_a_node: usize,
    pub max_buffered_in_a_node: usize,
    pub queued_rebirths: usize,
}

/// The host session state machine. See the [module documentation](self).
#[derive(Debug)]
pub struct Host {
    config: HostConfig,
    nodes: HashMap<Arc<str>, HashMap<Arc<str>, Node>>,
    node_count: usize,
    /// Nodes that may have a timer (reorder deadline or held rebirth).
    armed: Vec<(Arc<str>, Arc<str>)>,
    limiter: GlobalLimiter,
    counters: HostCounters,
}

impl Host {
    pub fn new(config: HostConfig) -> Host {
        Host {
            limiter: GlobalLimiter::new(config.global_rebirths_per_second),
            config,
            nodes: HashMap::default(),
            node_count: 0,
            armed: Vec::new(),
            counters: HostCounters::default(),
        }
    }

    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    pub fn counters(&self) -> &HostCounters {
        &self.counters
    }

    /// Before a shutdown: applies every message still waiting in a reorder buffer, in seq order
    /// (the missing ones will not come in time), so that nothing received is lost. No rebirth
    /// is requested. Counted as `reorder_flushed` per node.
    pub fn flush(&mut self, now_ms: u64, out: &mut Vec<HostEvent>) {
        let mut keys: Vec<(Arc<str>, Arc<str>)> = self
            .nodes
            .iter()
            .flat_map(|(g, m)| m.keys().map(move |e| (Arc::clone(g), Arc::clone(e))))
            .collect();
        // A fixed order, so that a replay gives the same output.
        keys.sort();
        for (g, e) in keys {
            let Some(node) = self.nodes.get_mut(&g).and_then(|m| m.get_mut(&e)) else {
                continue;
            };
            let mut cx = Cx {
                cfg: &self.config,
                counters: &mut self.counters,
                out: &mut *out,
                now: now_ms,
                rebirth: None,
            };
            node.flush_reorder(&mut cx);
        }
    }

    /// Handles one MQTT message received at `now_ms` (UTC ms); events are appended to `out`.
    pub fn handle(&mut self, topic: &str, payload: &[u8], now_ms: u64, out: &mut Vec<HostEvent>) {
        self.counters.messages += 1;
        let (group, kind, edge, device) = match Topic::parse(topic) {
            Err(e) => {
                self.counters.topic_invalid += 1;
                out.push(HostEvent::Rejected {
                    topic: topic.to_string(),
                    reason: e.into(),
                });
                return;
            }
            Ok(Topic::State { .. }) => {
                self.counters.state_ignored += 1;
                return;
            }
            Ok(Topic::Message {
                group,
                message_type,
                edge_node,
                device,
            }) => (group, message_type, edge_node, device),
        };
        match kind {
            MessageType::NCmd | MessageType::DCmd => self.counters.commands_ignored += 1,
            MessageType::NBirth => self.handle_nbirth(group, edge, topic, payload, now_ms, out),
            MessageType::NDeath => self.handle_ndeath(group, edge, topic, payload, now_ms, out),
            MessageType::DBirth | MessageType::NData | MessageType::DData | MessageType::DDeath => {
                self.handle_sequenced(group, edge, device, kind, topic, payload, now_ms, out)
            }
        }
    }

    /// Runs what is due at `now_ms`: reorder timeouts, held and queued rebirth requests.
    pub fn poll(&mut self, now_ms: u64, out: &mut Vec<HostEvent>) {
        for (g, e) in std::mem::take(&mut self.armed) {
            let Some(node) = self.nodes.get_mut(&g).and_then(|m| m.get_mut(&e)) else {
                continue;
            };
            node.armed = false;
            let mut cx = Cx {
                cfg: &self.config,
                counters: &mut self.counters,
                out,
                now: now_ms,
                rebirth: None,
            };
            node.poll_reorder(&mut cx);
            let wanted = cx.rebirth;
            let held = match node.rebirth.release_at(self.config.rebirth_throttle_ms) {
                Some(at) if at <= now_ms => node.rebirth.held.take(),
                _ => None,
            };
            if let Some(reason) = held {
                self.send_or_queue(&g, &e, reason, now_ms, out);
            }
            if let Some(reason) = wanted {
                self.request_rebirth(&g, &e, reason, now_ms, out);
            }
            self.arm(&g, &e);
        }
        self.release_queued(now_ms, out);
    }

    /// The earliest time at which [`poll`](Self::poll) has work, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        let nodes = self
            .armed
            .iter()
            .filter_map(|(g, e)| self.node_ref(g, e))
            .filter_map(|n| n.deadline(&self.config));
        nodes.chain(self.limiter.next_release()).min()
    }

    /// The broker connection is gone: every online node and device goes offline and every
    /// metric gets a STALE marker at `now_ms`; rebirth state is reset (the next session starts
    /// from nothing and asks again).
    pub fn connection_lost(&mut self, now_ms: u64, out: &mut Vec<HostEvent>) {
        self.counters.connection_losses += 1;
        let mut keys: Vec<(Arc<str>, Arc<str>)> = self
            .nodes
            .iter()
            .flat_map(|(g, m)| m.keys().map(move |e| (g.clone(), e.clone())))
            .collect();
        keys.sort();
        for (g, e) in keys {
            if let Some(node) = self.nodes.get_mut(&g).and_then(|m| m.get_mut(&e)) {
                let mut cx = Cx {
                    cfg: &self.config,
                    counters: &mut self.counters,
                    out,
                    now: now_ms,
                    rebirth: None,
                };
                node.end_session(now_ms, OfflineReason::ConnectionLost, &mut cx);
                node.rebirth = Default::default();
                node.armed = false;
            }
        }
        self.armed.clear();
        self.limiter.queue.clear();
    }

    /// A snapshot of one edge node.
    pub fn node(&self, group: &str, edge_node: &str) -> Option<NodeInfo> {
        let n = self.node_ref(group, edge_node)?;
        Some(NodeInfo {
            online: n.online,
            bd_seq: n.bd_seq,
            next_seq: n.expected,
            devices_online: n.devices.values().filter(|d| d.online).count(),
            metrics: n.metric_count(),
            buffered: n.reorder.len(),
            rebirth_outstanding: n.rebirth.outstanding,
        })
    }

    /// Whether a device is online (`None`: not known in the node's current session).
    pub fn device_online(&self, group: &str, edge_node: &str, device: &str) -> Option<bool> {
        self.node_ref(group, edge_node)?
            .devices
            .get(device)
            .map(|d| d.online)
    }

    /// The live state of a metric of the current birth (`device` `None` = a node metric).
    pub fn metric(
        &self,
        group: &str,
        edge_node: &str,
        device: Option<&str>,
        name: &str,
    ) -> Option<MetricInfo> {
        let n = self.node_ref(group, edge_node)?;
        let table = match device {
            None => &n.metrics,
            Some(d) => &n.devices.get(d)?.metrics,
        };
        let def = table.get(name)?;
        Some(MetricInfo {
            datatype: def.datatype,
            alias: def.alias,
            last_timestamp: def.last_timestamp,
            quality: def.quality,
        })
    }

    /// What the host currently holds, to check it against the limits.
    pub fn usage(&self) -> HostUsage {
        let mut u = HostUsage {
            nodes: self.node_count,
            queued_rebirths: self.limiter.queue.len(),
            ..HostUsage::default()
        };
        for n in self.nodes.values().flat_map(|m| m.values()) {
            u.max_devices_in_a_node = u.max_devices_in_a_node.max(n.devices.len());
            u.metrics += n.metric_count();
            u.max_metrics_in_a_node = u.max_metrics_in_a_node.max(n.metric_count());
            u.max_buffered_in_a_node = u.max_buffered_in_a_node.max(n.reorder.len());
        }
        u
    }

    // ---- message handlers ----

    fn handle_nbirth(
        &mut self,
        group: &str,
        edge: &str,
        topic: &str,
        bytes: &[u8],
        now: u64,
        out: &mut Vec<HostEvent>,
    ) {
        let decoded = Payload::decode(bytes);
        if decoded.is_err() {
            self.counters.decode_errors += 1;
        }
        let Some((g, e)) = self.node_or_create(group, edge) else {
            self.counters.limit_nodes += 1;
            out.push(HostEvent::Rejected {
                topic: topic.to_string(),
                reason: RejectReason::Limit("nodes"),
            });
            return;
        };
        let Some(node) = self.nodes.get_mut(&g).and_then(|m| m.get_mut(&e)) else {
            return;
        };
        let mut cx = Cx {
            cfg: &self.config,
            counters: &mut self.counters,
            out,
            now,
            rebirth: None,
        };
        match decoded {
            Ok(payload) => node.nbirth(topic, payload, &mut cx),
            Err(err) => node.reject_birth(topic, RejectReason::Decode(err), true, &mut cx),
        }
        if let Some(reason) = cx.rebirth {
            self.request_rebirth(&g, &e, reason, now, out);
        }
        self.arm(&g, &e);
    }

    fn handle_ndeath(
        &mut self,
        group: &str,
        edge: &str,
        topic: &str,
        bytes: &[u8],
        now: u64,
        out: &mut Vec<HostEvent>,
    ) {
        let payload = match Payload::decode(bytes) {
            Ok(p) => p,
            Err(err) => {
                self.counters.decode_errors += 1;
                out.push(HostEvent::Rejected {
                    topic: topic.to_string(),
                    reason: err.into(),
                });
                return;
            }
        };
        let Some(node) = self.nodes.get_mut(group).and_then(|m| m.get_mut(edge)) else {
            self.counters.node_deaths_ignored += 1;
            return;
        };
        if !node.online || node::bd_seq(&payload.metrics) != node.bd_seq {
            self.counters.node_deaths_ignored += 1;
            return;
        }
        self.counters.node_deaths += 1;
        let mut cx = Cx {
            cfg: &self.config,
            counters: &mut self.counters,
            out,
            now,
            rebirth: None,
        };
        node.end_session(now, OfflineReason::Death, &mut cx);
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_sequenced(
        &mut self,
        group: &str,
        edge: &str,
        device: Option<&str>,
        kind: MessageType,
        topic: &str,
        bytes: &[u8],
        now: u64,
        out: &mut Vec<HostEvent>,
    ) {
        let decoded = Payload::decode(bytes);
        let online = self.node_ref(group, edge).is_some_and(|n| n.online);
        if !online {
            if decoded.is_err() {
                self.counters.decode_errors += 1;
            }
            self.counters.unknown_node += 1;
            out.push(HostEvent::Rejected {
                topic: topic.to_string(),
                reason: RejectReason::UnknownNode,
            });
            if let Some((g, e)) = self.node_or_create(group, edge) {
                self.request_rebirth(&g, &e, RebirthReason::UnknownNode, now, out);
                self.arm(&g, &e);
            }
            return;
        }
        let malformed = if kind == MessageType::DBirth {
            RebirthReason::MalformedBirth
        } else {
            RebirthReason::MalformedData
        };
        let ask = kind == MessageType::DBirth || self.config.rebirth_on_malformed;
        let (payload, seq) = match decoded {
            Err(err) => {
                self.counters.decode_errors += 1;
                if kind == MessageType::DBirth {
                    self.counters.births_malformed += 1;
                }
                (Err(RejectReason::Decode(err)), 0)
            }
            Ok(p) => match p.seq.map(u8::try_from) {
                Some(Ok(s)) => (Ok(p), s),
                None => {
                    self.counters.seq_invalid += 1;
                    (Err(RejectReason::MissingSeq), 0)
                }
                Some(Err(_)) => {
                    self.counters.seq_invalid += 1;
                    (
                        Err(RejectReason::SeqOutOfRange(p.seq.unwrap_or_default())),
                        0,
                    )
                }
            },
        };
        let Some(node) = self.nodes.get_mut(group).and_then(|m| m.get_mut(edge)) else {
            return;
        };
        let (g, e) = (node.group.clone(), node.edge_node.clone());
        let payload = match payload {
            Ok(p) => p,
            Err(reason) => {
                out.push(HostEvent::Rejected {
                    topic: topic.to_string(),
                    reason,
                });
                if ask {
                    self.request_rebirth(&g, &e, malformed, now, out);
                    self.arm(&g, &e);
                }
                return;
            }
        };
        let device = device.map(|d| match node.devices.get_key_value(d) {
            Some((k, _)) => k.clone(),
            None => Arc::from(d),
        });
        let msg = Msg {
            kind,
            device,
            topic: topic.to_string(),
            payload,
            seq,
            received_at: now,
        };
        let mut cx = Cx {
            cfg: &self.config,
            counters: &mut self.counters,
            out,
            now,
            rebirth: None,
        };
        node.deliver(msg, &mut cx);
        let wanted = cx.rebirth;
        if let Some(reason) = wanted {
            self.request_rebirth(&g, &e, reason, now, out);
        }
        self.arm(&g, &e);
    }

    // ---- nodes ----

    fn node_ref(&self, group: &str, edge: &str) -> Option<&Node> {
        self.nodes.get(group)?.get(edge)
    }

    /// The node's interned keys, creating a node without a session if needed (making room by
    /// evicting one without a session and without timers). `None` when the table is full.
    fn node_or_create(&mut self, group: &str, edge: &str) -> Option<(Arc<str>, Arc<str>)> {
        if let Some(n) = self.node_ref(group, edge) {
            return Some((n.group.clone(), n.edge_node.clone()));
        }
        if self.node_count >= self.config.max_nodes && !self.evict_one() {
            return None;
        }
        let g: Arc<str> = match self.nodes.get_key_value(group) {
            Some((k, _)) => k.clone(),
            None => Arc::from(group),
        };
        let e: Arc<str> = Arc::from(edge);
        self.nodes
            .entry(g.clone())
            .or_default()
            .insert(e.clone(), Node::new(g.clone(), e.clone()));
        self.node_count += 1;
        Some((g, e))
    }

    fn evict_one(&mut self) -> bool {
        let victim = self.nodes.iter().find_map(|(g, m)| {
            m.iter()
                .find(|(_, n)| !n.online && !n.armed && !n.rebirth.queued && n.reorder.is_empty())
                .map(|(e, _)| (g.clone(), e.clone()))
        });
        let Some((g, e)) = victim else {
            return false;
        };
        if let Some(m) = self.nodes.get_mut(&g) {
            m.remove(&e);
            if m.is_empty() {
                self.nodes.remove(&g);
            }
        }
        self.node_count = self.node_count.saturating_sub(1);
        self.counters.nodes_evicted += 1;
        true
    }

    /// Puts a node on the timer list if it has a deadline.
    fn arm(&mut self, g: &Arc<str>, e: &Arc<str>) {
        let cfg = &self.config;
        if let Some(node) = self.nodes.get_mut(g).and_then(|m| m.get_mut(e))
            && !node.armed
            && node.deadline(cfg).is_some()
        {
            node.armed = true;
            self.armed.push((g.clone(), e.clone()));
        }
    }

    // ---- rebirth ----

    fn request_rebirth(
        &mut self,
        g: &Arc<str>,
        e: &Arc<str>,
        reason: RebirthReason,
        now: u64,
        out: &mut Vec<HostEvent>,
    ) {
        self.counters.rebirth_triggers += 1;
        if self.config.rebirth_mode == RebirthMode::Off {
            self.counters.rebirth_disabled += 1;
            return;
        }
        let throttle = self.config.rebirth_throttle_ms;
        let Some(node) = self.nodes.get_mut(g).and_then(|m| m.get_mut(e)) else {
            return;
        };
        match node.rebirth.decide(reason, now, throttle) {
            Decision::Suppressed => self.counters.rebirth_suppressed += 1,
            Decision::Throttled => self.counters.rebirth_throttled += 1,
            Decision::Send => self.send_or_queue(g, e, reason, now, out),
        }
    }

    /// Sends now if the global bucket has a token, else queues (one entry per node).
    fn send_or_queue(
        &mut self,
        g: &Arc<str>,
        e: &Arc<str>,
        reason: RebirthReason,
        now: u64,
        out: &mut Vec<HostEvent>,
    ) {
        let Some(node) = self.nodes.get_mut(g).and_then(|m| m.get_mut(e)) else {
            return;
        };
        if node.rebirth.queued {
            self.counters.rebirth_suppressed += 1;
        } else if self.limiter.try_take(now) {
            Self::emit_rebirth(node, reason, now, &mut self.counters, out);
        } else {
            node.rebirth.queued = true;
            // Entries of nodes that were answered or evicted meanwhile are dropped, so the
            // queue holds at most one entry per node.
            let nodes = &self.nodes;
            self.limiter.queue.retain(|(qg, qe, _)| {
                nodes
                    .get(qg)
                    .and_then(|m| m.get(qe))
                    .is_some_and(|n| n.rebirth.queued && !(qg == g && qe == e))
            });
            self.limiter.queue.push_back((g.clone(), e.clone(), reason));
            self.counters.rebirth_deferred += 1;
        }
    }

    fn emit_rebirth(
        node: &mut Node,
        reason: RebirthReason,
        now: u64,
        counters: &mut HostCounters,
        out: &mut Vec<HostEvent>,
    ) {
        // Encoding one Boolean metric cannot fail; if it ever did, nothing is sent and the
        // next trigger tries again.
        if let Ok(req) = rebirth_request(&node.group, &node.edge_node, reason, now) {
            node.rebirth.sent(now);
            counters.rebirth_requests += 1;
            out.push(HostEvent::Rebirth(req));
        }
    }

    fn release_queued(&mut self, now: u64, out: &mut Vec<HostEvent>) {
        while let Some((g, e, reason)) = self.limiter.queue.front().cloned() {
            let waiting = self.node_ref(&g, &e).is_some_and(|n| n.rebirth.queued);
            if waiting && !self.limiter.try_take(now) {
                break;
            }
            self.limiter.queue.pop_front();
            if !waiting {
                continue;
            }
            if let Some(node) = self.nodes.get_mut(&g).and_then(|m| m.get_mut(&e)) {
                Self::emit_rebirth(node, reason, now, &mut self.counters, out);
            }
        }
    }
}
