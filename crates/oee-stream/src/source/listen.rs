//! A read-only MQTT subscriber for the tools (`oee-stream record`, `oee-stream discover`): the
//! connection options of `run`'s `mqtt` section (URL, credentials, TLS, packet size) but no
//! Will, no STATE and no rebirth requests of its own. It subscribes to `spBv1.0/#` at QoS 0,
//! as the service does, hands every message to the caller with its receipt time, and
//! reconnects with the configured backoff.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, Incoming, QoS, SubscribeFilter, SubscribeReasonCode};
use tokio::sync::{mpsc, watch};

use super::mqtt::{SourceConfig, backoff, describe};
use crate::pipeline::now_ms;
use crate::settings::HostMode;

/// The whole Sparkplug B namespace.
pub const NAMESPACE: &str = "spBv1.0/#";

/// What the subscriber hears.
#[derive(Debug)]
pub enum Heard {
    /// Connected and subscribed; the client may publish (discover's `--rebirth`).
    Subscribed { at_ms: u64, client: AsyncClient },
    Message {
        at_ms: u64,
        topic: Bytes,
        payload: Bytes,
    },
    /// A connected session ended (the subscriber reconnects on its own).
    Lost { at_ms: u64, error: String },
    /// A connection attempt failed.
    Failed { error: String },
}

/// The session options of the tools: `cfg` with its Will and STATE turned off and its own
/// client id.
pub fn tool_config(cfg: &SourceConfig, client_id: String) -> SourceConfig {
    SourceConfig {
        client_id,
        mode: HostMode::Passive,
        ..cfg.clone()
    }
}

/// Subscribes to [`NAMESPACE`] and sends what it hears to `out` until `stop` turns true, or
/// `out` is closed. Awaiting a full `out` slows the reading down.
pub async fn listen(cfg: SourceConfig, out: mpsc::Sender<Heard>, mut stop: watch::Receiver<bool>) {
    let mut failures: u32 = 0;
    loop {
        if *stop.borrow() {
            return;
        }
        let (client, mut eventloop) = AsyncClient::builder(cfg.options(now_ms()))
            .capacity(64)
            .build();
        let mut connected = false;
        let error = loop {
            let event = tokio::select! {
                r = stop.changed() => {
                    if r.is_err() || *stop.borrow() {
                        if connected {
                            disconnect(&client, &mut eventloop).await;
                        }
                        return;
                    }
                    continue;
                }
                ev = eventloop.poll() => ev,
            };
            let heard = match event {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    connected = true;
                    failures = 0;
                    let sub = SubscribeFilter::new(NAMESPACE.to_string(), QoS::AtMostOnce);
                    if let Err(e) = client.try_subscribe_many([sub]) {
                        break format!("cannot queue the SUBSCRIBE: {e}");
                    }
                    continue;
                }
                Ok(Event::Incoming(Incoming::SubAck(ack))) => {
                    if ack
                        .return_codes
                        .iter()
                        .any(|c| matches!(c, SubscribeReasonCode::Failure))
                    {
                        break format!(
                            "the broker refused the subscription to {NAMESPACE}; check its ACL for the client `{}`",
                            cfg.client_id
                        );
                    }
                    Heard::Subscribed {
                        at_ms: now_ms(),
                        client: client.clone(),
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => Heard::Message {
                    at_ms: now_ms(),
                    topic: p.topic,
                    payload: p.payload,
                },
                Ok(_) => continue,
                Err(e) => break describe(&e),
            };
            if out.send(heard).await.is_err() {
                return;
            }
        };
        let heard = if connected {
            Heard::Lost {
                at_ms: now_ms(),
                error,
            }
        } else {
            Heard::Failed { error }
        };
        if out.send(heard).await.is_err() {
            return;
        }
        drop(eventloop);
        let wait = backoff(&cfg.reconnect, failures);
        failures = failures.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            r = stop.changed() => if r.is_err() || *stop.borrow() { return },
        }
    }
}

/// A clean DISCONNECT, bounded.
async fn disconnect(client: &AsyncClient, eventloop: &mut rumqttc::EventLoop) {
    if client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
}
