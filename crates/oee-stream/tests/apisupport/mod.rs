//! Shared by the API and dashboard tests: the HTTP server with a fake OEE task behind its
//! [`Live`] (publishes a sample view, answers acknowledgements and records them), and raw
//! HTTP/1.1 requests over TCP.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use oee_stream::http::{self, HttpState};
use oee_stream::live::{
    AckError, FaultView, KpiView, LineView, Live, LiveView, MachineView, NodeView, StateSpan,
};
use oee_stream::metrics;
use oee_stream::pipeline::PipelineStats;
use oee_stream::settings::AcknowledgeConfig;
use oee_stream::sink::FaultRow;
use oee_stream::sink::SinkStats;
use oee_stream::source::mqtt::SessionStatus;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

/// A fixed "now" for the sample view (2025-01-06 10:30:00 UTC).
pub const NOW_MS: i64 = 1_736_159_400_000;
pub const MIN: i64 = 60_000;

/// An acknowledgement the fake OEE task received.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    pub instance_id: String,
    pub who: String,
    pub at_ms: i64,
}

pub struct Server {
    pub addr: SocketAddr,
    /// Publishes views as the OEE task would.
    pub view: watch::Sender<Arc<LiveView>>,
    /// What the fake OEE task received.
    pub received: Arc<Mutex<Vec<Received>>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn kpi(kind: &str, start: i64, a: Option<f64>, p: Option<f64>, q: Option<f64>) -> KpiView {
    let oee = match (a, p, q) {
        (Some(a), Some(p), Some(q)) => Some(a * p * q),
        _ => None,
    };
    KpiView {
        window_kind: kind.into(),
        window_start_ms: start,
        window_end_ms: start + 60 * MIN,
        availability: a,
        performance: p,
        quality: q,
        oee,
        mtbf_s: Some(600.0),
        mttr_s: Some(120.0),
        total_count: 200,
        good_count: 190,
        reject_count: 10,
        planned_ms: 30 * MIN,
        run_ms: 25 * MIN,
        flags: vec![],
    }
}

fn fault(id: &str, machine: &str, code: i64, state: &str, severity: i32, first: i64) -> FaultView {
    FaultView {
        row: FaultRow {
            id: id.into(),
            site_id: "plant1".into(),
            line_id: "L1".into(),
            machine_id: machine.into(),
            code,
            state: state.into(),
            severity,
            first_active_ms: first,
            last_change_ms: first,
            resolved_ms: None,
            acknowledged_ms: None,
            acknowledged_by: None,
            occurrences: 1,
            flags: vec![],
        },
        resolved_unacknowledged: false,
    }
}

/// Two machines on one line (M2 has no performance yet: its OEE is `null`), faults in every
/// state, one node online and one offline.
pub fn sample_view() -> LiveView {
    let hour = NOW_MS - 30 * MIN;
    let machine = |id: &str, state: &str, current: KpiView| MachineView {
        site_id: "plant1".into(),
        line_id: "L1".into(),
        machine_id: id.into(),
        state: Some(state.into()),
        state_since_ms: Some(NOW_MS - 5 * MIN),
        current: Some(current.clone()),
        rolling: Some(KpiView {
            window_kind: "rolling".into(),
            ..current
        }),
        timeline: vec![
            StateSpan {
                category: "running".into(),
                start_ms: NOW_MS - 70 * MIN,
                end_ms: Some(NOW_MS - 20 * MIN),
            },
            StateSpan {
                category: "unplanned_stop".into(),
                start_ms: NOW_MS - 20 * MIN,
                end_ms: Some(NOW_MS - 5 * MIN),
            },
            StateSpan {
                category: state.into(),
                start_ms: NOW_MS - 5 * MIN,
                end_ms: None,
            },
        ],
        active_faults: 0,
    };
    let mut m1 = machine(
        "M1",
        "unplanned_stop",
        kpi("hour", hour, Some(0.8), Some(0.9), Some(0.95)),
    );
    m1.active_faults = 2;
    let mut m2 = machine("M2", "running", kpi("hour", hour, Some(0.5), None, None));
    m2.active_faults = 1;
    let mut acked = fault("F-2", "M1", 17, "ACKNOWLEDGED", 2, NOW_MS - 40 * MIN);
    acked.acknowledged_ms = Some(NOW_MS - 30 * MIN);
    acked.acknowledged_by = Some("Ada".into());
    let mut resolved = fault("F-3", "M2", 5, "RESOLVED", 1, NOW_MS - 50 * MIN);
    resolved.resolved_ms = Some(NOW_MS - 45 * MIN);
    resolved.acknowledged_ms = Some(NOW_MS - 46 * MIN);
    resolved.acknowledged_by = Some("Bob".into());
    LiveView {
        updated_ms: NOW_MS,
        watermark_ms: NOW_MS - 1000,
        machines: vec![m1, m2],
        lines: vec![LineView {
            site_id: "plant1".into(),
            line_id: "L1".into(),
            machines: vec!["M1".into(), "M2".into()],
            current: Some(kpi("hour", hour, Some(0.65), Some(0.9), Some(0.95))),
            rolling: None,
        }],
        faults: vec![
            fault("F-1", "M1", 42, "ACTIVE", 3, NOW_MS - 4 * MIN),
            acked,
            resolved,
            fault("F-4", "M2", 7, "ACTIVE", 1, NOW_MS - 2 * MIN),
        ],
        nodes: vec![
            NodeView {
                group: "G1".into(),
                edge_node: "E1".into(),
                online: true,
                bd_seq: Some(3),
                last_birth_ms: Some(NOW_MS - 90 * MIN),
                last_death_ms: Some(NOW_MS - 91 * MIN),
                devices_online: vec!["M1".into(), "M2".into()],
            },
            NodeView {
                group: "G1".into(),
                edge_node: "E2".into(),
                online: false,
                bd_seq: None,
                last_birth_ms: None,
                last_death_ms: Some(NOW_MS - 10 * MIN),
                devices_online: vec![],
            },
        ],
    }
}

/// Starts the server with `ack` settings and the sample view. With `oee_running == false`
/// nobody answers acknowledgements (the OEE task has stopped).
pub async fn start(ack: AcknowledgeConfig, oee_running: bool) -> Server {
    let stats = Arc::new(PipelineStats::new(1));
    stats.running.store(true, Ordering::Relaxed);
    let sink = Arc::new(SinkStats::default());
    let (_status_tx, status) = watch::channel(SessionStatus::default());
    let (live, view_tx, mut ack_rx) = Live::channel(8);
    view_tx.send_replace(Arc::new(sample_view()));
    let received = Arc::new(Mutex::new(Vec::new()));
    if oee_running {
        let view_tx = view_tx.clone();
        let received = Arc::clone(&received);
        tokio::spawn(async move {
            while let Some(req) = ack_rx.recv().await {
                received.lock().unwrap().push(Received {
                    instance_id: req.instance_id.clone(),
                    who: req.who.clone(),
                    at_ms: req.at_ms,
                });
                let mut view = (**view_tx.borrow()).clone();
                let answer = match view.faults.iter_mut().find(|f| f.id == req.instance_id) {
                    None => Err(AckError::UnknownInstance(req.instance_id.clone())),
                    Some(f) if f.acknowledged_ms.is_some() => {
                        Err(AckError::AlreadyAcknowledged(req.instance_id.clone()))
                    }
                    Some(f) => {
                        if f.state == "ACTIVE" {
                            f.state = "ACKNOWLEDGED".into();
                        }
                        f.acknowledged_ms = Some(req.at_ms);
                        f.acknowledged_by = Some(req.who.clone());
                        f.last_change_ms = req.at_ms;
                        Ok(f.clone())
                    }
                };
                if answer.is_ok() {
                    view_tx.send_replace(Arc::new(view));
                }
                let _ = req.reply.send(answer);
            }
        });
    } else {
        drop(ack_rx);
    }
    let state = HttpState {
        stats: Arc::clone(&stats),
        status,
        registry: Arc::new(metrics::registry(stats, sink)),
        tag_mappings: 0,
        live,
        acknowledge: ack,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(http::serve(listener, state, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        view: view_tx,
        received,
        stop: Some(stop),
    }
}

/// A response: status, headers (lower-cased names) and body.
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// One HTTP/1.1 request over a fresh TCP connection (`Connection: close`).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.expect("writes");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.expect("reads");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let mut lines = head.lines();
    let code = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        code,
        headers,
        body: body.to_string(),
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, &[], "").await
}

/// `POST /api/faults/{id}/acknowledge` with a JSON body and optional bearer token.
pub async fn post_ack(addr: SocketAddr, id: &str, body: &str, token: Option<&str>) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    request(
        addr,
        "POST",
        &format!("/api/faults/{id}/acknowledge"),
        &headers,
        body,
    )
    .await
}

pub fn enabled(token: Option<&str>) -> AcknowledgeConfig {
    AcknowledgeConfig {
        enabled: true,
        token: token.map(str::to_string),
    }
}
