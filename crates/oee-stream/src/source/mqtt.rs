//! The MQTT 3.1.1 session of a Sparkplug B host application (research §3.1, §3.2, §3.7).
//!
//! Per connection attempt, with `T` = the UTC ms when the CONNECT is built:
//!
//! 1. CONNECT with clean session and the Will `{"online":false,"timestamp":T}` on
//!    `spBv1.0/STATE/<host_id>` (QoS 1, retained) — mode `primary` only.
//! 2. After CONNACK, one SUBSCRIBE: `spBv1.0/#` (QoS 0; or `spBv1.0/<group>/#` per configured
//!    group) and `spBv1.0/STATE/<host_id>` (QoS 1).
//! 3. After its SUBACK, the first PUBLISH of the session: the birth
//!    `{"online":true,"timestamp":T}` (QoS 1, retained). Only then may rebirth requests go out.
//! 4. Whenever its own STATE arrives with `online:false` (a late Will, a retained death, a
//!    fake), the birth is published again with the same `T`.
//! 5. On shutdown: the death `{"online":false,"timestamp":now}` (QoS 1, retained), wait for its
//!    PUBACK (bounded), then DISCONNECT (which makes the broker drop the Will).
//!
//! Mode `active` skips the Will and every STATE publish but sends rebirth requests; `passive`
//! publishes nothing at all.
//!
//! A new client and event loop are built for every attempt, because the Will's timestamp
//! changes with every CONNECT. The event loop is polled by this task alone; it never awaits a
//! client request (requests use `try_*`, research rust-stack §1 rule 3). Received messages
//! are routed to the shards over bounded queues (awaiting a full queue is the back-pressure).
//! Rebirth requests are published by the shards with `try_publish` through the client of the
//! current, born session ([`Publisher`]); between sessions they are dropped and counted (the
//! hosts reset their rebirth state on connection loss and every node re-births to a primary
//! host that comes back).
//!
//! When a connected session ends for any reason but shutdown, every shard is told
//! (`Host::connection_lost`: every known metric goes STALE at the time of the loss), then the
//! task waits an exponential backoff with jitter and reconnects.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, Broker, ConnectionError, Event, Incoming, LastWill, MqttOptions, Outgoing,
    PublishOptions, QoS, SubscribeFilter, SubscribeReasonCode, TlsConfiguration, Transport,
};
use sparkplug::topic::state_topic;
use sparkplug::{HostState, RebirthRequest, StateVersion};
use thiserror::Error;
use tokio::sync::watch;

use crate::log_limit::LogLimiter;
use crate::pipeline::{PipelineStats, Router, now_ms};
use crate::settings::{BrokerAddress, HostMode, ReconnectConfig, Settings};

/// Capacity of the MQTT client's request channel (subscribe, STATE, rebirth requests).
const REQUEST_CAPACITY: usize = 1024;
/// How long shutdown waits for the PUBACK of the STATE death, then for the DISCONNECT.
const SHUTDOWN_STEP: Duration = Duration::from_secs(5);

/// Everything the MQTT session needs, resolved from [`Settings`].
#[derive(Clone)]
pub struct SourceConfig {
    pub broker: BrokerAddress,
    pub client_id: String,
    pub host_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive_s: u16,
    pub max_packet_size: usize,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Name checked against the broker certificate, if not the broker host.
    pub server_name: Option<String>,
    pub reconnect: ReconnectConfig,
    pub mode: HostMode,
    /// Empty = the whole namespace.
    pub groups: Vec<String>,
}

impl std::fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceConfig")
            .field("broker", &self.broker)
            .field("client_id", &self.client_id)
            .field("host_id", &self.host_id)
            .field("tls", &self.tls.is_some())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Why the source cannot start.
#[derive(Debug, Error)]
pub enum SourceError {
    #[error("TLS configuration: {0}")]
    Tls(String),
}

impl SourceConfig {
    /// From validated settings. The TLS configuration built by `check_config` is used; when
    /// the settings came from `load_settings` (no files read) it is built here, with relative
    /// paths taken from the working directory.
    pub fn from_settings(s: &Settings) -> Result<SourceConfig, SourceError> {
        let m = &s.file.mqtt;
        let tls = match (&s.tls, s.broker.tls) {
            (Some(t), _) => Some(Arc::clone(t)),
            (None, true) => Some(Arc::new(
                super::tls::build_client_config(&m.tls, Path::new(".")).map_err(|ps| {
                    SourceError::Tls(
                        ps.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; "),
                    )
                })?,
            )),
            (None, false) => None,
        };
        Ok(SourceConfig {
            broker: s.broker.clone(),
            client_id: s.client_id.clone(),
            host_id: m.host_id.clone(),
            username: m.username.clone(),
            password: m.password.clone(),
            keep_alive_s: u16::try_from(m.keep_alive_s).unwrap_or(u16::MAX),
            max_packet_size: m.max_packet_size as usize,
            tls,
            server_name: m.tls.server_name.clone(),
            reconnect: m.reconnect.clone(),
            mode: s.file.sparkplug.mode,
            groups: s.file.sparkplug.groups.clone(),
        })
    }

    /// The STATE topic of this host.
    pub fn state_topic(&self) -> String {
        state_topic(&self.host_id)
    }

    /// The subscriptions of a session: the namespace (or the configured groups) at QoS 0 and
    /// the host's own STATE topic at QoS 1.
    pub fn subscriptions(&self) -> Vec<SubscribeFilter> {
        let mut subs: Vec<SubscribeFilter> = if self.groups.is_empty() {
            vec![SubscribeFilter::new(
                "spBv1.0/#".to_string(),
                QoS::AtMostOnce,
            )]
        } else {
            self.groups
                .iter()
                .map(|g| SubscribeFilter::new(format!("spBv1.0/{g}/#"), QoS::AtMostOnce))
                .collect()
        };
        subs.push(SubscribeFilter::new(self.state_topic(), QoS::AtLeastOnce));
        subs
    }

    /// The MQTT options of one connection attempt whose CONNECT carries `t_connect`.
    pub(crate) fn options(&self, t_connect: u64) -> MqttOptions {
        // With a `server_name`, the broker "host" is that name (rustls checks the certificate
        // against it) and the socket goes to the real address.
        let (host, real) = match (&self.tls, &self.server_name) {
            (Some(_), Some(name)) if *name != self.broker.host => (
                name.clone(),
                Some(format!("{}:{}", self.broker.host, self.broker.port)),
            ),
            _ => (self.broker.host.clone(), None),
        };
        let mut o = MqttOptions::new(self.client_id.clone(), Broker::tcp(host, self.broker.port));
        o.set_clean_session(true);
        o.set_keep_alive(self.keep_alive_s.max(1));
        o.set_max_packet_size(self.max_packet_size, self.max_packet_size);
        if let Some(user) = &self.username {
            o.set_credentials(user.clone(), self.password.clone().unwrap_or_default());
        }
        if let Some(tls) = &self.tls {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::clone(tls),
            )));
        }
        if let Some(addr) = real {
            o.set_socket_connector(move |_host, network_options| {
                let addr = addr.clone();
                async move { rumqttc::default_socket_connect(addr, network_options).await }
            });
        }
        if self.mode.publishes_state() {
            o.set_last_will(LastWill::new(
                self.state_topic(),
                HostState::to_json(false, t_connect),
                QoS::AtLeastOnce,
                true,
            ));
        }
        o
    }
}

/// What the session looks like, for readiness checks, the status line and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionStatus {
    /// A CONNACK was received and the connection has not been lost since.
    pub connected: bool,
    /// Sessions that reached the born state (subscribed, STATE birth published in `primary`).
    pub sessions: u64,
    /// The `T` of the current session's Will and birth.
    pub state_timestamp: Option<u64>,
    /// Connections that were established and then lost.
    pub losses: u64,
    /// The last connection error, written for the operator.
    pub last_error: Option<String>,
}

/// The client of the current born session, shared with the shards for rebirth requests.
#[derive(Clone)]
pub struct Publisher {
    rx: watch::Receiver<Option<AsyncClient>>,
    /// A replay's publisher: never connected, and says so.
    replay: bool,
}

/// Why a rebirth request was not handed to the MQTT client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishDrop {
    /// No born session (between connections, or mode `passive`).
    NotConnected,
    /// The client's request queue is full.
    QueueFull,
    /// A replay (`oee-stream replay`) sends nothing.
    Replay,
}

impl Publisher {
    /// The publisher of a replay: every request is dropped with [`PublishDrop::Replay`].
    pub fn replay() -> Publisher {
        let (_, rx) = watch::channel(None);
        Publisher { rx, replay: true }
    }

    /// Queues a rebirth request (NCMD, QoS 0, not retained) as the host made it, without
    /// waiting.
    pub fn publish_rebirth(&self, req: &RebirthRequest) -> Result<(), PublishDrop> {
        if self.replay {
            return Err(PublishDrop::Replay);
        }
        let guard = self.rx.borrow();
        let Some(client) = guard.as_ref() else {
            return Err(PublishDrop::NotConnected);
        };
        client
            .try_publish(
                req.topic.clone(),
                req.payload.clone(),
                PublishOptions::at_most_once(),
            )
            .map_err(|_| PublishDrop::QueueFull)
    }
}

/// The running session's shared ends.
pub(crate) struct SourceParts {
    pub publisher: Publisher,
    pub client_tx: watch::Sender<Option<AsyncClient>>,
    pub status_tx: watch::Sender<SessionStatus>,
}

pub(crate) fn parts() -> SourceParts {
    let (client_tx, rx) = watch::channel(None);
    let (status_tx, _) = watch::channel(SessionStatus::default());
    SourceParts {
        publisher: Publisher { rx, replay: false },
        client_tx,
        status_tx,
    }
}

enum End {
    Shutdown,
    Lost(ConnectionError),
}

/// Backoff before attempt `n` (0-based after a failure): `min · 2^n` capped at `max`, with
/// jitter: a uniform pick in its upper half.
pub fn backoff(cfg: &ReconnectConfig, n: u32) -> Duration {
    let base = cfg
        .min_backoff_ms
        .saturating_mul(1u64 << n.min(30))
        .min(cfg.max_backoff_ms)
        .max(1);
    let low = base / 2;
    Duration::from_millis(fastrand::u64(low..=base))
}

/// Runs the session until `shutdown` turns true (or its sender is dropped).
pub(crate) async fn run(
    cfg: SourceConfig,
    router: Router,
    client_tx: watch::Sender<Option<AsyncClient>>,
    status_tx: watch::Sender<SessionStatus>,
    stats: Arc<PipelineStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let state_topic = cfg.state_topic();
    let mut failures: u32 = 0;
    let mut topic_log = LogLimiter::standard();
    'connect: loop {
        if *shutdown.borrow() {
            break;
        }
        let t_connect = now_ms();
        let (client, mut eventloop) = AsyncClient::builder(cfg.options(t_connect))
            .capacity(REQUEST_CAPACITY)
            .build();
        let mut connected = false;
        let end = loop {
            let event = tokio::select! {
                r = shutdown.changed() => {
                    if r.is_err() || *shutdown.borrow() {
                        break End::Shutdown;
                    }
                    continue;
                }
                ev = eventloop.poll() => ev,
            };
            let packet = match event {
                Ok(Event::Incoming(p)) => p,
                Ok(Event::Outgoing(_)) => continue,
                Err(e) => break End::Lost(e),
            };
            match packet {
                Incoming::ConnAck(_) => {
                    connected = true;
                    failures = 0;
                    stats.connects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        broker = %format!("{}:{}", cfg.broker.host, cfg.broker.port),
                        tls = cfg.tls.is_some(),
                        "connected to the MQTT broker"
                    );
                    status_tx.send_modify(|s| {
                        s.connected = true;
                        s.last_error = None;
                    });
                    if let Err(e) = client.try_subscribe_many(cfg.subscriptions()) {
                        tracing::error!(error = %e, "cannot queue the SUBSCRIBE");
                        break End::Lost(ConnectionError::RequestsDone);
                    }
                }
                Incoming::SubAck(ack) => {
                    if ack
                        .return_codes
                        .iter()
                        .any(|c| matches!(c, SubscribeReasonCode::Failure))
                    {
                        let msg = format!(
                            "the broker refused a subscription ({:?}); check its ACL for the client `{}`",
                            ack.return_codes, cfg.client_id
                        );
                        tracing::error!("{msg}");
                        status_tx.send_modify(|s| s.last_error = Some(msg));
                    }
                    if cfg.mode.publishes_state() {
                        publish_birth(&client, &state_topic, t_connect, &stats);
                    }
                    if cfg.mode != HostMode::Passive {
                        client_tx.send_replace(Some(client.clone()));
                    }
                    status_tx.send_modify(|s| {
                        s.sessions += 1;
                        s.state_timestamp = Some(t_connect);
                    });
                }
                Incoming::Publish(p) => {
                    let received_at = now_ms();
                    let Ok(topic) = std::str::from_utf8(&p.topic) else {
                        stats.count_invalid_topic();
                        if let Some(left_out) = topic_log.admit(Instant::now()) {
                            tracing::warn!(topic = %String::from_utf8_lossy(&p.topic), left_out,
                                "topic is not UTF-8 (rate-limited)");
                        }
                        continue;
                    };
                    if topic == state_topic {
                        stats.state_messages.fetch_add(1, Ordering::Relaxed);
                        own_state(&cfg, &client, &state_topic, t_connect, &p.payload, &stats);
                        continue;
                    }
                    let routed =
                        super::route_message(&router, &stats, topic, p.payload, received_at).await;
                    if let Err(e) = routed
                        && let Some(left_out) = topic_log.admit(Instant::now())
                    {
                        tracing::warn!(topic, error = %e, left_out,
                            "not a Sparkplug B topic (counted in oee_stream_invalid_topics; rate-limited)");
                    }
                }
                _ => {}
            }
        };
        // Rebirth requests stop with the session.
        client_tx.send_replace(None);
        match end {
            End::Shutdown => {
                if connected {
                    close(&cfg, &client, &mut eventloop, &state_topic).await;
                }
                status_tx.send_modify(|s| s.connected = false);
                break 'connect;
            }
            End::Lost(e) => {
                let msg = describe(&e);
                if connected {
                    let at = now_ms();
                    stats.connection_losses.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %msg, "lost the MQTT connection; every metric is STALE until the nodes re-birth");
                    router.connection_lost(at).await;
                    status_tx.send_modify(|s| {
                        s.connected = false;
                        s.losses += 1;
                        s.last_error = Some(msg);
                    });
                } else {
                    stats.connect_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %msg, "cannot connect to the MQTT broker");
                    status_tx.send_modify(|s| s.last_error = Some(msg));
                }
                drop(eventloop);
                let wait = backoff(&cfg.reconnect, failures);
                failures = failures.saturating_add(1);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    r = shutdown.changed() => {
                        if r.is_err() || *shutdown.borrow() {
                            break 'connect;
                        }
                    }
                }
            }
        }
    }
    client_tx.send_replace(None);
}

fn publish_birth(client: &AsyncClient, topic: &str, t_connect: u64, stats: &PipelineStats) {
    match client.try_publish(
        topic.to_string(),
        HostState::to_json(true, t_connect),
        PublishOptions::at_least_once().retained(),
    ) {
        Ok(()) => {
            stats.state_births.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => tracing::error!(error = %e, "cannot queue the STATE birth"),
    }
}

/// Our own STATE arrived: an offline one is answered with the birth of this session.
fn own_state(
    cfg: &SourceConfig,
    client: &AsyncClient,
    topic: &str,
    t_connect: u64,
    payload: &[u8],
    stats: &PipelineStats,
) {
    if !cfg.mode.publishes_state() {
        return;
    }
    match HostState::parse(payload, StateVersion::V3) {
        Ok(state) if !state.online => {
            tracing::info!(
                timestamp = state.timestamp,
                "own STATE is offline (late Will, retained death or another writer); publishing the birth again"
            );
            stats.state_republished.fetch_add(1, Ordering::Relaxed);
            publish_birth(client, topic, t_connect, stats);
        }
        Ok(state) => {
            if state.timestamp != Some(t_connect) {
                tracing::warn!(
                    timestamp = state.timestamp,
                    ours = t_connect,
                    "another online STATE for this host_id: is it used by a second instance?"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "own STATE topic carries an invalid payload"),
    }
}

/// The death before a clean DISCONNECT.
async fn close(
    cfg: &SourceConfig,
    client: &AsyncClient,
    eventloop: &mut rumqttc::EventLoop,
    state_topic: &str,
) {
    if cfg.mode.publishes_state() {
        match client.try_publish_tracked(
            state_topic.to_string(),
            HostState::to_json(false, now_ms()),
            PublishOptions::at_least_once().retained(),
        ) {
            Ok(notice) => {
                let acked = tokio::time::timeout(SHUTDOWN_STEP, async {
                    let mut wait = std::pin::pin!(notice.wait_async());
                    loop {
                        tokio::select! {
                            r = &mut wait => return r.is_ok(),
                            ev = eventloop.poll() => if ev.is_err() { return false },
                        }
                    }
                })
                .await;
                if !matches!(acked, Ok(true)) {
                    tracing::warn!("the STATE death was not acknowledged before shutdown");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot queue the STATE death"),
        }
    }
    if client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(SHUTDOWN_STEP, async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
    tracing::info!("disconnected from the MQTT broker");
}

/// A connection error in words an operator can act on.
pub fn describe(e: &ConnectionError) -> String {
    let text = e.to_string();
    // A TLS 1.3 server checks the client certificate after the handshake: its refusal shows up
    // as an alert on the first read, wrapped in whatever was being read.
    if let Some(i) = text.find("received fatal alert") {
        let alert = &text[i..];
        let hint = if alert.contains("UnknownCA")
            || alert.contains("BadCertificate")
            || alert.contains("CertificateRequired")
            || alert.contains("CertificateUnknown")
        {
            " (the broker does not accept the client certificate: is it signed by a CA the broker trusts, and are mqtt.tls.cert/key set?)"
        } else {
            ""
        };
        return format!("the broker refused the TLS session: {alert}{hint}");
    }
    match e {
        ConnectionError::Tls(t) => format!("TLS handshake with the broker failed: {t}"),
        ConnectionError::Io(io) => format!("network error: {io}"),
        ConnectionError::ConnectionRefused(code) => {
            format!("the broker refused the connection: {code:?} (check credentials and client id)")
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: HostMode) -> SourceConfig {
        SourceConfig {
            broker: BrokerAddress {
                tls: false,
                host: "broker".into(),
                port: 1883,
            },
            client_id: "oee-stream-h1".into(),
            host_id: "h1".into(),
            username: None,
            password: None,
            keep_alive_s: 30,
            max_packet_size: 16 << 20,
            tls: None,
            server_name: None,
            reconnect: ReconnectConfig::default(),
            mode,
            groups: Vec::new(),
        }
    }

    #[test]
    fn the_will_is_the_state_death_with_the_connect_time() {
        let o = config(HostMode::Primary).options(1_718_900_000_123);
        assert!(o.clean_session());
        assert_eq!(o.max_packet_size(), 16 << 20);
        let will = o.last_will().expect("a Will");
        assert_eq!(will.topic, "spBv1.0/STATE/h1");
        assert_eq!(
            &will.message[..],
            br#"{"online":false,"timestamp":1718900000123}"#
        );
        assert_eq!(will.qos, QoS::AtLeastOnce);
        assert!(will.retain);
        assert!(config(HostMode::Active).options(1).last_will().is_none());
        assert!(config(HostMode::Passive).options(1).last_will().is_none());
    }

    #[test]
    fn subscriptions_cover_the_namespace_and_the_own_state() {
        let subs = config(HostMode::Primary).subscriptions();
        let got: Vec<(String, QoS)> = subs.into_iter().map(|s| (s.path, s.qos)).collect();
        assert_eq!(
            got,
            vec![
                ("spBv1.0/#".to_string(), QoS::AtMostOnce),
                ("spBv1.0/STATE/h1".to_string(), QoS::AtLeastOnce),
            ]
        );
        let mut c = config(HostMode::Primary);
        c.groups = vec!["G1".into(), "G2".into()];
        let paths: Vec<String> = c.subscriptions().into_iter().map(|s| s.path).collect();
        assert_eq!(
            paths,
            ["spBv1.0/G1/#", "spBv1.0/G2/#", "spBv1.0/STATE/h1"].map(String::from)
        );
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let cfg = ReconnectConfig {
            min_backoff_ms: 100,
            max_backoff_ms: 1000,
        };
        for _ in 0..50 {
            let d0 = backoff(&cfg, 0).as_millis();
            assert!((50..=100).contains(&d0), "{d0}");
            let d2 = backoff(&cfg, 2).as_millis();
            assert!((200..=400).contains(&d2), "{d2}");
            let d9 = backoff(&cfg, 40).as_millis();
            assert!((500..=1000).contains(&d9), "{d9}");
        }
    }
}
