//! The JSON API under `/api/` (docs/api.md): machines, lines, fault instances and edge nodes
//! read from the OEE task's latest [`LiveView`](crate::live::LiveView), and the one write,
//! acknowledging a fault instance. Every error is `{"error": "..."}` with a fitting status.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::HttpState;
use crate::live::{AckError, FaultView, LiveView, MachineView};

/// Longest accepted `by` (characters).
pub const MAX_BY_CHARS: usize = 100;

/// The `/api/...` routes (merged into the main router).
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/api/view", get(view))
        .route("/api/machines", get(machines))
        .route("/api/machines/{machine_id}", get(machine))
        .route("/api/lines", get(lines))
        .route("/api/faults", get(faults))
        .route("/api/faults/{id}/acknowledge", post(acknowledge))
        .route("/api/nodes", get(nodes))
        .route("/api/{*rest}", get(not_found).post(not_found))
}

/// `{"error": message}` with `code`.
pub fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// A machine with its open fault instances.
#[derive(Serialize)]
struct MachineOut<'a> {
    #[serde(flatten)]
    machine: &'a MachineView,
    /// Fault instances of this machine not yet resolved and acknowledged (what
    /// `active_faults` counts).
    faults: Vec<&'a FaultView>,
}

/// Not yet both resolved and acknowledged: what the dashboard lists and `active_faults` counts.
fn is_open(f: &FaultView) -> bool {
    f.state != "RESOLVED" || f.acknowledged_ms.is_none()
}

fn machine_out<'a>(view: &'a LiveView, m: &'a MachineView) -> MachineOut<'a> {
    MachineOut {
        machine: m,
        faults: view
            .faults
            .iter()
            .filter(|f| f.machine_id == m.machine_id && f.site_id == m.site_id && is_open(f))
            .collect(),
    }
}

/// Everything at once (one consistent snapshot): what the dashboard polls.
async fn view(State(s): State<HttpState>) -> Response {
    let v = s.live.snapshot();
    let machines: Vec<MachineOut<'_>> = v.machines.iter().map(|m| machine_out(&v, m)).collect();
    axum::Json(json!({
        "updated_ms": v.updated_ms,
        "watermark_ms": v.watermark_ms,
        "acknowledge": {
            "enabled": s.acknowledge.enabled,
            "token_required": s.acknowledge.enabled && s.acknowledge.token.is_some(),
        },
        "machines": machines,
        "lines": v.lines,
        "faults": v.faults,
        "nodes": v.nodes,
    }))
    .into_response()
}

async fn machines(State(s): State<HttpState>) -> Response {
    let v = s.live.snapshot();
    let machines: Vec<MachineOut<'_>> = v.machines.iter().map(|m| machine_out(&v, m)).collect();
    axum::Json(json!({
        "updated_ms": v.updated_ms,
        "watermark_ms": v.watermark_ms,
        "machines": machines,
    }))
    .into_response()
}

async fn machine(State(s): State<HttpState>, Path(machine_id): Path<String>) -> Response {
    let v = s.live.snapshot();
    match v.machines.iter().find(|m| m.machine_id == machine_id) {
        Some(m) => axum::Json(machine_out(&v, m)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no machine {machine_id}")),
    }
}

async fn lines(State(s): State<HttpState>) -> Response {
    let v = s.live.snapshot();
    axum::Json(json!({
        "updated_ms": v.updated_ms,
        "watermark_ms": v.watermark_ms,
        "lines": v.lines,
    }))
    .into_response()
}

async fn nodes(State(s): State<HttpState>) -> Response {
    let v = s.live.snapshot();
    axum::Json(json!({
        "updated_ms": v.updated_ms,
        "nodes": v.nodes,
    }))
    .into_response()
}

/// `?state=ACTIVE,ACKNOWLEDGED&machine_id=…&line_id=…`
#[derive(Debug, Default, Deserialize)]
struct FaultFilter {
    state: Option<String>,
    machine_id: Option<String>,
    line_id: Option<String>,
}

const FAULT_STATES: [&str; 3] = ["ACTIVE", "ACKNOWLEDGED", "RESOLVED"];

async fn faults(
    State(s): State<HttpState>,
    filter: Result<Query<FaultFilter>, QueryRejection>,
) -> Response {
    let Query(filter) = match filter {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let mut states = Vec::new();
    if let Some(list) = &filter.state {
        for st in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let up = st.to_ascii_uppercase();
            if !FAULT_STATES.contains(&up.as_str()) {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("state: `{st}` is not one of ACTIVE, ACKNOWLEDGED, RESOLVED"),
                );
            }
            states.push(up);
        }
    }
    let v = s.live.snapshot();
    let list: Vec<&FaultView> = v
        .faults
        .iter()
        .filter(|f| states.is_empty() || states.contains(&f.state))
        .filter(|f| {
            filter
                .machine_id
                .as_ref()
                .is_none_or(|m| *m == f.machine_id)
        })
        .filter(|f| filter.line_id.as_ref().is_none_or(|l| *l == f.line_id))
        .collect();
    axum::Json(json!({
        "updated_ms": v.updated_ms,
        "faults": list,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    by: String,
}

/// Equal without an early exit on the first differing byte.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `POST /api/faults/{id}/acknowledge` with `{"by": "name"}`.
async fn acknowledge(
    State(s): State<HttpState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !s.acknowledge.enabled {
        return error(
            StatusCode::FORBIDDEN,
            "acknowledging faults is disabled (http.acknowledge.enabled: false)",
        );
    }
    if let Some(token) = &s.acknowledge.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim);
        let ok = given.is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes()));
        if !ok {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                if given.is_none() {
                    "a bearer token is required (Authorization: Bearer <token>)"
                } else {
                    "wrong bearer token"
                },
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
    }
    // A JSON content type makes a cross-site form post impossible without a CORS preflight,
    // which this server never grants.
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json_type {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON (Content-Type: application/json)",
        );
    }
    let who = match serde_json::from_slice::<AckBody>(&body) {
        Ok(b) => b.by.trim().to_string(),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body must be {{\"by\": \"name\"}}: {e}"),
            );
        }
    };
    if who.is_empty() {
        return error(StatusCode::BAD_REQUEST, "`by` must name who acknowledges");
    }
    if who.chars().count() > MAX_BY_CHARS {
        return error(
            StatusCode::BAD_REQUEST,
            format!("`by` is longer than {MAX_BY_CHARS} characters"),
        );
    }
    if who.chars().any(char::is_control) {
        return error(
            StatusCode::BAD_REQUEST,
            "`by` must not contain control characters",
        );
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    match s.live.acknowledge(id, who.clone(), now_ms).await {
        Ok(fault) => {
            tracing::info!(fault = %fault.id, by = %who, "fault acknowledged over the API");
            axum::Json(fault).into_response()
        }
        Err(e @ AckError::UnknownInstance(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ AckError::AlreadyAcknowledged(_)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e @ AckError::Stopped) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such API endpoint (see docs/api.md)",
    )
}
