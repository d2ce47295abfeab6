//! A small plant as plain, deterministic code: edge nodes with machines (Sparkplug devices) that
//! produce parts, stop, fault, change over, take planned breaks and report temperatures (°F) and
//! pressures (psi). The model never reads the clock: it is stepped with simulated time
//! ([`Simulator::advance`]) and seeded ([`SimConfig::seed`]), so the same configuration always
//! produces byte-identical MQTT messages.
//!
//! What it sends, per edge node (one MQTT session each):
//! - NBIRTH (seq 0, `bdSeq`, `Node Control/Rebirth`) and one DBIRTH per machine with names,
//!   aliases, datatypes and an `engUnit` property; the session's Will is an NDEATH with the same
//!   `bdSeq`.
//! - DDATA by alias only (no names), seq 0–255 wrapping, on every state change and every
//!   [`SimConfig::report_every_ms`] of simulated time.
//! - A rebirth NCMD is answered with NBIRTH + DBIRTHs ([`Simulator::rebirth`]).
//! - With [`SimConfig::node_deaths`], the second edge node dies now and then (NDEATH with its
//!   `bdSeq`, disconnect) and comes back a few minutes later (new session, `bdSeq` + 1).

use fastrand::Rng;
use sparkplug::topic::message_topic;
use sparkplug::{
    DataType, MessageType, Metric, MetricValue, Payload, PropertySet, PropertyValue, Value,
};

/// The Sparkplug group of the simulated plant.
pub const GROUP: &str = "DemoPlant";

/// `state.code` values the machines report (the demo configuration maps them to categories).
pub mod codes {
    /// Producing.
    pub const RUNNING: i32 = 1;
    /// Changeover (setup).
    pub const SETUP: i32 = 101;
    /// Short unplanned stop (jam, waiting for material).
    pub const MICRO_STOP: i32 = 201;
    /// Stopped by a fault (see `Fault/Code`).
    pub const FAULT_STOP: i32 = 210;
    /// Planned break (the shift calendar's breaks).
    pub const PLANNED_BREAK: i32 = 301;
}

/// Fault codes: (code, mean duration in seconds). 2001 (door open) is not a failure in the demo
/// configuration.
const FAULTS: [(i32, u64); 4] = [(1001, 240), (1002, 420), (1003, 120), (2001, 60)];

/// The simulated time of day (UTC, seconds) at which planned breaks of 15 minutes start: one
/// per shift of the demo calendar.
pub const BREAKS_UTC_S: [u64; 3] = [10 * 3600, 18 * 3600, 2 * 3600];
const BREAK_LEN_S: u64 = 15 * 60;

/// The model's time step (simulated ms): one second, or the report interval when machines
/// report more often (load tests), in multiples of the driver's 50 ms tick.
fn step_ms(report_every_ms: u64) -> u64 {
    (report_every_ms / 50 * 50).clamp(50, 1_000)
}

/// Machine names of the first two lines; more machines are called `M<n>`.
const NAMES: [[&str; 3]; 2] = [
    ["Filler", "Capper", "Labeler"],
    ["Mixer", "Press", "Packer"],
];

/// Ideal cycle times in seconds of the named machines (the demo configuration lists them).
pub const IDEAL_CYCLE_S: [[f64; 3]; 2] = [[2.0, 2.5, 3.0], [6.0, 4.0, 5.0]];

/// How the plant looks.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub group: String,
    pub nodes: usize,
    pub devices_per_node: usize,
    pub seed: u64,
    /// Simulated time at the start, ms since the Unix epoch.
    pub start_ms: u64,
    /// Each machine sends a DDATA at least this often (simulated ms).
    pub report_every_ms: u64,
    /// Whether the second edge node dies and comes back now and then.
    pub node_deaths: bool,
    /// Every DDATA carries all 8 metrics of its machine, not only those that changed since
    /// the last one (load tests: a fixed number of samples per message).
    pub all_metrics: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            group: GROUP.to_string(),
            nodes: 2,
            devices_per_node: 3,
            seed: 1,
            start_ms: 1_767_225_600_000, // 2026-01-01T00:00:00Z
            report_every_ms: 2_000,
            node_deaths: true,
            all_metrics: false,
        }
    }
}

/// What the simulator asks its driver to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Open node `node`'s MQTT session with this Will (an NDEATH), before its NBIRTH.
    Connect {
        node: usize,
        will_topic: String,
        will_payload: Vec<u8>,
    },
    /// Publish on node `node`'s session.
    Publish {
        node: usize,
        topic: String,
        payload: Vec<u8>,
    },
    /// Close node `node`'s session (after its NDEATH).
    Disconnect { node: usize },
}

impl Output {
    pub fn node(&self) -> usize {
        match self {
            Output::Connect { node, .. }
            | Output::Publish { node, .. }
            | Output::Disconnect { node } => *node,
        }
    }
}

/// The metrics of a machine, in alias order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum M {
    Total,
    Good,
    Reject,
    Running,
    StateCode,
    FaultCode,
    Temperature,
    Pressure,
}

const METRICS: [(M, &str, DataType, Option<&str>); 8] = [
    (M::Total, "Counters/Total", DataType::UInt16, None),
    (M::Good, "Counters/Good", DataType::UInt16, None),
    (M::Reject, "Counters/Reject", DataType::UInt16, None),
    (M::Running, "State/Running", DataType::Boolean, None),
    (M::StateCode, "State/Code", DataType::Int32, None),
    (M::FaultCode, "Fault/Code", DataType::Int32, None),
    (
        M::Temperature,
        "Process/Temperature",
        DataType::Float,
        Some("°F"),
    ),
    (
        M::Pressure,
        "Process/Pressure",
        DataType::Float,
        Some("psi"),
    ),
];

/// Machine metric aliases: `DEVICE_ALIAS_BASE + device × 16 + metric index` (unique per node).
const DEVICE_ALIAS_BASE: u64 = 100;
const ALIAS_BD_SEQ: u64 = 1;
const ALIAS_REBIRTH: u64 = 2;

#[derive(Clone, Debug)]
struct Machine {
    name: String,
    ideal_cycle_s: f64,
    total: u16,
    good: u16,
    reject: u16,
    reject_rate: f64,
    /// Fraction of a part in progress.
    progress: f64,
    code: i32,
    fault: i32,
    /// When the current stop/setup/fault ends (simulated ms).
    until_ms: u64,
    /// A fault that re-raises: (code, at ms).
    reraise: Option<(i32, u64)>,
    next_setup_ms: u64,
    temperature_f: f64,
    base_temperature_f: f64,
    pressure_psi: f64,
    base_pressure_psi: f64,
    next_report_ms: u64,
    /// Last values sent, for report by exception (`None` before the first DDATA after a birth).
    sent: Option<[Value; 8]>,
}

#[derive(Clone, Debug)]
struct Node {
    id: String,
    bd_seq: u64,
    seq: u8,
    online: bool,
    /// Dead node: when it comes back; live node: when it dies (if it ever does).
    next_change_ms: Option<u64>,
    machines: Vec<Machine>,
}

/// The plant.
pub struct Simulator {
    cfg: SimConfig,
    rng: Rng,
    now_ms: u64,
    nodes: Vec<Node>,
    started: bool,
    /// Metrics put into DDATA messages so far (for load tests).
    ddata_metrics: u64,
}

impl Simulator {
    pub fn new(cfg: SimConfig) -> Simulator {
        let mut rng = Rng::with_seed(cfg.seed);
        let now_ms = cfg.start_ms;
        let nodes = (0..cfg.nodes)
            .map(|n| {
                let machines = (0..cfg.devices_per_node)
                    .map(|d| {
                        let (name, ideal) = match (
                            NAMES.get(n).and_then(|l| l.get(d)),
                            IDEAL_CYCLE_S.get(n).and_then(|l| l.get(d)),
                        ) {
                            (Some(name), Some(ct)) => ((*name).to_string(), *ct),
                            _ => (format!("M{}", d + 1), 2.0 + (d % 5) as f64),
                        };
                        let total = 60_000 + rng.u16(0..5_000);
                        let reject = rng.u16(0..500);
                        let base_t = 150.0 + rng.f64() * 30.0;
                        let base_p = 40.0 + rng.f64() * 50.0;
                        Machine {
                            name,
                            ideal_cycle_s: ideal,
                            total,
                            good: total.wrapping_sub(reject),
                            reject,
                            reject_rate: 0.005 + rng.f64() * 0.03,
                            progress: 0.0,
                            code: codes::RUNNING,
                            fault: 0,
                            until_ms: 0,
                            reraise: None,
                            next_setup_ms: now_ms + rng.u64(30 * 60_000..150 * 60_000),
                            temperature_f: base_t,
                            base_temperature_f: base_t,
                            pressure_psi: base_p,
                            base_pressure_psi: base_p,
                            next_report_ms: now_ms + rng.u64(0..cfg.report_every_ms.max(1)),
                            sent: None,
                        }
                    })
                    .collect();
                let next_change_ms =
                    (cfg.node_deaths && n == 1).then(|| now_ms + rng.u64(10 * 60_000..30 * 60_000));
                Node {
                    id: format!("Line{}", n + 1),
                    bd_seq: 0,
                    seq: 0,
                    online: false,
                    next_change_ms,
                    machines,
                }
            })
            .collect();
        Simulator {
            cfg,
            rng,
            now_ms,
            nodes,
            started: false,
            ddata_metrics: 0,
        }
    }

    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Simulated time, ms since the epoch.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Metrics put into DDATA messages so far.
    pub fn ddata_metrics(&self) -> u64 {
        self.ddata_metrics
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn machine_count(&self) -> usize {
        self.nodes.iter().map(|n| n.machines.len()).sum()
    }

    /// The edge node id of node `i`.
    pub fn node_id(&self, i: usize) -> &str {
        &self.nodes[i].id
    }

    /// Machine (device) ids per node.
    pub fn machines(&self, i: usize) -> Vec<&str> {
        self.nodes[i]
            .machines
            .iter()
            .map(|m| m.name.as_str())
            .collect()
    }

    /// The node index of an edge node id.
    pub fn node_index(&self, edge_node: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == edge_node)
    }

    pub fn is_online(&self, i: usize) -> bool {
        self.nodes[i].online
    }

    /// Opens every node's session and sends its births.
    pub fn start(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        if self.started {
            return out;
        }
        self.started = true;
        for n in 0..self.nodes.len() {
            self.connect(n, &mut out);
        }
        out
    }

    /// Answers a rebirth request (NCMD `Node Control/Rebirth`): NBIRTH and DBIRTHs with the
    /// current values, same `bdSeq`. Nothing when the node is offline.
    pub fn rebirth(&mut self, node: usize) -> Vec<Output> {
        let mut out = Vec::new();
        if node < self.nodes.len() && self.nodes[node].online {
            self.births(node, &mut out);
        }
        out
    }

    /// The node's MQTT session was lost (the broker published its Will, the NDEATH of the
    /// current bdSeq): a new session with the next bdSeq (its Will updated) and new births.
    /// Nothing when the node is offline.
    pub fn reconnect(&mut self, node: usize) -> Vec<Output> {
        let mut out = Vec::new();
        if let Some(n) = self.nodes.get_mut(node).filter(|n| n.online) {
            n.online = false;
            n.bd_seq = (n.bd_seq + 1) % 256;
            self.connect(node, &mut out);
        }
        out
    }

    /// A clean stop: every online node sends its NDEATH and closes its session.
    pub fn shutdown(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        for n in 0..self.nodes.len() {
            if self.nodes[n].online {
                self.die(n, &mut out);
            }
        }
        out
    }

    /// Runs the plant up to `to_ms` (simulated) in whole steps (see [`step_ms`]); a rest
    /// shorter than a step waits for the next call. So the plant's history depends on the seed and
    /// the start time only, never on how a driver's wall-clock ticks happen to fall.
    pub fn advance(&mut self, to_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        if !self.started {
            out = self.start();
        }
        let step = step_ms(self.cfg.report_every_ms);
        while self.now_ms + step <= to_ms {
            self.now_ms += step;
            self.step(step, &mut out);
        }
        out
    }

    /// One step to `to_ms` (at least 1 ms; a `to_ms` in the past or present steps 1 ms), for
    /// `bench --rate max`, whose driver steps as fast as it can publish (at most once per
    /// millisecond of the clock). With `report_every_ms` = 1 every online machine reports at
    /// every step. Unlike [`Simulator::advance`], the history then depends on how the steps
    /// fall, so only load tests use it.
    pub fn advance_one(&mut self, to_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        if !self.started {
            out = self.start();
        }
        let step = to_ms.saturating_sub(self.now_ms).max(1);
        self.now_ms += step;
        self.step(step, &mut out);
        out
    }

    fn step(&mut self, dt_ms: u64, out: &mut Vec<Output>) {
        let now = self.now_ms;
        for n in 0..self.nodes.len() {
            if let Some(at) = self.nodes[n].next_change_ms
                && now >= at
            {
                if self.nodes[n].online {
                    self.die(n, out);
                    self.nodes[n].next_change_ms = Some(now + self.rng.u64(60_000..180_000));
                } else {
                    self.connect(n, out);
                    self.nodes[n].next_change_ms =
                        Some(now + self.rng.u64(20 * 60_000..45 * 60_000));
                }
            }
            for d in 0..self.nodes[n].machines.len() {
                let changed = self.step_machine(n, d, dt_ms);
                let m = &self.nodes[n].machines[d];
                if self.nodes[n].online && (changed || now >= m.next_report_ms) {
                    self.report(n, d, out);
                }
            }
        }
    }

    /// Advances one machine; true when its state or fault changed.
    fn step_machine(&mut self, n: usize, d: usize, dt_ms: u64) -> bool {
        let now = self.now_ms;
        let rng = &mut self.rng;
        let m = &mut self.nodes[n].machines[d];
        let (code0, fault0) = (m.code, m.fault);
        let in_break = in_planned_break(now);
        let dt_s = dt_ms as f64 / 1000.0;

        // State transitions.
        if in_break {
            if m.code != codes::PLANNED_BREAK && m.fault == 0 {
                m.code = codes::PLANNED_BREAK;
            }
        } else if m.code == codes::PLANNED_BREAK {
            m.code = codes::RUNNING;
        }
        if m.fault != 0 && now >= m.until_ms {
            // The fault clears; some re-raise within five minutes (the fault tracker merges them).
            if rng.f64() < 0.4 {
                m.reraise = Some((m.fault, now + rng.u64(20_000..240_000)));
            }
            m.fault = 0;
            m.code = if in_break {
                codes::PLANNED_BREAK
            } else {
                codes::RUNNING
            };
        }
        if (m.code == codes::MICRO_STOP || m.code == codes::SETUP) && now >= m.until_ms {
            if m.code == codes::SETUP && rng.bool() {
                // The PLC resets its counters after some changeovers.
                m.total = 0;
                m.good = 0;
                m.reject = 0;
            }
            m.code = codes::RUNNING;
        }
        if m.code == codes::RUNNING {
            let hazard = |per_hour: f64| per_hour * dt_s / 3600.0;
            let reraise = m.reraise.filter(|&(_, at)| now >= at);
            if let Some((code, _)) = reraise {
                m.reraise = None;
                m.fault = code;
                m.code = codes::FAULT_STOP;
                m.until_ms = now + rng.u64(30_000..150_000);
            } else if rng.f64() < hazard(0.6) {
                let (code, mean_s) = FAULTS[rng.usize(0..FAULTS.len())];
                m.fault = code;
                m.code = codes::FAULT_STOP;
                m.until_ms = now + rng.u64(mean_s * 500..mean_s * 1500);
            } else if rng.f64() < hazard(4.0) {
                m.code = codes::MICRO_STOP;
                m.until_ms = now + rng.u64(10_000..90_000);
            } else if now >= m.next_setup_ms {
                m.code = codes::SETUP;
                m.until_ms = now + rng.u64(5 * 60_000..15 * 60_000);
                m.next_setup_ms = now + rng.u64(90 * 60_000..180 * 60_000);
            }
        }

        // Production.
        if m.code == codes::RUNNING {
            let actual = m.ideal_cycle_s * (1.08 + rng.f64() * 0.12);
            m.progress += dt_s / actual;
            while m.progress >= 1.0 {
                m.progress -= 1.0;
                m.total = m.total.wrapping_add(1);
                if rng.f64() < m.reject_rate {
                    m.reject = m.reject.wrapping_add(1);
                } else {
                    m.good = m.good.wrapping_add(1);
                }
            }
        }

        // Process values: relax towards the set point, hotter under fault 1001 (overheat).
        let running = m.code == codes::RUNNING;
        let target_t = if m.fault == 1001 {
            m.base_temperature_f + 45.0
        } else if running {
            m.base_temperature_f
        } else {
            m.base_temperature_f - 20.0
        };
        let k = (dt_s / 60.0).min(1.0);
        m.temperature_f += (target_t - m.temperature_f) * k + (rng.f64() - 0.5) * 0.8;
        let target_p = if running { m.base_pressure_psi } else { 14.7 };
        m.pressure_psi +=
            (target_p - m.pressure_psi) * (dt_s / 10.0).min(1.0) + (rng.f64() - 0.5) * 0.5;

        m.code != code0 || m.fault != fault0
    }

    fn values(m: &Machine) -> [Value; 8] {
        [
            Value::UInt16(m.total),
            Value::UInt16(m.good),
            Value::UInt16(m.reject),
            Value::Boolean(m.code == codes::RUNNING),
            Value::Int32(m.code),
            Value::Int32(m.fault),
            Value::Float(round2(m.temperature_f) as f32),
            Value::Float(round2(m.pressure_psi) as f32),
        ]
    }

    /// A DDATA by alias with what changed since the last one (process values always).
    fn report(&mut self, n: usize, d: usize, out: &mut Vec<Output>) {
        let now = self.now_ms;
        let every = self.cfg.report_every_ms.max(1);
        let all = self.cfg.all_metrics;
        let node = &mut self.nodes[n];
        let m = &mut node.machines[d];
        let values = Self::values(m);
        let metrics: Vec<Metric> = values
            .iter()
            .enumerate()
            .filter(|(i, v)| all || *i >= 6 || m.sent.as_ref().is_none_or(|s| s[*i] != **v))
            .map(|(i, v)| Metric {
                alias: Some(device_alias(d, i)),
                timestamp: Some(now),
                datatype: Some(METRICS[i].2),
                value: MetricValue::Value(v.clone()),
                ..Metric::default()
            })
            .collect();
        self.ddata_metrics += metrics.len() as u64;
        m.sent = Some(values);
        m.next_report_ms = now + every;
        let topic = message_topic(&self.cfg.group, MessageType::DData, &node.id, Some(&m.name));
        let payload = encode(Payload {
            timestamp: Some(now),
            metrics,
            seq: Some(next_seq(&mut node.seq)),
            ..Payload::default()
        });
        out.push(Output::Publish {
            node: n,
            topic,
            payload,
        });
    }

    fn connect(&mut self, n: usize, out: &mut Vec<Output>) {
        let now = self.now_ms;
        let node = &mut self.nodes[n];
        if node.online {
            return;
        }
        node.online = true;
        let will_topic = message_topic(&self.cfg.group, MessageType::NDeath, &node.id, None);
        let will_payload = ndeath(node.bd_seq, now);
        out.push(Output::Connect {
            node: n,
            will_topic,
            will_payload,
        });
        self.births(n, out);
    }

    fn die(&mut self, n: usize, out: &mut Vec<Output>) {
        let now = self.now_ms;
        let node = &mut self.nodes[n];
        node.online = false;
        out.push(Output::Publish {
            node: n,
            topic: message_topic(&self.cfg.group, MessageType::NDeath, &node.id, None),
            payload: ndeath(node.bd_seq, now),
        });
        out.push(Output::Disconnect { node: n });
        // The next session announces the next bdSeq (0–255).
        node.bd_seq = (node.bd_seq + 1) % 256;
    }

    fn births(&mut self, n: usize, out: &mut Vec<Output>) {
        let now = self.now_ms;
        let group = self.cfg.group.clone();
        let node = &mut self.nodes[n];
        node.seq = 0;
        let nbirth = Payload {
            timestamp: Some(now),
            seq: Some(next_seq(&mut node.seq)),
            metrics: vec![
                named("bdSeq", ALIAS_BD_SEQ, now, Value::UInt64(node.bd_seq), None),
                named(
                    "Node Control/Rebirth",
                    ALIAS_REBIRTH,
                    now,
                    Value::Boolean(false),
                    None,
                ),
            ],
            ..Payload::default()
        };
        out.push(Output::Publish {
            node: n,
            topic: message_topic(&group, MessageType::NBirth, &node.id, None),
            payload: encode(nbirth),
        });
        for d in 0..node.machines.len() {
            let m = &mut node.machines[d];
            let values = Self::values(m);
            let metrics = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    named(
                        METRICS[i].1,
                        device_alias(d, i),
                        now,
                        v.clone(),
                        METRICS[i].3,
                    )
                })
                .collect();
            m.sent = Some(values);
            let payload = Payload {
                timestamp: Some(now),
                seq: Some(next_seq(&mut node.seq)),
                metrics,
                ..Payload::default()
            };
            out.push(Output::Publish {
                node: n,
                topic: message_topic(&group, MessageType::DBirth, &node.id, Some(&m.name)),
                payload: encode(payload),
            });
        }
    }
}

/// Whether simulated time `ms` falls in one of the planned breaks ([`BREAKS_UTC_S`]).
pub fn in_planned_break(ms: u64) -> bool {
    let tod = (ms / 1000) % 86_400;
    BREAKS_UTC_S
        .iter()
        .any(|&b| tod >= b && tod < b + BREAK_LEN_S)
}

fn device_alias(d: usize, metric: usize) -> u64 {
    DEVICE_ALIAS_BASE + d as u64 * 16 + metric as u64
}

fn next_seq(seq: &mut u8) -> u64 {
    let s = *seq;
    *seq = seq.wrapping_add(1);
    u64::from(s)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn named(name: &str, alias: u64, ts: u64, v: Value, unit: Option<&str>) -> Metric {
    Metric {
        name: Some(name.to_string()),
        alias: Some(alias),
        timestamp: Some(ts),
        datatype: Some(v.datatype()),
        properties: unit.map(|u| {
            PropertySet(vec![(
                "engUnit".to_string(),
                PropertyValue {
                    datatype: Some(DataType::String),
                    value: MetricValue::Value(Value::String(u.to_string())),
                },
            )])
        }),
        value: MetricValue::Value(v),
        ..Metric::default()
    }
}

fn ndeath(bd_seq: u64, ts: u64) -> Vec<u8> {
    encode(Payload {
        timestamp: Some(ts),
        metrics: vec![named(
            "bdSeq",
            ALIAS_BD_SEQ,
            ts,
            Value::UInt64(bd_seq),
            None,
        )],
        ..Payload::default()
    })
}

fn encode(p: Payload) -> Vec<u8> {
    // Every value is built from its own datatype: encoding cannot fail.
    p.encode().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sparkplug::Topic;

    use super::*;

    fn run(seed: u64, minutes: u64) -> Vec<Output> {
        let cfg = SimConfig {
            seed,
            ..SimConfig::default()
        };
        let start = cfg.start_ms;
        let mut sim = Simulator::new(cfg);
        let mut out = sim.start();
        for s in 1..=minutes * 6 {
            out.extend(sim.advance(start + s * 10_000));
        }
        out
    }

    #[test]
    fn history_does_not_depend_on_how_time_is_advanced() {
        // A driver advances by whatever its wall-clock ticks measured (3 012 ms, 2 987 ms, …).
        let cfg = SimConfig::default();
        let start = cfg.start_ms;
        let mut sim = Simulator::new(cfg);
        let mut out = sim.start();
        let mut t = start;
        let mut k = 0u64;
        while t < start + 10 * 60_000 {
            k += 1;
            t = (t + 2_950 + k * 37 % 113).min(start + 10 * 60_000);
            out.extend(sim.advance(t));
        }
        assert_eq!(out, run(1, 10));
    }

    #[test]
    fn machines_report_as_often_as_asked_down_to_the_50_ms_tick() {
        // A load test asks for 20 messages/s per machine: the model must step that finely.
        let cfg = SimConfig {
            nodes: 1,
            devices_per_node: 2,
            report_every_ms: 50,
            node_deaths: false,
            ..SimConfig::default()
        };
        let start = cfg.start_ms;
        let mut sim = Simulator::new(cfg);
        sim.start();
        let ddata = sim
            .advance(start + 10_000)
            .iter()
            .filter(|o| matches!(o, Output::Publish { topic, .. } if topic.contains("/DDATA/")))
            .count();
        assert_eq!(ddata, 2 * 10 * 20);
    }

    #[test]
    fn advance_one_reports_every_machine_with_all_metrics_and_rising_timestamps() {
        let cfg = SimConfig {
            nodes: 2,
            devices_per_node: 3,
            report_every_ms: 1,
            node_deaths: false,
            all_metrics: true,
            ..SimConfig::default()
        };
        let start = cfg.start_ms;
        let mut sim = Simulator::new(cfg);
        sim.start();
        // A step to the present or the past still moves on by 1 ms.
        for (to, now) in [
            (start + 5, start + 5),
            (start, start + 6),
            (start + 20, start + 20),
        ] {
            let out = sim.advance_one(to);
            assert_eq!(sim.now_ms(), now);
            let ddata: Vec<_> = publishes(&out)
                .into_iter()
                .filter(|(t, _)| t.contains("/DDATA/"))
                .collect();
            assert_eq!(ddata.len(), 6);
            for (_, p) in ddata {
                assert_eq!(p.metrics.len(), 8);
                assert_eq!(p.timestamp, Some(now));
            }
        }
        assert_eq!(sim.ddata_metrics(), 3 * 6 * 8);
    }

    fn publishes(out: &[Output]) -> Vec<(&str, Payload)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Publish { topic, payload, .. } => {
                    Some((topic.as_str(), Payload::decode(payload).unwrap()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn same_seed_same_bytes() {
        let a = run(7, 30);
        let b = run(7, 30);
        assert!(a.len() > 1000, "{}", a.len());
        assert_eq!(a, b);
        assert_ne!(a, run(8, 30));
    }

    #[test]
    fn births_decode_with_names_aliases_datatypes_and_units() {
        let mut sim = Simulator::new(SimConfig::default());
        let out = sim.start();
        assert!(
            matches!(&out[0], Output::Connect { node: 0, will_topic, .. } if will_topic == "spBv1.0/DemoPlant/NDEATH/Line1")
        );
        let p = publishes(&out);
        assert_eq!(p.len(), 2 * (1 + 3));
        let (topic, nbirth) = &p[0];
        assert_eq!(*topic, "spBv1.0/DemoPlant/NBIRTH/Line1");
        assert_eq!(nbirth.seq, Some(0));
        let bd = nbirth
            .metrics
            .iter()
            .find(|m| m.name.as_deref() == Some("bdSeq"))
            .unwrap();
        assert_eq!(bd.value.as_value(), Some(&Value::UInt64(0)));
        let (topic, dbirth) = &p[1];
        assert_eq!(*topic, "spBv1.0/DemoPlant/DBIRTH/Line1/Filler");
        assert_eq!(dbirth.seq, Some(1));
        assert_eq!(dbirth.metrics.len(), 8);
        let temp = dbirth
            .metrics
            .iter()
            .find(|m| m.name.as_deref() == Some("Process/Temperature"))
            .unwrap();
        assert_eq!(temp.datatype, Some(DataType::Float));
        assert!(temp.alias.is_some());
        let unit = temp.properties.as_ref().unwrap().get("engUnit").unwrap();
        assert_eq!(unit.value.as_value(), Some(&Value::String("°F".into())));
        let total = dbirth
            .metrics
            .iter()
            .find(|m| m.name.as_deref() == Some("Counters/Total"))
            .unwrap();
        assert_eq!(total.datatype, Some(DataType::UInt16));
        for (t, _) in &p {
            Topic::parse(t).unwrap();
        }
    }

    #[test]
    fn ddata_is_alias_only_and_seq_wraps() {
        let out = run(3, 20);
        let mut last: std::collections::HashMap<String, u64> = Default::default();
        let mut wrapped = false;
        for (topic, p) in publishes(&out) {
            let Ok(Topic::Message {
                message_type,
                edge_node,
                ..
            }) = Topic::parse(topic)
            else {
                panic!("{topic}");
            };
            if message_type == MessageType::DData {
                assert!(
                    p.metrics
                        .iter()
                        .all(|m| m.name.is_none() && m.alias.is_some())
                );
            }
            if message_type == MessageType::NDeath {
                assert!(p.seq.is_none());
                last.remove(edge_node);
                continue;
            }
            let seq = p.seq.unwrap();
            if message_type == MessageType::NBirth {
                assert_eq!(seq, 0);
            } else {
                let prev = last[edge_node];
                assert_eq!(seq, (prev + 1) % 256, "{topic}");
                wrapped |= seq == 0;
            }
            last.insert(edge_node.to_string(), seq);
        }
        assert!(wrapped);
    }

    #[test]
    fn counters_roll_over_and_reset() {
        let out = run(11, 240);
        let mut prev: std::collections::HashMap<(String, u64), u16> = Default::default();
        let (mut rollovers, mut resets) = (0, 0);
        for (topic, p) in publishes(&out) {
            for m in &p.metrics {
                let (Some(alias), Some(Value::UInt16(v))) = (m.alias, m.value.as_value()) else {
                    continue;
                };
                if alias % 16 != 4 {
                    // Counters/Total is metric 0: alias = 100 + d*16 (100 % 16 == 4).
                    continue;
                }
                let key = (topic.replace("DBIRTH", "DDATA"), alias);
                if let Some(&p) = prev.get(&key)
                    && *v < p
                {
                    if p > 60_000 && *v < 1_000 {
                        rollovers += 1
                    } else {
                        resets += 1
                    }
                }
                prev.insert(key, *v);
            }
        }
        assert!(rollovers > 0, "no rollover");
        assert!(resets > 0, "no reset");
    }

    #[test]
    fn states_faults_and_node_death() {
        let out = run(5, 240);
        let mut codes_seen = std::collections::BTreeSet::new();
        let mut faults = std::collections::BTreeSet::new();
        let mut bd_seqs = Vec::new();
        for (topic, p) in publishes(&out) {
            if topic.contains("/NBIRTH/Line2") || topic.contains("/NDEATH/Line2") {
                let b = bd_seq(&p).expect("a UInt64 bdSeq");
                bd_seqs.push((topic.contains("NBIRTH"), b));
            }
            for m in &p.metrics {
                match (
                    m.alias.and_then(|a| a.checked_sub(100)).map(|a| a % 16),
                    m.value.as_value(),
                ) {
                    (Some(4), Some(Value::Int32(c))) => {
                        codes_seen.insert(*c);
                    }
                    (Some(5), Some(Value::Int32(c))) if *c != 0 => {
                        faults.insert(*c);
                    }
                    _ => {}
                }
            }
        }
        for c in [
            codes::RUNNING,
            codes::SETUP,
            codes::MICRO_STOP,
            codes::FAULT_STOP,
            codes::PLANNED_BREAK,
        ] {
            assert!(
                codes_seen.contains(&c),
                "state code {c} never seen: {codes_seen:?}"
            );
        }
        assert!(faults.len() >= 2, "{faults:?}");
        // NBIRTH 0, NDEATH 0, NBIRTH 1, ...
        assert!(bd_seqs.len() >= 3, "{bd_seqs:?}");
        assert_eq!(bd_seqs[0], (true, 0));
        assert_eq!(bd_seqs[1], (false, 0));
        assert_eq!(bd_seqs[2], (true, 1));
    }

    fn bd_seq(p: &Payload) -> Option<u64> {
        p.metrics
            .iter()
            .find(|m| m.name.as_deref() == Some("bdSeq"))
            .and_then(|m| match m.value.as_value() {
                Some(Value::UInt64(v)) => Some(*v),
                _ => None,
            })
    }

    /// The bdSeq of a new session's Will and of its NBIRTH, and its DBIRTH count.
    fn new_session(out: &[Output]) -> (Option<u64>, Option<u64>, usize) {
        let Some(Output::Connect { will_payload, .. }) = out.first() else {
            panic!("a new session first: {out:?}");
        };
        let will = Payload::decode(will_payload.as_slice()).unwrap();
        let p = publishes(out);
        assert!(p[0].0.contains("/NBIRTH/"), "then the NBIRTH: {}", p[0].0);
        let dbirths = p.iter().filter(|(t, _)| t.contains("/DBIRTH/")).count();
        (bd_seq(&will), bd_seq(&p[0].1), dbirths)
    }

    #[test]
    fn a_lost_session_comes_back_with_the_next_bd_seq_in_its_will_and_births() {
        let mut sim = Simulator::new(SimConfig::default());
        sim.start();
        let out = sim.reconnect(1);
        assert!(out.iter().all(|o| o.node() == 1));
        assert_eq!(new_session(&out), (Some(1), Some(1), 3));
        assert_eq!(new_session(&sim.reconnect(1)), (Some(2), Some(2), 3));
        // The other node's session is untouched; an offline node stays offline.
        assert_eq!(bd_seq(&publishes(&sim.rebirth(0))[0].1), Some(0));
        let _ = sim.shutdown();
        assert!(sim.reconnect(0).is_empty());
    }

    #[test]
    fn rebirth_repeats_births_with_the_same_bd_seq() {
        let mut sim = Simulator::new(SimConfig::default());
        sim.start();
        let start = sim.now_ms();
        sim.advance(start + 60_000);
        let out = sim.rebirth(0);
        let p = publishes(&out);
        assert_eq!(p.len(), 4);
        assert_eq!(p[0].0, "spBv1.0/DemoPlant/NBIRTH/Line1");
        assert_eq!(p[0].1.seq, Some(0));
        assert!(out.iter().all(|o| !matches!(o, Output::Connect { .. })));
    }
}
