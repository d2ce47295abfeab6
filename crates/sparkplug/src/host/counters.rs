//! Plain counters, one per notable event, for metrics and logs.

macro_rules! counters {
    ($(#[$doc:meta])* pub struct $name:ident { $($(#[$fdoc:meta])* pub $field:ident: u64,)+ }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: u64,)+
        }

        impl $name {
            /// Every counter with its field name, in declaration order (for exporters).
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
                [$((stringify!($field), self.$field)),+].into_iter()
            }

            /// Adds `other` field by field (to sum the counters of several hosts).
            pub fn add(&mut self, other: &$name) {
                $(self.$field += other.$field;)+
            }
        }
    };
}

counters! {
/// Every notable event of a [`Host`](super::Host) increments one of these. They only grow
/// (a caller exporting them as Prometheus counters can read them at any time).
pub struct HostCounters {
    /// Every call of `handle`.
    pub messages: u64,
    /// Topics that are not Sparkplug B topics.
    pub topic_invalid: u64,
    /// STATE messages (ignored by the session state machine).
    pub state_ignored: u64,
    /// NCMD and DCMD messages (ignored: they are sent by hosts, not edge nodes).
    pub commands_ignored: u64,
    /// Payloads that are not valid Sparkplug B protobuf.
    pub decode_errors: u64,
    /// NBIRTH / DBIRTH rejected as malformed (undecodable, no seq, a metric without name or
    /// datatype, a duplicate alias, a value that does not fit).
    pub births_malformed: u64,
    /// NBIRTHs applied.
    pub node_births: u64,
    /// DBIRTHs applied.
    pub device_births: u64,
    /// NDATA / DDATA messages applied.
    pub data_messages: u64,
    /// Samples emitted (birth, data and stale).
    pub samples: u64,
    /// Samples with `is_historical`.
    pub historical_samples: u64,
    /// STALE samples emitted on deaths and connection loss.
    pub stale_samples: u64,
    /// Messages for an edge node that has no current session (never born, dead, or lost).
    pub unknown_node: u64,
    /// Messages for a device that has no current DBIRTH.
    pub unknown_device: u64,
    /// DATA metrics whose alias or name is not in the current birth.
    pub unknown_metric: u64,
    /// DATA metrics with neither a name nor an alias.
    pub metric_without_id: u64,
    /// DATA metrics whose value does not fit the birth datatype.
    pub value_mismatch: u64,
    /// Template definitions outside an NBIRTH (rejected).
    pub template_definition_rejected: u64,
    /// NDATA / DDATA / DBIRTH / DDEATH without a seq, or with a seq above 255.
    pub seq_invalid: u64,
    /// Messages put in a reorder buffer (their seq was ahead of the expected one).
    pub reorder_buffered: u64,
    /// Gaps that filled before the reorder timeout.
    pub reorder_recovered: u64,
    /// Gaps given up: not filled within the reorder timeout, a full reorder buffer, any gap with
    /// reorder timeout 0, or a message 128 or more past the expected seq (its seq looks behind,
    /// its payload timestamp is newer than everything applied: a loss of 128 or more messages).
    /// Each asks for a rebirth.
    pub seq_gaps: u64,
    /// Buffered messages dropped because a new NBIRTH, NDEATH or connection loss ended the session.
    pub reorder_discarded: u64,
    /// Reorder buffers applied as they were because the host was flushed (shutdown).
    pub reorder_flushed: u64,
    /// Reorder buffers that overflowed `max_buffered_per_node`.
    pub reorder_overflow: u64,
    /// Messages of a given-up gap that arrived after all (seq behind the expected one, position
    /// given up): DATA applied flagged late, DBIRTH / DDEATH dropped.
    pub seq_late: u64,
    /// Messages dropped as copies of one already received (seq applied before, in the reorder
    /// buffer, or older than the current NBIRTH, and a payload timestamp no newer than the
    /// newest applied).
    pub seq_duplicates: u64,
    /// NDEATHs applied.
    pub node_deaths: u64,
    /// NDEATHs ignored (bdSeq does not match, node already offline or unknown).
    pub node_deaths_ignored: u64,
    /// DDEATHs applied.
    pub device_deaths: u64,
    /// DDEATHs ignored (device already offline).
    pub device_deaths_ignored: u64,
    /// Calls of `connection_lost`.
    pub connection_losses: u64,
    /// Reasons to request a rebirth (before mode and throttling).
    pub rebirth_triggers: u64,
    /// Rebirth requests emitted.
    pub rebirth_requests: u64,
    /// Triggers absorbed because a request for the node is outstanding or queued.
    pub rebirth_suppressed: u64,
    /// Triggers held back by the per-node throttle (sent when it expires).
    pub rebirth_throttled: u64,
    /// Requests queued by the global rate limit (sent later by `poll`).
    pub rebirth_deferred: u64,
    /// Triggers not acted on because the rebirth mode is `Off`.
    pub rebirth_disabled: u64,
    /// New nodes refused by `max_nodes`.
    pub limit_nodes: u64,
    /// New devices refused by `max_devices_per_node`.
    pub limit_devices: u64,
    /// Births refused by `max_metrics_per_node`.
    pub limit_metrics: u64,
    /// Nodes without a session dropped to make room for a new node.
    pub nodes_evicted: u64,}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_sums_every_field_and_iter_names_them_all() {
        let mut a = HostCounters {
            messages: 2,
            nodes_evicted: 1,
            ..HostCounters::default()
        };
        let b = HostCounters {
            messages: 3,
            nodes_evicted: 4,
            seq_gaps: 7,
            ..HostCounters::default()
        };
        a.add(&b);
        assert_eq!((a.messages, a.nodes_evicted, a.seq_gaps), (5, 5, 7));
        let names: Vec<&str> = a.iter().map(|(n, _)| n).collect();
        assert_eq!(names.first(), Some(&"messages"));
        assert_eq!(names.last(), Some(&"nodes_evicted"));
        assert!(a.iter().any(|(n, v)| n == "seq_gaps" && v == 7));
    }
}
