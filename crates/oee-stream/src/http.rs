//! The HTTP server (default `0.0.0.0:9100`): `/metrics` (Prometheus), `/health` (what the
//! service is doing, as JSON) and `/ready` (for orchestrators: 200 once the broker session is
//! up, 503 before and while it is down). See docs/metrics.md. The JSON API under `/api/`
//! ([`api`], docs/api.md) and the dashboard at `/` ([`dashboard`], docs/dashboard.md) read the
//! OEE task's [`Live`] view.

pub mod api;
pub mod dashboard;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::live::Live;
use crate::metrics;
use crate::pipeline::PipelineStats;
use crate::settings::AcknowledgeConfig;
use crate::source::mqtt::SessionStatus;

/// What the handlers read. Cheap to clone.
#[derive(Clone)]
pub struct HttpState {
    pub stats: Arc<PipelineStats>,
    pub status: watch::Receiver<SessionStatus>,
    pub registry: Arc<Registry>,
    /// Tag mapping rules loaded.
    pub tag_mappings: usize,
    /// The OEE task's live view and acknowledgement channel (API and dashboard).
    pub live: Live,
    /// `http.acknowledge`: whether the API may acknowledge faults, and the bearer token.
    pub acknowledge: AcknowledgeConfig,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .merge(api::routes())
        .merge(dashboard::routes())
        .with_state(state)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics_text(State(s): State<HttpState>) -> Response {
    match metrics::render(&s.registry) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "metrics encoding failed").into_response(),
    }
}

/// `{status, connected, decoder: {alias_cache_entries, cached_nodes}, normalizer:
/// {tag_mappings_count}, oee_calculator: {active_windows}, fault_state_machine:
/// {active_faults}, mqtt: {...}}`; `status` is `ok` while connected, `degraded` while
/// the broker is away, `stopped` after shutdown.
async fn health(State(s): State<HttpState>) -> Response {
    let status = s.status.borrow().clone();
    let running = s.stats.running.load(Ordering::Relaxed);
    let load = |f: fn(&crate::pipeline::ShardSnapshot) -> u64| -> u64 {
        s.stats.shards.iter().map(f).sum()
    };
    let state = match (running, status.connected) {
        (false, _) => "stopped",
        (true, true) => "ok",
        (true, false) => "degraded",
    };
    let oee = s.stats.oee.snapshot();
    axum::Json(json!({
        "status": state,
        "connected": status.connected,
        "decoder": {
            "alias_cache_entries": load(|sh| sh.metrics.load(Ordering::Relaxed)),
            "cached_nodes": load(|sh| sh.nodes.load(Ordering::Relaxed)),
        },
        "normalizer": {
            "tag_mappings_count": s.tag_mappings,
        },
        "oee_calculator": {
            "active_windows": oee.active_windows,
        },
        "fault_state_machine": {
            "active_faults": oee.active_faults,
        },
        "mqtt": {
            "sessions": status.sessions,
            "losses": status.losses,
            "state_timestamp": status.state_timestamp,
            "last_error": status.last_error,
        },
    }))
    .into_response()
}

async fn ready(State(s): State<HttpState>) -> Response {
    let connected = s.status.borrow().connected;
    let running = s.stats.running.load(Ordering::Relaxed);
    if connected && running {
        (StatusCode::OK, axum::Json(json!({"ready": true}))).into_response()
    } else {
        let reason = if running {
            "not connected to the MQTT broker"
        } else {
            "stopped"
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"ready": false, "reason": reason})),
        )
            .into_response()
    }
}
