//! Rebirth requests: the NCMD payload, the per-node throttle and the global token bucket.
//!
//! Per node: after a request is sent, further triggers within `rebirth_throttle_ms` are absorbed
//! while the request is *outstanding* (no NBIRTH since). If an NBIRTH did arrive and a new
//! trigger comes within the interval, the request is held back and sent when the interval ends
//! (`poll`), unless another NBIRTH arrives first. After the interval a trigger for a node whose
//! request went unanswered sends again.
//!
//! Globally: a token bucket of `global_rebirths_per_second` tokens (the burst), refilled at that
//! rate. A request without a token waits in a FIFO (at most one entry per node) that `poll`
//! releases as tokens come back; nothing is lost.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::datatype::DataType;
use crate::payload::{EncodeError, Metric, MetricValue, Payload};
use crate::topic::{MessageType, message_topic};
use crate::value::Value;

use super::sample::{RebirthReason, RebirthRequest};

/// The metric that asks an edge node for a rebirth.
pub const REBIRTH_METRIC: &str = "Node Control/Rebirth";

/// Builds the NCMD rebirth request for a node: topic `spBv1.0/<group>/NCMD/<edge node>`, payload
/// with timestamp `now_ms`, no seq, one metric `Node Control/Rebirth` = true (Boolean, by name,
/// no alias, metric timestamp `now_ms`).
pub fn rebirth_request(
    group: &Arc<str>,
    edge_node: &Arc<str>,
    reason: RebirthReason,
    now_ms: u64,
) -> Result<RebirthRequest, EncodeError> {
    let payload = Payload {
        timestamp: Some(now_ms),
        metrics: vec![Metric {
            name: Some(REBIRTH_METRIC.to_string()),
            timestamp: Some(now_ms),
            datatype: Some(DataType::Boolean),
            value: MetricValue::Value(Value::Boolean(true)),
            ..Metric::default()
        }],
        seq: None,
        uuid: None,
        body: None,
    };
    Ok(RebirthRequest {
        group: group.clone(),
        edge_node: edge_node.clone(),
        reason,
        topic: message_topic(group, MessageType::NCmd, edge_node, None),
        payload: payload.encode()?,
    })
}

/// What to do with a trigger, from the node's own throttle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// A request is outstanding, held back or queued: nothing to add.
    Suppressed,
    /// Held back until the throttle interval ends.
    Throttled,
    /// Send now (subject to the global limit).
    Send,
}

/// Per-node rebirth state.
#[derive(Clone, Debug, Default)]
pub(crate) struct NodeRebirth {
    pub(crate) last_sent: Option<u64>,
    /// Sent and not yet answered by an NBIRTH.
    pub(crate) outstanding: bool,
    /// Held back by the throttle; sent at `last_sent + throttle`.
    pub(crate) held: Option<RebirthReason>,
    /// Waiting in the global FIFO.
    pub(crate) queued: bool,
}

impl NodeRebirth {
    pub(crate) fn decide(&mut self, reason: RebirthReason, now: u64, throttle_ms: u64) -> Decision {
        if self.queued || self.held.is_some() {
            return Decision::Suppressed;
        }
        match self.last_sent {
            Some(last) if now < last.saturating_add(throttle_ms) => {
                if self.outstanding {
                    Decision::Suppressed
                } else {
                    self.held = Some(reason);
                    Decision::Throttled
                }
            }
            _ => Decision::Send,
        }
    }

    /// When a held-back request is due.
    pub(crate) fn release_at(&self, throttle_ms: u64) -> Option<u64> {
        self.held?;
        Some(self.last_sent.unwrap_or(0).saturating_add(throttle_ms))
    }

    pub(crate) fn sent(&mut self, now: u64) {
        self.last_sent = Some(now);
        self.outstanding = true;
        self.held = None;
        self.queued = false;
    }

    /// An NBIRTH answers every request (the last send time still throttles).
    pub(crate) fn answered(&mut self) {
        self.outstanding = false;
        self.held = None;
        self.queued = false;
    }
}

/// Token bucket in milli-tokens, so that refill needs no floating point.
#[derive(Debug)]
pub(crate) struct GlobalLimiter {
    rate: u64,
    milli_tokens: u64,
    last_refill: u64,
    pub(crate) queue: VecDeque<(Arc<str>, Arc<str>, RebirthReason)>,
}

impl GlobalLimiter {
    pub(crate) fn new(per_second: u32) -> Self {
        let rate = u64::from(per_second);
        GlobalLimiter {
            rate,
            milli_tokens: rate.saturating_mul(1000),
            last_refill: 0,
            queue: VecDeque::new(),
        }
    }

    fn refill(&mut self, now: u64) {
        if now > self.last_refill {
            let add = (now - self.last_refill).saturating_mul(self.rate);
            self.milli_tokens = self
                .milli_tokens
                .saturating_add(add)
                .min(self.rate.saturating_mul(1000));
            self.last_refill = now;
        }
    }

    /// Takes a token if one is available (always, without a limit).
    pub(crate) fn try_take(&mut self, now: u64) -> bool {
        if self.rate == 0 {
            return true;
        }
        self.refill(now);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }

    /// When the queue can next make progress.
    pub(crate) fn next_release(&self) -> Option<u64> {
        if self.queue.is_empty() {
            return None;
        }
        if self.rate == 0 || self.milli_tokens >= 1000 {
            return Some(self.last_refill);
        }
        let missing = 1000 - self.milli_tokens;
        Some(self.last_refill.saturating_add(missing.div_ceil(self.rate)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebirth_payload_is_ncmd_with_timestamp_no_seq_one_boolean_metric() {
        let g: Arc<str> = "G".into();
        let e: Arc<str> = "E".into();
        let r = rebirth_request(&g, &e, RebirthReason::SequenceGap, 1234).expect("encodes");
        assert_eq!(r.topic, "spBv1.0/G/NCMD/E");
        let p = Payload::decode(&r.payload).expect("decodes");
        assert_eq!(p.timestamp, Some(1234));
        assert_eq!(p.seq, None);
        assert_eq!(p.metrics.len(), 1);
        let m = &p.metrics[0];
        assert_eq!(m.name.as_deref(), Some(REBIRTH_METRIC));
        assert_eq!(m.alias, None);
        assert_eq!(m.datatype, Some(DataType::Boolean));
        assert_eq!(m.value, MetricValue::Value(Value::Boolean(true)));
    }

    #[test]
    fn throttle_absorbs_while_outstanding_and_holds_after_an_answer() {
        let mut n = NodeRebirth::default();
        assert_eq!(
            n.decide(RebirthReason::UnknownMetric, 0, 5000),
            Decision::Send
        );
        n.sent(0);
        assert_eq!(
            n.decide(RebirthReason::UnknownMetric, 100, 5000),
            Decision::Suppressed
        );
        // Unanswered after the interval: send again.
        assert_eq!(
            n.decide(RebirthReason::UnknownMetric, 5000, 5000),
            Decision::Send
        );
        n.sent(5000);
        n.answered();
        assert_eq!(
            n.decide(RebirthReason::SequenceGap, 6000, 5000),
            Decision::Throttled
        );
        assert_eq!(n.release_at(5000), Some(10_000));
        assert_eq!(
            n.decide(RebirthReason::SequenceGap, 6001, 5000),
            Decision::Suppressed
        );
    }

    #[test]
    fn token_bucket_refills_at_its_rate() {
        let mut l = GlobalLimiter::new(2);
        assert!(l.try_take(0));
        assert!(l.try_take(0));
        assert!(!l.try_take(0));
        l.queue
            .push_back(("G".into(), "E".into(), RebirthReason::UnknownNode));
        assert_eq!(l.next_release(), Some(500));
        assert!(!l.try_take(499));
        assert!(l.try_take(500));
        let mut unlimited = GlobalLimiter::new(0);
        assert!((0..1000).all(|_| unlimited.try_take(0)));
    }
}
