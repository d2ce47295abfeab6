//! Host configuration: reorder timeout, rebirth policy and memory limits.

/// Whether and how the host asks edge nodes to re-send their births.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RebirthMode {
    /// Never send rebirth requests; every reason to send one is only counted
    /// (`HostCounters::rebirth_disabled`). A passive listener next to an existing primary host.
    Off,
    /// Send rebirth requests (a non-primary host that is allowed to act).
    Active,
    /// Send rebirth requests as the primary host. Identical to `Active` inside this state
    /// machine; the difference (STATE publishing) lives in the MQTT layer.
    #[default]
    Primary,
}

/// Configuration of a [`Host`](super::Host). `Default` gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostConfig {
    /// How long a sequence gap may stay open before the buffered messages are applied and a
    /// rebirth is requested. 0 = no reordering: a gap requests a rebirth at once. Default 2000.
    pub reorder_timeout_ms: u64,
    /// Default [`RebirthMode::Primary`].
    pub rebirth_mode: RebirthMode,
    /// At most one rebirth request per edge node per this interval. Default 5000.
    pub rebirth_throttle_ms: u64,
    /// Global token bucket: requests per second (also the burst size). Requests over the rate
    /// are queued and released by [`Host::poll`](super::Host::poll). 0 = no global limit.
    /// Default 20.
    pub global_rebirths_per_second: u32,
    /// Edge nodes tracked at once (online, offline and nodes only known from a rebirth request).
    /// Default 10 000.
    pub max_nodes: usize,
    /// Devices per edge node. Default 1000.
    pub max_devices_per_node: usize,
    /// Metrics per edge node, its devices included (template members and definitions count).
    /// Default 100 000.
    pub max_metrics_per_node: usize,
    /// Messages held in one node's reorder buffer. Default 256.
    pub max_buffered_per_node: usize,
    /// Whether an undecodable or malformed NDATA/DDATA/DDEATH asks for a rebirth (a malformed
    /// birth always does, mode permitting). Default true.
    pub rebirth_on_malformed: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            reorder_timeout_ms: 2000,
            rebirth_mode: RebirthMode::Primary,
            rebirth_throttle_ms: 5000,
            global_rebirths_per_second: 20,
            max_nodes: 10_000,
            max_devices_per_node: 1000,
            max_metrics_per_node: 100_000,
            max_buffered_per_node: 256,
            rebirth_on_malformed: true,
        }
    }
}
