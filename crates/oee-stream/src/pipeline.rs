//! The pipeline: MQTT source → shards (Sparkplug host session + normalizer) → records.
//!
//! Messages are routed by a hash of (group, edge node) to one of N shard tasks, so each edge
//! node's messages are handled in arrival order by one task and different nodes in parallel.
//! Each shard owns its own [`sparkplug::Host`] (the global rebirth rate divided among the
//! shards) and its own [`Normalizer`] (the compiled rules are shared), and runs one
//! `select!` over its bounded inbound queue and a timer at `host.next_deadline()` (reorder
//! timeouts, held and queued rebirth requests). Nothing is locked across I/O: the shards only
//! await their inbound queue and the bounded record queue (back-pressure from the sinks).
//!
//! # From samples to records
//!
//! Every [`MetricSample`] becomes an [`oee_core::normalize::SourceSample`]: integers, floats
//! and booleans as numbers, String/Text/UUID as text, DateTime as its ms value, arrays as a
//! JSON array text; DataSet, Template, PropertySet(List), Bytes and File values are skipped
//! (counted as `values_skipped`; template *members* arrive as their own samples). `int_bits`
//! comes from the birth datatype. A normalized signal (or an unmapped one when
//! `processing.unmapped.policy` is `telemetry`) becomes a [`TelemetryRow`] with the receipt
//! time, seq and bdSeq; a quality that turns bad becomes a `signal_bad` event. Node and device
//! online/offline and every rebirth request become [`EventRow`]s.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes as Payload;
use oee_core::normalize::{self, Normalizer, Outcome, Signal, SourceSample};
use serde_json::json;
use sparkplug::{
    DataType, Host, HostCounters, HostEvent, MessageType, MetricSample, OfflineReason, Value,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::calculate::{self, NodeEvent, OeeItem, OeeStats, OeeTask};
use crate::live::Live;
use crate::log_limit::{self, LogLimiter};
use crate::metrics::StageTimings;
use crate::settings::Settings;
use crate::sink::{EventKind, EventRow, Record, TelemetryRow};
use crate::source::mqtt::{self, PublishDrop, Publisher, SessionStatus, SourceConfig, SourceError};
use crate::source::replay;

/// Current UTC time in ms.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What a shard receives.
#[derive(Debug)]
pub enum ShardMsg {
    /// A Sparkplug message of one of the shard's edge nodes.
    Message {
        topic: String,
        payload: Payload,
        received_at: u64,
    },
    /// The broker connection was lost at this time: every metric goes STALE.
    ConnectionLost { at: u64 },
    /// Replay only: the recorded time has reached `at` (see [`Timing::Replay`]).
    Tick { at: u64 },
}

/// Where a pipeline takes its time from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// `run`: the wall clock. Host deadlines are tokio timers, the OEE watermark follows the
    /// wall clock every second, rebirth events carry the wall-clock time.
    Wall,
    /// `replay`: the recorded receipt times. The source sends every shard a [`ShardMsg::Tick`]
    /// for each second of recorded time; a shard runs its host deadlines at their exact
    /// (recorded) times before each message and tick, and hands the tick to the OEE task, whose
    /// watermark follows the slowest shard's time. Nothing reads the wall clock, so one
    /// recording always gives the same rows.
    Replay,
}

/// Routes messages to shards by (group, edge node).
#[derive(Clone)]
pub struct Router {
    shards: Vec<mpsc::Sender<ShardMsg>>,
    hasher: foldhash::fast::FixedState,
}

impl Router {
    /// The shard of an edge node.
    pub fn shard_of(&self, group: &str, edge_node: &str) -> usize {
        let mut h = self.hasher.build_hasher();
        group.hash(&mut h);
        edge_node.hash(&mut h);
        (h.finish() % self.shards.len() as u64) as usize
    }

    /// Hands a message to its shard, waiting while the shard's queue is full.
    pub async fn route(
        &self,
        group: &str,
        edge_node: &str,
        topic: &str,
        payload: Payload,
        received_at: u64,
    ) {
        let i = self.shard_of(group, edge_node);
        let _ = self.shards[i]
            .send(ShardMsg::Message {
                topic: topic.to_string(),
                payload,
                received_at,
            })
            .await;
    }

    /// Tells every shard that the connection is gone (in order with the messages before it).
    pub async fn connection_lost(&self, at: u64) {
        for s in &self.shards {
            let _ = s.send(ShardMsg::ConnectionLost { at }).await;
        }
    }

    /// Replay: tells every shard that the recorded time is `at`.
    pub async fn tick(&self, at: u64) {
        for s in &self.shards {
            let _ = s.send(ShardMsg::Tick { at }).await;
        }
    }

    /// Messages waiting in each shard's queue.
    pub fn queue_depths(&self) -> Vec<usize> {
        self.shards
            .iter()
            .map(|s| s.max_capacity() - s.capacity())
            .collect()
    }
}

/// Counters and snapshots for `/metrics`, `/health` and the status line. Counters only grow.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Received messages by verb: NBIRTH, NDEATH, NDATA, NCMD, DBIRTH, DDEATH, DDATA, DCMD.
    pub messages: [AtomicU64; 8],
    /// Messages on STATE topics (own and other hosts').
    pub state_messages: AtomicU64,
    /// Topics that are not Sparkplug B topics (or not UTF-8).
    pub invalid_topics: AtomicU64,
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    pub connection_losses: AtomicU64,
    /// STATE births published (first of each session, and republished ones).
    pub state_births: AtomicU64,
    /// Births published again because our own offline STATE showed up.
    pub state_republished: AtomicU64,
    pub rebirths_sent: AtomicU64,
    /// Rebirth requests not published: no born session, or the client queue was full.
    pub rebirths_dropped: AtomicU64,
    pub records_out: AtomicU64,
    pub signals: AtomicU64,
    /// Samples no rule maps (see the normalizer's unmapped list).
    pub unmapped: AtomicU64,
    pub suppressed: AtomicU64,
    pub bad_quality: AtomicU64,
    pub rejected_values: AtomicU64,
    /// Values of a kind the pipeline does not store (DataSet, Template, Bytes …).
    pub values_skipped: AtomicU64,
    /// Edge nodes left out of the live node list (`/api/nodes`) because it held
    /// `sparkplug.max_nodes` nodes, none of them offline.
    pub live_nodes_unlisted: AtomicU64,
    /// Per shard: the host session counters, refreshed after every batch of messages.
    pub shards: Vec<ShardSnapshot>,
    /// True while the pipeline runs (false once shut down).
    pub running: AtomicBool,
    /// Per-message processing time by stage (`/metrics`).
    pub timings: StageTimings,
    /// The OEE task's numbers for `/metrics` and `/health`.
    pub oee: OeeStats,
}

/// What one shard last published about itself.
#[derive(Debug, Default)]
pub struct ShardSnapshot {
    pub host: Mutex<HostCounters>,
    pub normalizer: Mutex<normalize::NormalizerStats>,
    pub nodes: AtomicU64,
    /// Metrics known from births (the alias cache).
    pub metrics: AtomicU64,
    /// Messages waiting in the shard's queue when it last published its snapshot.
    pub queue_depth: AtomicU64,
    pub queued_rebirths: AtomicU64,
}

impl PipelineStats {
    pub fn new(shards: usize) -> PipelineStats {
        PipelineStats {
            shards: (0..shards).map(|_| ShardSnapshot::default()).collect(),
            ..PipelineStats::default()
        }
    }

    pub(crate) fn count_message(&self, t: MessageType) {
        self.messages[verb_index(t)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_invalid_topic(&self) {
        self.invalid_topics.fetch_add(1, Ordering::Relaxed);
    }

    /// Received messages of one verb.
    pub fn messages_of(&self, t: MessageType) -> u64 {
        self.messages[verb_index(t)].load(Ordering::Relaxed)
    }

    /// The host counters of all shards added up.
    pub fn host_counters(&self) -> HostCounters {
        let mut sum = HostCounters::default();
        for s in &self.shards {
            let c = s.host.lock().map(|c| c.clone()).unwrap_or_default();
            sum.add(&c);
        }
        sum
    }
}

fn verb_index(t: MessageType) -> usize {
    match t {
        MessageType::NBirth => 0,
        MessageType::NDeath => 1,
        MessageType::NData => 2,
        MessageType::NCmd => 3,
        MessageType::DBirth => 4,
        MessageType::DDeath => 5,
        MessageType::DData => 6,
        MessageType::DCmd => 7,
    }
}

/// Why the pipeline cannot start.
pub type StartError = SourceError;

/// The running pipeline.
pub struct PipelineHandle {
    stats: Arc<PipelineStats>,
    status: watch::Receiver<SessionStatus>,
    router: Router,
    shutdown: watch::Sender<bool>,
    source: Option<JoinHandle<()>>,
    shards: Vec<JoinHandle<()>>,
    oee: JoinHandle<()>,
    live: Live,
}

impl PipelineHandle {
    pub fn stats(&self) -> &Arc<PipelineStats> {
        &self.stats
    }

    /// The MQTT session's status; `wait_for` on it to await a state.
    pub fn status(&self) -> watch::Receiver<SessionStatus> {
        self.status.clone()
    }

    /// Messages waiting in each shard's queue.
    pub fn queue_depths(&self) -> Vec<usize> {
        self.router.queue_depths()
    }

    /// The live view and the acknowledgement channel of the OEE task (for the HTTP API).
    pub fn live(&self) -> Live {
        self.live.clone()
    }

    /// Waits until the source ends on its own: a replay at the end of its recording (a live
    /// MQTT source runs until [`PipelineHandle::shutdown`]).
    pub async fn source_finished(&mut self) {
        if let Some(source) = self.source.as_mut() {
            let _ = source.await;
            self.source = None;
        }
    }

    /// Stops cleanly: publishes the STATE death, disconnects, lets every shard finish what it
    /// has received and send its records, then lets the OEE task flush its engine (every
    /// window up to the newest event time, see [`crate::calculate`]) and send its records,
    /// then returns. The record sender given to [`start`] is dropped when this returns, so
    /// the sink sees the end of the stream.
    pub async fn shutdown(self) {
        let PipelineHandle {
            stats,
            router,
            shutdown,
            source,
            shards,
            oee,
            ..
        } = self;
        shutdown.send_replace(true);
        if let Some(source) = source {
            let _ = source.await;
        }
        drop(router);
        for s in shards {
            let _ = s.await;
        }
        // The shards dropped their OEE senders: the task flushes and ends.
        let _ = oee.await;
        stats.running.store(false, Ordering::Relaxed);
    }
}

/// Starts the MQTT source and the shard tasks on the current tokio runtime. Records go to
/// `records`; awaiting a full queue slows the shards down and, through their full queues, the
/// MQTT reader.
/// `rebuild`: what the previous run stored, fed to the OEE engine before any live data.
pub fn start(
    settings: &Settings,
    records: mpsc::Sender<Record>,
    rebuild: Option<&crate::rebuild::Rebuild>,
) -> Result<PipelineHandle, StartError> {
    let source_cfg = SourceConfig::from_settings(settings)?;
    let parts = mqtt::parts();
    let status = parts.status_tx.subscribe();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let core = start_core(
        settings,
        records,
        parts.publisher.clone(),
        Timing::Wall,
        rebuild,
    );
    let source = tokio::spawn(mqtt::run(
        source_cfg,
        core.router.clone(),
        parts.client_tx,
        parts.status_tx,
        Arc::clone(&core.stats),
        shutdown_rx,
    ));
    Ok(core.handle(status, shutdown, source))
}

/// Starts the pipeline of `run` fed by a recording instead of MQTT, driven by the recorded
/// times ([`Timing::Replay`]): as fast as possible, or `speed` times the recorded pace. The
/// source ends at the end of the recording ([`PipelineHandle::source_finished`]); then
/// [`PipelineHandle::shutdown`] flushes as it does for `run`. Rebirth requests are decided as
/// live but never sent (their events say `dropped: "replay"`).
pub fn start_replay(
    settings: &Settings,
    records: mpsc::Sender<Record>,
    recording: crate::recording::Reader,
    speed: Option<f64>,
) -> (PipelineHandle, Arc<replay::Progress>) {
    let parts = mqtt::parts();
    let status = parts.status_tx.subscribe();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let core = start_core(settings, records, Publisher::replay(), Timing::Replay, None);
    let progress = Arc::new(replay::Progress::default());
    let source = tokio::spawn(replay::run(
        recording,
        speed,
        core.router.clone(),
        Arc::clone(&core.stats),
        Arc::clone(&progress),
        shutdown_rx,
    ));
    (core.handle(status, shutdown, source), progress)
}

/// The shards and the OEE task, before a source is attached.
struct Core {
    stats: Arc<PipelineStats>,
    router: Router,
    shards: Vec<JoinHandle<()>>,
    oee: JoinHandle<()>,
    live: Live,
}

impl Core {
    fn handle(
        self,
        status: watch::Receiver<SessionStatus>,
        shutdown: watch::Sender<bool>,
        source: JoinHandle<()>,
    ) -> PipelineHandle {
        PipelineHandle {
            stats: self.stats,
            status,
            router: self.router,
            shutdown,
            source: Some(source),
            shards: self.shards,
            oee: self.oee,
            live: self.live,
        }
    }
}

fn start_core(
    settings: &Settings,
    records: mpsc::Sender<Record>,
    publisher: Publisher,
    timing: Timing,
    rebuild: Option<&crate::rebuild::Rebuild>,
) -> Core {
    let sp = &settings.file.sparkplug;
    let n = match sp.shards {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    };
    let stats = Arc::new(PipelineStats::new(n));
    stats.running.store(true, Ordering::Relaxed);
    let host_config = sp.host_config(n);
    let rules = Arc::new(settings.domain.rules.clone());
    // build_domain ran the same mapping, so this cannot fail for validated settings.
    let (oee_params, fault_params) = settings.domain.engine_params().unwrap_or_else(|e| {
        tracing::error!(
            ?e,
            "oee/faults configuration not usable; engine defaults apply"
        );
        Default::default()
    });
    let (live, view_tx, ack_rx) = Live::channel(ACK_QUEUE);
    let (oee_tx, oee_rx) = mpsc::channel(OEE_QUEUE);
    let mut task = OeeTask::new(
        oee_params,
        fault_params,
        records.clone(),
        Arc::clone(&stats),
        view_tx,
    )
    .with_timing(timing, n)
    .with_wall_clock(settings.oee_follows_wall_clock)
    .with_max_nodes(sp.max_nodes as usize);
    if let Some(r) = rebuild {
        task.rebuild(r.inputs(), r.last_event_ms, r.last_received_ms);
    }
    let oee = tokio::spawn(task.run(oee_rx, ack_rx));
    let mut senders = Vec::with_capacity(n);
    let mut shards = Vec::with_capacity(n);
    for i in 0..n {
        let (tx, rx) = mpsc::channel(sp.shard_queue.max(1) as usize);
        senders.push(tx);
        let shard = Shard {
            index: i,
            host: Host::new(host_config.clone()),
            normalizer: Normalizer::new(Arc::clone(&rules)),
            publisher: publisher.clone(),
            records: records.clone(),
            stats: Arc::clone(&stats),
            normalize_time: Duration::ZERO,
            oee: oee_tx.clone(),
            oee_batch: Vec::new(),
            reject_log: LogLimiter::standard(),
            machine_ids: foldhash::HashMap::default(),
            timing,
            replay_now: 0,
        };
        shards.push(tokio::spawn(shard.run(rx)));
    }
    drop(records);
    drop(oee_tx);
    let router = Router {
        shards: senders,
        hasher: foldhash::fast::FixedState::default(),
    };
    Core {
        stats,
        router,
        shards,
        oee,
        live,
    }
}

/// Batches (one per message with OEE signals) waiting for the OEE task.
const OEE_QUEUE: usize = 4096;
/// Acknowledgements waiting for the OEE task.
const ACK_QUEUE: usize = 64;
/// Machine ids remembered per shard (by signal tag) before the cache starts over.
const MACHINE_CACHE: usize = 100_000;
/// A shard's gauges and counters for /metrics are copied out at most this often while messages
/// keep coming (the copy walks every node the shard holds), and this long after the last one.
const STATS_EVERY: Duration = Duration::from_millis(100);

/// One shard: the sessions of its edge nodes and their normalization.
struct Shard {
    index: usize,
    host: Host,
    normalizer: Normalizer,
    publisher: Publisher,
    records: mpsc::Sender<Record>,
    stats: Arc<PipelineStats>,
    /// Time spent in the normalizer for the current message.
    normalize_time: Duration,
    /// To the OEE task.
    oee: mpsc::Sender<Vec<OeeItem>>,
    oee_batch: Vec<OeeItem>,
    /// Rejected messages, metrics and values are logged with their topic, rate-limited.
    reject_log: LogLimiter,
    /// The machine of a signal tag, by the tag's address (the tag is kept alive here, so the
    /// address cannot be reused by another tag).
    machine_ids: foldhash::HashMap<
        usize,
        (
            Arc<normalize::SignalTag>,
            Option<oee_core::types::MachineId>,
        ),
    >,
    timing: Timing,
    /// Replay: the recorded time reached so far.
    replay_now: u64,
}

impl Shard {
    async fn run(mut self, mut rx: mpsc::Receiver<ShardMsg>) {
        let mut events = Vec::new();
        let mut handled: u64 = 0;
        let mut last_stats = tokio::time::Instant::now();
        let mut stats_pending = false;
        loop {
            let mut started = None;
            let deadline = match self.timing {
                Timing::Wall => self.host.next_deadline().map(|at| {
                    tokio::time::Instant::now() + Duration::from_millis(at.saturating_sub(now_ms()))
                }),
                // Replay runs deadlines from the recorded times (`catch_up`).
                Timing::Replay => None,
            };
            let stats_due = stats_pending.then_some(last_stats + STATS_EVERY);
            tokio::select! {
                _ = sleep_until(stats_due) => {
                    self.publish_stats(rx.len());
                    last_stats = tokio::time::Instant::now();
                    stats_pending = false;
                    continue;
                }
                msg = rx.recv() => match msg {
                    None => break,
                    Some(ShardMsg::Message { topic, payload, received_at }) => {
                        if !self.catch_up(received_at, &mut events).await {
                            break;
                        }
                        let t0 = Instant::now();
                        self.host.handle(&topic, &payload, received_at, &mut events);
                        self.stats.timings.observe("decode", t0.elapsed().as_secs_f64());
                        started = Some(t0);
                    }
                    Some(ShardMsg::ConnectionLost { at }) => {
                        if !self.catch_up(at, &mut events).await {
                            break;
                        }
                        self.host.connection_lost(at, &mut events);
                    }
                    Some(ShardMsg::Tick { at }) => {
                        if !self.catch_up(at, &mut events).await {
                            break;
                        }
                        self.oee_batch.push(OeeItem::Clock { shard: self.index, at_ms: at });
                    }
                },
                _ = sleep_until(deadline) => {
                    self.host.poll(now_ms(), &mut events);
                }
            }
            self.normalize_time = Duration::ZERO;
            if !self.emit(&mut events).await {
                break;
            }
            if let Some(t0) = started {
                let timings = &self.stats.timings;
                timings.observe("normalize", self.normalize_time.as_secs_f64());
                timings.observe("total", t0.elapsed().as_secs_f64());
            }
            handled += 1;
            if handled.is_multiple_of(1024) || last_stats.elapsed() >= STATS_EVERY {
                self.publish_stats(rx.len());
                last_stats = tokio::time::Instant::now();
                stats_pending = false;
            } else {
                stats_pending = true;
            }
        }
        // Nothing received is lost on shutdown: what waits for a sequence gap is applied now.
        self.host.flush(self.now(), &mut events);
        self.emit(&mut events).await;
        self.publish_stats(rx.len());
    }

    /// The time now: the wall clock, or in a replay the recorded time reached.
    fn now(&self) -> u64 {
        match self.timing {
            Timing::Wall => now_ms(),
            Timing::Replay => self.replay_now,
        }
    }

    /// Replay: runs the host deadlines due up to the recorded time `to`, each at its own time
    /// (as the timer of a live run would have) with its records emitted at that time, and
    /// moves the shard's time to `to`. False when the record receiver is gone.
    async fn catch_up(&mut self, to: u64, events: &mut Vec<HostEvent>) -> bool {
        if self.timing != Timing::Replay {
            return true;
        }
        while let Some(at) = self.host.next_deadline().filter(|at| *at <= to) {
            let at = at.max(self.replay_now);
            self.replay_now = at;
            self.host.poll(at, events);
            if !self.emit(events).await {
                return false;
            }
            if self.host.next_deadline().is_some_and(|next| next <= at) {
                // Nothing more can happen before the clock moves on.
                break;
            }
        }
        self.replay_now = self.replay_now.max(to);
        true
    }

    /// Turns host events into records; false when the record receiver is gone.
    async fn emit(&mut self, events: &mut Vec<HostEvent>) -> bool {
        let mut index = 0usize;
        for ev in events.drain(..) {
            self.lifecycle(&ev);
            let record = match ev {
                HostEvent::Sample(s) => match self.sample(&s, {
                    index += 1;
                    index - 1
                }) {
                    Some(r) => r,
                    None => continue,
                },
                HostEvent::NodeOnline {
                    group,
                    edge_node,
                    bd_seq,
                    seq,
                    timestamp,
                    received_at,
                } => event(
                    EventKind::NodeOnline,
                    timestamp,
                    format!(
                        "node_online:{group}/{edge_node}:{timestamp}:{}",
                        id_part(bd_seq)
                    ),
                    json!({"group": &*group, "edge_node": &*edge_node, "bd_seq": bd_seq,
                           "seq": seq, "received_at": received_at}),
                ),
                HostEvent::NodeOffline {
                    group,
                    edge_node,
                    bd_seq,
                    timestamp,
                    reason,
                } => event(
                    EventKind::NodeOffline,
                    timestamp,
                    format!(
                        "node_offline:{group}/{edge_node}:{timestamp}:{}",
                        id_part(bd_seq)
                    ),
                    json!({"group": &*group, "edge_node": &*edge_node, "bd_seq": bd_seq,
                           "reason": offline_reason(reason)}),
                ),
                HostEvent::DeviceOnline {
                    group,
                    edge_node,
                    device,
                    timestamp,
                    received_at,
                } => event(
                    EventKind::DeviceOnline,
                    timestamp,
                    format!("device_online:{group}/{edge_node}/{device}:{timestamp}"),
                    json!({"group": &*group, "edge_node": &*edge_node, "device": &*device,
                           "received_at": received_at}),
                ),
                HostEvent::DeviceOffline {
                    group,
                    edge_node,
                    device,
                    timestamp,
                    reason,
                } => event(
                    EventKind::DeviceOffline,
                    timestamp,
                    format!("device_offline:{group}/{edge_node}/{device}:{timestamp}"),
                    json!({"group": &*group, "edge_node": &*edge_node, "device": &*device,
                           "reason": offline_reason(reason)}),
                ),
                HostEvent::Rebirth(req) => {
                    let published = self.publisher.publish_rebirth(&req);
                    match published {
                        Ok(()) => {
                            self.stats.rebirths_sent.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(group = %req.group, edge_node = %req.edge_node,
                                reason = %req.reason, "rebirth requested");
                        }
                        Err(why) => {
                            self.stats.rebirths_dropped.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(group = %req.group, edge_node = %req.edge_node,
                                ?why, "rebirth request not published");
                        }
                    }
                    let now = self.now();
                    event(
                        EventKind::RebirthRequested,
                        now,
                        format!("rebirth:{}/{}:{now}", req.group, req.edge_node),
                        json!({"group": &*req.group, "edge_node": &*req.edge_node,
                        "reason": req.reason.to_string(),
                        "published": published.is_ok(),
                        "dropped": match published {
                            Err(PublishDrop::NotConnected) => Some("not_connected"),
                            Err(PublishDrop::QueueFull) => Some("queue_full"),
                            Err(PublishDrop::Replay) => Some("replay"),
                            Ok(()) => None,
                        }}),
                    )
                }
                HostEvent::Rejected { topic, reason } => {
                    if let Some(left_out) = self.reject_log.admit(Instant::now()) {
                        tracing::warn!(shard = self.index, topic, %reason, left_out,
                            "message or metric rejected (counted in oee_stream_host_events; at most {} lines per {} s per shard, `left_out` = rejections not logged since the last line)",
                            log_limit::LINES_PER_INTERVAL, log_limit::INTERVAL.as_secs());
                    }
                    continue;
                }
            };
            if self.records.send(record).await.is_err() {
                return false;
            }
            self.stats.records_out.fetch_add(1, Ordering::Relaxed);
        }
        if !self.oee_batch.is_empty() {
            let batch = std::mem::take(&mut self.oee_batch);
            // The OEE task ends only after the shards; a send error means it failed.
            let _ = self.oee.send(batch).await;
        }
        true
    }

    /// Node and device lifecycle for the live view's node list.
    fn lifecycle(&mut self, ev: &HostEvent) {
        let item = match ev {
            HostEvent::NodeOnline {
                group,
                edge_node,
                bd_seq,
                timestamp,
                ..
            } => NodeEvent::Online {
                group: group.clone(),
                edge_node: edge_node.clone(),
                bd_seq: *bd_seq,
                at_ms: *timestamp as i64,
            },
            HostEvent::NodeOffline {
                group,
                edge_node,
                timestamp,
                ..
            } => NodeEvent::Offline {
                group: group.clone(),
                edge_node: edge_node.clone(),
                at_ms: *timestamp as i64,
            },
            HostEvent::DeviceOnline {
                group,
                edge_node,
                device,
                ..
            } => NodeEvent::DeviceOnline {
                group: group.clone(),
                edge_node: edge_node.clone(),
                device: device.clone(),
            },
            HostEvent::DeviceOffline {
                group,
                edge_node,
                device,
                ..
            } => NodeEvent::DeviceOffline {
                group: group.clone(),
                edge_node: edge_node.clone(),
                device: device.clone(),
            },
            _ => return,
        };
        self.oee_batch.push(OeeItem::Node(item));
    }

    /// Queues the engine input of a mapped signal for the OEE task.
    fn oee_input(&mut self, sig: &Signal, s: &MetricSample, index: usize) {
        let key = Arc::as_ptr(&sig.tag) as usize;
        if !self.machine_ids.contains_key(&key) {
            if self.machine_ids.len() >= MACHINE_CACHE {
                self.machine_ids.clear();
            }
            self.machine_ids
                .insert(key, (Arc::clone(&sig.tag), calculate::machine_of(sig)));
        }
        let Some(machine) = self.machine_ids.get(&key).and_then(|m| m.1.clone()) else {
            return;
        };
        let tie = calculate::tie_break(s.bd_seq, s.seq, index);
        if let Some(input) = calculate::signal_input(sig, machine, tie, s.bd_seq) {
            self.oee_batch.push(OeeItem::Input(input));
        }
    }

    fn sample(&mut self, s: &MetricSample, index: usize) -> Option<Record> {
        let Some(value) = source_value(s.value.as_ref()) else {
            self.stats.values_skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let t0 = Instant::now();
        let outcome = self.normalizer.normalize(SourceSample {
            group: &s.group,
            edge_node: &s.edge_node,
            device: s.device.as_deref(),
            metric: &s.name,
            value,
            timestamp_ms: s.timestamp as i64,
            quality: s.quality.0,
            historical: s.flags.historical,
            transient: s.flags.transient,
            int_bits: int_bits(s.datatype),
        });
        self.normalize_time += t0.elapsed();
        match outcome {
            Outcome::Signal(sig) | Outcome::Unmapped(Some(sig)) => {
                if sig.tag.rule.is_some() {
                    self.stats.signals.fetch_add(1, Ordering::Relaxed);
                    self.oee_input(&sig, s, index);
                } else {
                    self.stats.unmapped.fetch_add(1, Ordering::Relaxed);
                }
                Some(Record::Telemetry(telemetry(sig, s, index)))
            }
            Outcome::Unmapped(None) => {
                self.stats.unmapped.fetch_add(1, Ordering::Relaxed);
                None
            }
            Outcome::Suppressed => {
                self.stats.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
            Outcome::Rejected { tag, reason } => {
                self.stats.rejected_values.fetch_add(1, Ordering::Relaxed);
                if let Some(left_out) = self.reject_log.admit(Instant::now()) {
                    let src = &tag.source;
                    tracing::warn!(group = %src.group, edge_node = %src.edge_node,
                        device = src.device.as_deref().unwrap_or(""), metric = %src.metric,
                        reason, left_out, "value rejected by its tag mapping rule (rate-limited)");
                }
                None
            }
            Outcome::BadQuality {
                tag,
                quality,
                timestamp_ms,
                went_bad,
            } => {
                self.stats.bad_quality.fetch_add(1, Ordering::Relaxed);
                went_bad.then(|| {
                    let a = &tag.asset;
                    let src = &tag.source;
                    Record::Event(EventRow {
                        time_ms: timestamp_ms,
                        kind: EventKind::SignalBad,
                        site_id: Some(a.site_id.clone()),
                        line_id: Some(a.line_id.clone()),
                        machine_id: Some(a.machine_id.clone()),
                        severity: None,
                        id: format!(
                            "signal_bad:{}/{}/{}/{}:{timestamp_ms}",
                            src.group,
                            src.edge_node,
                            src.device.as_deref().unwrap_or(""),
                            src.metric
                        ),
                        payload: json!({"group": src.group, "edge_node": src.edge_node,
                                        "device": src.device, "metric": src.metric,
                                        "quality": quality}),
                    })
                })
            }
        }
    }

    fn publish_stats(&mut self, queue_depth: usize) {
        let snap = &self.stats.shards[self.index];
        snap.queue_depth
            .store(queue_depth as u64, Ordering::Relaxed);
        if let Ok(mut c) = snap.host.lock() {
            c.clone_from(self.host.counters());
        }
        let usage = self.host.usage();
        snap.nodes.store(usage.nodes as u64, Ordering::Relaxed);
        snap.metrics.store(usage.metrics as u64, Ordering::Relaxed);
        snap.queued_rebirths
            .store(usage.queued_rebirths as u64, Ordering::Relaxed);
        if let Ok(mut n) = snap.normalizer.lock() {
            *n = self.normalizer.stats();
        }
    }
}

/// An optional number in a stable event id: the number, or `-`.
fn id_part(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn event(kind: EventKind, time: u64, id: String, payload: serde_json::Value) -> Record {
    Record::Event(EventRow {
        time_ms: time as i64,
        kind,
        site_id: None,
        line_id: None,
        machine_id: None,
        severity: None,
        id,
        payload,
    })
}

fn offline_reason(r: OfflineReason) -> &'static str {
    match r {
        OfflineReason::Death => "death",
        OfflineReason::NewBirth => "new_birth",
        OfflineReason::RejectedBirth => "rejected_birth",
        OfflineReason::ConnectionLost => "connection_lost",
    }
}

fn telemetry(sig: Signal, s: &MetricSample, index: usize) -> TelemetryRow {
    let (value, value_text) = match sig.value {
        normalize::Value::Null => (None, None),
        normalize::Value::Bool(b) => (Some(if b { 1.0 } else { 0.0 }), None),
        normalize::Value::Int(i) => (Some(i as f64), None),
        normalize::Value::UInt(u) => (Some(u as f64), None),
        normalize::Value::Float(f) => (Some(f), None),
        normalize::Value::Text(t) => (None, Some(t)),
    };
    TelemetryRow {
        tag: sig.tag,
        time_ms: sig.timestamp_ms,
        value,
        value_text,
        quality: sig.quality,
        is_historical: sig.historical,
        received_at_ms: s.received_at as i64,
        seq: s.seq,
        bd_seq: s.bd_seq,
        index: index as u16,
        int_bits: sig.int_bits,
    }
}

/// The normalizer's value for a Sparkplug value; `None` for kinds that are not stored
/// (DataSet, Template, PropertySet(List), Bytes, File).
pub fn source_value(v: Option<&Value>) -> Option<normalize::Value> {
    use normalize::Value as N;
    let Some(v) = v else { return Some(N::Null) };
    Some(match v {
        Value::Int8(i) => N::Int(i64::from(*i)),
        Value::Int16(i) => N::Int(i64::from(*i)),
        Value::Int32(i) => N::Int(i64::from(*i)),
        Value::Int64(i) => N::Int(*i),
        Value::UInt8(u) => N::UInt(u64::from(*u)),
        Value::UInt16(u) => N::UInt(u64::from(*u)),
        Value::UInt32(u) => N::UInt(u64::from(*u)),
        Value::UInt64(u) => N::UInt(*u),
        Value::Float(f) => N::Float(f64::from(*f)),
        Value::Double(f) => N::Float(*f),
        Value::Boolean(b) => N::Bool(*b),
        Value::String(s) | Value::Text(s) | Value::Uuid(s) => N::Text(s.clone()),
        Value::DateTime(ms) => N::UInt(*ms),
        Value::Int8Array(a) => N::Text(json!(a).to_string()),
        Value::Int16Array(a) => N::Text(json!(a).to_string()),
        Value::Int32Array(a) => N::Text(json!(a).to_string()),
        Value::Int64Array(a) => N::Text(json!(a).to_string()),
        Value::UInt8Array(a) => N::Text(json!(a).to_string()),
        Value::UInt16Array(a) => N::Text(json!(a).to_string()),
        Value::UInt32Array(a) => N::Text(json!(a).to_string()),
        Value::UInt64Array(a) => N::Text(json!(a).to_string()),
        Value::FloatArray(a) => N::Text(json!(a).to_string()),
        Value::DoubleArray(a) => N::Text(json!(a).to_string()),
        Value::BooleanArray(a) => N::Text(json!(a).to_string()),
        Value::StringArray(a) => N::Text(json!(a).to_string()),
        Value::DateTimeArray(a) => N::Text(json!(a).to_string()),
        Value::DataSet(_)
        | Value::Bytes(_)
        | Value::File(_)
        | Value::Template(_)
        | Value::PropertySet(_)
        | Value::PropertySetList(_) => return None,
    })
}

/// Bit width of an integer datatype (counters roll over at it); 0 otherwise.
pub fn int_bits(t: DataType) -> u8 {
    match t {
        DataType::Int8 | DataType::UInt8 => 8,
        DataType::Int16 | DataType::UInt16 => 16,
        DataType::Int32 | DataType::UInt32 => 32,
        DataType::Int64 | DataType::UInt64 | DataType::DateTime => 64,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_map_to_the_normalizer() {
        assert_eq!(
            source_value(Some(&Value::Int8(-1))),
            Some(normalize::Value::Int(-1))
        );
        assert_eq!(
            source_value(Some(&Value::UInt64(u64::MAX))),
            Some(normalize::Value::UInt(u64::MAX))
        );
        assert_eq!(
            source_value(Some(&Value::Float(1.5))),
            Some(normalize::Value::Float(1.5))
        );
        assert_eq!(
            source_value(Some(&Value::Int32Array(vec![1, -2]))),
            Some(normalize::Value::Text("[1,-2]".into()))
        );
        assert_eq!(source_value(None), Some(normalize::Value::Null));
        assert_eq!(
            source_value(Some(&Value::Bytes(bytes::Bytes::from_static(b"x")))),
            None
        );
        assert_eq!(int_bits(DataType::UInt16), 16);
        assert_eq!(int_bits(DataType::Double), 0);
    }

    #[test]
    fn routing_is_stable_per_node() {
        let (tx, _rx) = mpsc::channel(1);
        let router = Router {
            shards: vec![tx.clone(), tx.clone(), tx],
            hasher: foldhash::fast::FixedState::default(),
        };
        let a = router.shard_of("G", "E1");
        for _ in 0..10 {
            assert_eq!(router.shard_of("G", "E1"), a);
        }
        let spread: std::collections::HashSet<usize> = (0..64)
            .map(|i| router.shard_of("G", &format!("E{i}")))
            .collect();
        assert!(spread.len() > 1);
    }
}
