//! The dashboard at `/` (docs/dashboard.md): one self-contained HTML page (CSS and vanilla
//! JavaScript inline, embedded in the binary; nothing is fetched from elsewhere) that polls
//! `/api/view` every 2 s.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::HttpState;

/// The page, as shipped.
pub const PAGE: &str = include_str!("dashboard.html");

pub fn routes() -> Router<HttpState> {
    Router::new().route("/", get(page))
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            // Everything is inline; nothing may be loaded from elsewhere.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
                 frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE,
    )
        .into_response()
}
