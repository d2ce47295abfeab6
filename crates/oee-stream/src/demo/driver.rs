//! Runs a [`Simulator`] against an MQTT broker: one MQTT session per edge node (its Will is the
//! node's NDEATH), simulated time running `speed` times the wall clock, rebirth NCMDs answered.
//! When a session's connection is lost the broker publishes its Will, so the node comes back
//! as a Sparkplug edge node must: a new MQTT session (clean, with the next bdSeq in its Will and
//! a new subscription to its NCMD topic) and new births.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Incoming, LastWill, MqttOptions, Outgoing, PublishOptions, QoS};
use sparkplug::topic::message_topic;
use sparkplug::{MessageType, Payload, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::simulator::{Output, Simulator};

/// Where and how fast to run.
#[derive(Clone, Debug)]
pub struct DriveOptions {
    pub host: String,
    pub port: u16,
    /// Simulated time runs this many times the wall clock.
    pub speed: f64,
    /// MQTT client ids are `<client_prefix>-<edge node id>`.
    pub client_prefix: String,
    /// Not bound to the 50 ms tick: step the plant ([`Simulator::advance_one`]) again as soon
    /// as the last step's messages are handed to the MQTT clients (whose queues wait for the
    /// broker), at most once per millisecond of simulated time so that timestamps never run
    /// ahead of the clock (`bench --rate max`).
    pub max_rate: bool,
}

/// Counters the status line and tests read.
#[derive(Debug, Default)]
pub struct SimStats {
    /// Messages handed to the MQTT client.
    pub published: AtomicU64,
    /// NBIRTHs sent (first sessions, rebirths and comebacks).
    pub nbirths: AtomicU64,
    /// Rebirth requests received.
    pub rebirth_requests: AtomicU64,
    /// MQTT sessions lost (the broker published their Will) and opened again.
    pub reconnects: AtomicU64,
    /// MQTT sessions opened (each node's first, and one per loss).
    pub sessions: AtomicU64,
    /// Simulated time, ms since the epoch.
    pub sim_time_ms: AtomicU64,
    /// Edge nodes currently online.
    pub nodes_online: AtomicU64,
    /// Metrics in the DDATA messages generated so far.
    pub ddata_metrics: AtomicU64,
}

/// How often the plant is advanced (wall clock).
const TICK: Duration = Duration::from_millis(50);

struct Session {
    client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
    /// Tells a lost session from the node's later ones.
    id: u64,
}

impl Session {
    /// Ends the session's poller. The client goes first: flume, the channel between a rumqttc
    /// client and its event loop, panicked when the event loop was dropped while a publish
    /// waited on the full channel. Called only while no publish of the driver is pending.
    fn close(self) {
        drop(self.client);
        self.task.abort();
    }
}

/// The pollers' reports to the driver.
enum SessionEvent {
    Rebirth { node: usize },
    Lost { node: usize, session: u64 },
}

/// Runs until `stop` completes, then sends every online node's NDEATH and disconnects.
pub async fn drive(
    mut sim: Simulator,
    opts: DriveOptions,
    stats: Arc<SimStats>,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<SessionEvent>();
    let mut sessions: Vec<Option<Session>> = (0..sim.node_count()).map(|_| None).collect();
    let group = sim.config().group.clone();
    let t0 = Instant::now();
    let sim0 = sim.now_ms();
    // The first tick is immediate: `advance` opens the sessions and sends the births.
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        // --rate max: the next step is due one simulated millisecond after the last one.
        let next_ms = (sim.now_ms() + 1).saturating_sub(sim0) as f64;
        let due = t0 + Duration::from_secs_f64(next_ms / 1000.0 / opts.speed);
        let out = tokio::select! {
            () = &mut stop => break,
            Some(event) = events_rx.recv() => match event {
                SessionEvent::Rebirth { node } => {
                    stats.rebirth_requests.fetch_add(1, Ordering::Relaxed);
                    sim.rebirth(node)
                }
                SessionEvent::Lost { node, session } => {
                    let Some(lost) = sessions[node].take_if(|s| s.id == session) else {
                        continue;
                    };
                    lost.close();
                    let out = sim.reconnect(node);
                    if !out.is_empty() {
                        stats.reconnects.fetch_add(1, Ordering::Relaxed);
                        stats.nodes_online.fetch_sub(1, Ordering::Relaxed);
                    }
                    out
                }
            },
            _ = tick.tick(), if !opts.max_rate => {
                let elapsed = t0.elapsed().as_secs_f64() * opts.speed * 1000.0;
                sim.advance(sim0 + elapsed as u64)
            }
            () = tokio::time::sleep_until(due), if opts.max_rate => {
                let elapsed = t0.elapsed().as_secs_f64() * opts.speed * 1000.0;
                sim.advance_one(sim0 + elapsed as u64)
            }
        };
        // Publishing waits when the MQTT client's queue is full (a slow or absent broker):
        // the stop request still ends it.
        tokio::select! {
            () = &mut stop => break,
            () = apply(&sim, &group, &opts, &stats, &events_tx, &mut sessions, out) => {}
        }
        if opts.max_rate {
            // Handing messages to a client queue with room never waits: let the sessions'
            // event loops run.
            tokio::task::yield_now().await;
        }
    }
    let out = sim.shutdown();
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        apply(&sim, &group, &opts, &stats, &events_tx, &mut sessions, out),
    )
    .await;
    // Give the DISCONNECTs a moment to leave, then stop the pollers. One left running would
    // connect again with the node's client id and Will, and its next loss would publish an
    // NDEATH for a node that may be alive by then (a later run on the same broker).
    let deadline = Instant::now() + Duration::from_secs(2);
    for mut s in sessions.iter_mut().filter_map(Option::take) {
        if tokio::time::timeout_at(deadline, &mut s.task)
            .await
            .is_err()
        {
            s.close();
        }
    }
    Ok(())
}

async fn apply(
    sim: &Simulator,
    group: &str,
    opts: &DriveOptions,
    stats: &SimStats,
    events_tx: &mpsc::UnboundedSender<SessionEvent>,
    sessions: &mut [Option<Session>],
    out: Vec<Output>,
) {
    stats.sim_time_ms.store(sim.now_ms(), Ordering::Relaxed);
    stats
        .ddata_metrics
        .store(sim.ddata_metrics(), Ordering::Relaxed);
    for o in out {
        match o {
            Output::Connect {
                node,
                will_topic,
                will_payload,
            } => {
                // A new session of the node: its earlier one's poller must not report a loss.
                if let Some(old) = sessions[node].take() {
                    old.close();
                }
                let id = stats.sessions.fetch_add(1, Ordering::Relaxed);
                let edge = sim.node_id(node);
                let mut mo = MqttOptions::new(
                    format!("{}-{edge}", opts.client_prefix),
                    (opts.host.clone(), opts.port),
                );
                mo.set_keep_alive(30);
                mo.set_clean_session(true);
                mo.set_max_packet_size(1 << 24, 1 << 24);
                mo.set_last_will(LastWill::new(
                    will_topic,
                    will_payload,
                    QoS::AtLeastOnce,
                    false,
                ));
                let (client, eventloop) = AsyncClient::builder(mo).capacity(1024).build();
                let ncmd = message_topic(group, MessageType::NCmd, edge, None);
                let _ = client.subscribe(ncmd.clone(), QoS::AtLeastOnce).await;
                let task = tokio::spawn(poll(eventloop, ncmd, node, id, events_tx.clone()));
                sessions[node] = Some(Session { client, task, id });
                stats.nodes_online.fetch_add(1, Ordering::Relaxed);
            }
            Output::Publish {
                node,
                topic,
                payload,
            } => {
                if let Some(s) = &sessions[node] {
                    if topic.contains("/NBIRTH/") {
                        stats.nbirths.fetch_add(1, Ordering::Relaxed);
                    }
                    if s.client
                        .publish(topic, payload, PublishOptions::at_most_once())
                        .await
                        .is_ok()
                    {
                        stats.published.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Output::Disconnect { node } => {
                if let Some(s) = &sessions[node] {
                    let _ = s.client.disconnect().await;
                    stats.nodes_online.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Polls one session: rebirth NCMDs and the session's loss go to the driver. Ends after our
/// DISCONNECT or when the client is gone. When an established connection is lost it reports
/// the loss, and the driver replaces the session (`Session::close`, then a new one with the
/// next bdSeq). Until then it keeps polling, which reconnects with the old Will: publishes
/// waiting on this client's queue must not wait forever, and the old session's NDEATH, should
/// the broker publish it later, names the old bdSeq, which a host ignores. A connection never
/// made (no broker yet) is retried every half second, as the first session.
async fn poll(
    mut eventloop: rumqttc::EventLoop,
    ncmd: String,
    node: usize,
    session: u64,
    events: mpsc::UnboundedSender<SessionEvent>,
) {
    let mut connected = false;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Incoming::Publish(p))) if p.topic == ncmd.as_bytes() => {
                if is_rebirth(&p.payload) {
                    let _ = events.send(SessionEvent::Rebirth { node });
                }
            }
            Ok(Event::Incoming(Incoming::ConnAck(_))) => connected = true,
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(rumqttc::ConnectionError::RequestsDone) => return,
            Err(e) => {
                if std::mem::take(&mut connected) {
                    tracing::debug!(error = %e, "simulator: MQTT session lost, starting a new one");
                    let _ = events.send(SessionEvent::Lost { node, session });
                } else {
                    tracing::debug!(error = %e, "simulator: MQTT connection failed, retrying");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

fn is_rebirth(payload: &[u8]) -> bool {
    Payload::decode(payload).is_ok_and(|p| {
        p.metrics.iter().any(|m| {
            m.name.as_deref() == Some("Node Control/Rebirth")
                && matches!(m.value.as_value(), Some(Value::Boolean(true)))
        })
    })
}
