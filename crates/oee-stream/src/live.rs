//! The live view: what the HTTP API and the dashboard show (machines with their current state
//! and OEE, lines, fault instances, edge nodes), and the one write the API allows
//! (acknowledging a fault).
//!
//! The OEE task publishes a fresh [`LiveView`] on a watch channel whenever it changes; readers
//! never lock the task's state. Acknowledgements travel to the task as [`AckRequest`]s with a
//! reply channel, so the acknowledgement is applied in the task's order like any other input,
//! and the API answers with the instance as it is afterwards.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::sink::FaultRow;

/// KPIs of one window, as the API shows them. Ratios are `None` (JSON `null`) where their
/// denominator is zero: never 0 % or 100 % by default.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct KpiView {
    /// `hour`, `rolling`, `shift` or `day`.
    pub window_kind: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub availability: Option<f64>,
    pub performance: Option<f64>,
    pub quality: Option<f64>,
    pub oee: Option<f64>,
    pub mtbf_s: Option<f64>,
    pub mttr_s: Option<f64>,
    pub total_count: i64,
    pub good_count: i64,
    pub reject_count: i64,
    pub planned_ms: i64,
    pub run_ms: i64,
    pub flags: Vec<String>,
}

/// One state interval of the timeline (the last hour).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StateSpan {
    /// `running`, `unplanned_stop`, `setup`, `planned_stop`, `not_scheduled`, `unknown`,
    /// `micro_stop`.
    pub category: String,
    pub start_ms: i64,
    /// `None` while it lasts.
    pub end_ms: Option<i64>,
}

/// One machine.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MachineView {
    pub site_id: String,
    pub line_id: String,
    pub machine_id: String,
    /// Current state category (see [`StateSpan::category`]), `None` before the first state.
    pub state: Option<String>,
    pub state_since_ms: Option<i64>,
    /// The current (partial) hour window.
    pub current: Option<KpiView>,
    /// The latest rolling window.
    pub rolling: Option<KpiView>,
    /// State intervals of the last hour, oldest first.
    pub timeline: Vec<StateSpan>,
    /// Fault instances not yet resolved and acknowledged.
    pub active_faults: usize,
}

/// One line: the machines' sums re-summed (never an average of ratios).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LineView {
    pub site_id: String,
    pub line_id: String,
    pub machines: Vec<String>,
    pub current: Option<KpiView>,
    pub rolling: Option<KpiView>,
}

/// One fault instance with its current state: its `faults` row, and whether it was resolved
/// before anyone acknowledged it. Serialized flat (the row's fields, then
/// `resolved_unacknowledged`); dereferences to the row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultView {
    #[serde(flatten)]
    pub row: FaultRow,
    /// Resolved before anyone acknowledged it.
    pub resolved_unacknowledged: bool,
}

impl std::ops::Deref for FaultView {
    type Target = FaultRow;

    fn deref(&self) -> &FaultRow {
        &self.row
    }
}

impl std::ops::DerefMut for FaultView {
    fn deref_mut(&mut self) -> &mut FaultRow {
        &mut self.row
    }
}

/// One edge node as the host sees it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeView {
    pub group: String,
    pub edge_node: String,
    pub online: bool,
    pub bd_seq: Option<u64>,
    pub last_birth_ms: Option<i64>,
    pub last_death_ms: Option<i64>,
    pub devices_online: Vec<String>,
}

/// Everything the API shows, at one moment. Lists are sorted by their ids.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LiveView {
    /// When this view was made (wall clock, ms since the epoch).
    pub updated_ms: i64,
    /// The OEE engine's watermark (event time up to which windows are final).
    pub watermark_ms: i64,
    pub machines: Vec<MachineView>,
    pub lines: Vec<LineView>,
    pub faults: Vec<FaultView>,
    pub nodes: Vec<NodeView>,
}

/// Why an acknowledgement was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("no fault instance {0}")]
    UnknownInstance(String),
    #[error("fault instance {0} is already acknowledged")]
    AlreadyAcknowledged(String),
    #[error("the OEE task is not running")]
    Stopped,
}

/// An operator acknowledges a fault instance.
#[derive(Debug)]
pub struct AckRequest {
    pub instance_id: String,
    /// Who acknowledged (as given to the API).
    pub who: String,
    /// When (wall clock, ms since the epoch).
    pub at_ms: i64,
    /// The instance after the acknowledgement, or why it was refused.
    pub reply: oneshot::Sender<Result<FaultView, AckError>>,
}

/// The reader's end: the latest view and the acknowledgement channel.
#[derive(Clone, Debug)]
pub struct Live {
    pub view: watch::Receiver<Arc<LiveView>>,
    pub acks: mpsc::Sender<AckRequest>,
}

impl Live {
    /// A channel pair: the [`Live`] for readers, and the publisher's ends.
    pub fn channel(
        ack_capacity: usize,
    ) -> (
        Live,
        watch::Sender<Arc<LiveView>>,
        mpsc::Receiver<AckRequest>,
    ) {
        let (view_tx, view) = watch::channel(Arc::new(LiveView::default()));
        let (acks, ack_rx) = mpsc::channel(ack_capacity.max(1));
        (Live { view, acks }, view_tx, ack_rx)
    }

    /// The current view.
    pub fn snapshot(&self) -> Arc<LiveView> {
        Arc::clone(&self.view.borrow())
    }

    /// Sends an acknowledgement to the OEE task and waits for its answer.
    pub async fn acknowledge(
        &self,
        instance_id: String,
        who: String,
        at_ms: i64,
    ) -> Result<FaultView, AckError> {
        let (reply, answer) = oneshot::channel();
        let req = AckRequest {
            instance_id,
            who,
            at_ms,
            reply,
        };
        self.acks.send(req).await.map_err(|_| AckError::Stopped)?;
        answer.await.unwrap_or(Err(AckError::Stopped))
    }
}
