//! Helpers shared by the sink integration tests.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Poll `cond` every 10 ms until it holds; panic with `what` after 60 s.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
