//! The JSON API under `/api/` and the dashboard page over real HTTP, with a fake OEE task
//! behind the live view (tests/apisupport).
#![allow(clippy::unwrap_used)]

use oee_stream::settings::AcknowledgeConfig;
use serde_json::Value;

mod apisupport;
use apisupport::{NOW_MS, enabled, get, post_ack, request, start};

const TOKEN: &str = "s3cret-token-0123456789";

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|f| f["id"].as_str().expect("id").to_string())
        .collect()
}

fn error_of(r: &apisupport::Reply) -> String {
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "error bodies are JSON: {r:?}"
    );
    r.json()["error"].as_str().expect("{error}").to_string()
}

#[tokio::test]
async fn machines_with_state_kpis_timeline_and_open_faults() {
    let s = start(AcknowledgeConfig::default(), true).await;
    let r = get(s.addr, "/api/machines").await;
    assert_eq!(r.code, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["updated_ms"], NOW_MS);
    let ms = v["machines"].as_array().unwrap();
    assert_eq!(ms.len(), 2);
    let m1 = &ms[0];
    assert_eq!(m1["machine_id"], "M1");
    assert_eq!(m1["line_id"], "L1");
    assert_eq!(m1["state"], "unplanned_stop");
    assert_eq!(m1["state_since_ms"], NOW_MS - 5 * 60_000);
    assert_eq!(m1["current"]["window_kind"], "hour");
    assert_eq!(m1["current"]["availability"], 0.8);
    assert_eq!(m1["rolling"]["window_kind"], "rolling");
    assert_eq!(m1["timeline"].as_array().unwrap().len(), 3);
    assert_eq!(m1["timeline"][2]["end_ms"], Value::Null);
    assert_eq!(m1["active_faults"], 2);
    // Open = not both resolved and acknowledged.
    assert_eq!(ids(&m1["faults"]), ["F-1", "F-2"]);
    // No denominator: null, never 0.
    let m2 = &ms[1];
    assert_eq!(m2["current"]["performance"], Value::Null);
    assert_eq!(m2["current"]["oee"], Value::Null);
    assert_eq!(ids(&m2["faults"]), ["F-4"]);

    let r = get(s.addr, "/api/machines/M2").await;
    assert_eq!(r.code, 200);
    assert_eq!(r.json()["machine_id"], "M2");
    assert_eq!(ids(&r.json()["faults"]), ["F-4"]);

    let r = get(s.addr, "/api/machines/nope").await;
    assert_eq!(r.code, 404);
    assert_eq!(error_of(&r), "no machine nope");
}

#[tokio::test]
async fn lines_nodes_view_and_unknown_endpoints() {
    let s = start(enabled(Some(TOKEN)), true).await;
    let r = get(s.addr, "/api/lines").await;
    assert_eq!(r.code, 200);
    let v = r.json();
    assert_eq!(v["lines"][0]["line_id"], "L1");
    assert_eq!(v["lines"][0]["machines"], serde_json::json!(["M1", "M2"]));
    assert_eq!(v["lines"][0]["current"]["availability"], 0.65);
    assert_eq!(v["lines"][0]["rolling"], Value::Null);

    let r = get(s.addr, "/api/nodes").await;
    assert_eq!(r.code, 200);
    let nodes = r.json()["nodes"].clone();
    assert_eq!(nodes[0]["edge_node"], "E1");
    assert_eq!(nodes[0]["online"], true);
    assert_eq!(nodes[0]["bd_seq"], 3);
    assert_eq!(nodes[0]["devices_online"], serde_json::json!(["M1", "M2"]));
    assert_eq!(nodes[1]["online"], false);
    assert_eq!(nodes[1]["last_birth_ms"], Value::Null);
    assert_eq!(nodes[1]["last_death_ms"], NOW_MS - 10 * 60_000);

    let r = get(s.addr, "/api/view").await;
    assert_eq!(r.code, 200);
    let v = r.json();
    assert_eq!(v["acknowledge"]["enabled"], true);
    assert_eq!(v["acknowledge"]["token_required"], true);
    assert!(!r.body.contains(TOKEN), "the token never leaves the server");
    for key in ["machines", "lines", "faults", "nodes"] {
        assert!(v[key].is_array(), "{key}");
    }

    let r = get(s.addr, "/api/nothing/here").await;
    assert_eq!(r.code, 404);
    assert!(error_of(&r).contains("no such API endpoint"));

    // A new view is served as soon as the OEE task publishes it.
    let mut next = apisupport::sample_view();
    next.machines.truncate(1);
    s.view.send_replace(std::sync::Arc::new(next));
    let r = get(s.addr, "/api/machines").await;
    assert_eq!(r.json()["machines"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn faults_filter_by_state_machine_and_line() {
    let s = start(AcknowledgeConfig::default(), true).await;
    for (query, expected) in [
        ("", vec!["F-1", "F-2", "F-3", "F-4"]),
        ("?state=ACTIVE", vec!["F-1", "F-4"]),
        ("?state=acknowledged", vec!["F-2"]),
        ("?state=RESOLVED", vec!["F-3"]),
        ("?state=ACTIVE,RESOLVED", vec!["F-1", "F-3", "F-4"]),
        ("?machine_id=M2", vec!["F-3", "F-4"]),
        ("?state=ACTIVE&machine_id=M1", vec!["F-1"]),
        ("?line_id=L1&machine_id=M9", vec![]),
        ("?line_id=L2", vec![]),
    ] {
        let r = get(s.addr, &format!("/api/faults{query}")).await;
        assert_eq!(r.code, 200, "{query}: {}", r.body);
        assert_eq!(ids(&r.json()["faults"]), expected, "{query}");
    }
    let r = get(s.addr, "/api/faults").await;
    let f2 = &r.json()["faults"][1];
    assert_eq!(f2["acknowledged_by"], "Ada");
    assert_eq!(f2["severity"], 2);
    assert_eq!(f2["code"], 17);

    let r = get(s.addr, "/api/faults?state=OPEN").await;
    assert_eq!(r.code, 400);
    assert_eq!(
        error_of(&r),
        "state: `OPEN` is not one of ACTIVE, ACKNOWLEDGED, RESOLVED"
    );
}

#[tokio::test]
async fn acknowledging_is_forbidden_unless_enabled() {
    let s = start(AcknowledgeConfig::default(), true).await;
    let r = post_ack(s.addr, "F-1", r#"{"by":"Ada"}"#, None).await;
    assert_eq!(r.code, 403);
    assert!(error_of(&r).contains("disabled"));
    // Even with a token configured: disabled wins.
    let s = start(
        AcknowledgeConfig {
            enabled: false,
            token: Some(TOKEN.into()),
        },
        true,
    )
    .await;
    let r = post_ack(s.addr, "F-1", r#"{"by":"Ada"}"#, Some(TOKEN)).await;
    assert_eq!(r.code, 403);
    assert!(s.received.lock().unwrap().is_empty());
    // The view is read-only: GET on the write endpoint is not a way around it.
    let r = get(s.addr, "/api/faults/F-1/acknowledge").await;
    assert_eq!(r.code, 405);
}

#[tokio::test]
async fn acknowledge_records_who_and_when_then_conflicts_and_unknowns() {
    let s = start(enabled(None), true).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let r = post_ack(s.addr, "F-1", r#"{"by": "  Grace Hopper "}"#, None).await;
    assert_eq!(r.code, 200, "{}", r.body);
    let f = r.json();
    assert_eq!(f["id"], "F-1");
    assert_eq!(f["state"], "ACKNOWLEDGED");
    assert_eq!(f["acknowledged_by"], "Grace Hopper");
    let got = s.received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].instance_id, "F-1");
    assert_eq!(got[0].who, "Grace Hopper");
    assert!(got[0].at_ms >= before && got[0].at_ms < before + 60_000);
    assert_eq!(f["acknowledged_ms"], got[0].at_ms);

    // The published view shows it.
    let r = get(s.addr, "/api/faults?state=ACKNOWLEDGED").await;
    assert_eq!(ids(&r.json()["faults"]), ["F-1", "F-2"]);

    let r = post_ack(s.addr, "F-1", r#"{"by":"Ada"}"#, None).await;
    assert_eq!(r.code, 409);
    assert_eq!(error_of(&r), "fault instance F-1 is already acknowledged");

    let r = post_ack(s.addr, "F-99", r#"{"by":"Ada"}"#, None).await;
    assert_eq!(r.code, 404);
    assert_eq!(error_of(&r), "no fault instance F-99");
}

#[tokio::test]
async fn bad_bodies_are_400_with_a_clear_message() {
    let s = start(enabled(None), true).await;
    for (body, needle) in [
        ("", "the body must be {\"by\": \"name\"}"),
        ("not json", "the body must be {\"by\": \"name\"}"),
        ("{}", "missing field `by`"),
        (r#"{"by": 7}"#, "invalid type"),
        (r#"{"by":"Ada","extra":1}"#, "unknown field `extra`"),
        (r#"{"by":"   "}"#, "`by` must name who acknowledges"),
        (r#"{"by":"a\u0007b"}"#, "control characters"),
    ] {
        let r = post_ack(s.addr, "F-1", body, None).await;
        assert_eq!(r.code, 400, "{body}: {}", r.body);
        let e = error_of(&r);
        assert!(e.contains(needle), "{body}: {e}");
    }
    let long = format!(r#"{{"by":"{}"}}"#, "x".repeat(101));
    let r = post_ack(s.addr, "F-1", &long, None).await;
    assert_eq!(r.code, 400);
    assert!(error_of(&r).contains("longer than 100"));

    // Not JSON by content type: 415 (keeps cross-site form posts out).
    let r = request(
        s.addr,
        "POST",
        "/api/faults/F-1/acknowledge",
        &[("Content-Type", "text/plain")],
        r#"{"by":"Ada"}"#,
    )
    .await;
    assert_eq!(r.code, 415);
    assert!(error_of(&r).contains("application/json"));
    assert!(
        s.received.lock().unwrap().is_empty(),
        "nothing reached the OEE task"
    );
}

#[tokio::test]
async fn bearer_token_is_required_when_configured() {
    let s = start(enabled(Some(TOKEN)), true).await;
    let r = post_ack(s.addr, "F-1", r#"{"by":"Ada"}"#, None).await;
    assert_eq!(r.code, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert!(error_of(&r).contains("bearer token is required"));

    let r = post_ack(
        s.addr,
        "F-1",
        r#"{"by":"Ada"}"#,
        Some("wrong-token-0123456789"),
    )
    .await;
    assert_eq!(r.code, 401);
    assert_eq!(error_of(&r), "wrong bearer token");
    let r = post_ack(
        s.addr,
        "F-1",
        r#"{"by":"Ada"}"#,
        Some(&TOKEN[..TOKEN.len() - 1]),
    )
    .await;
    assert_eq!(r.code, 401);
    let r = request(
        s.addr,
        "POST",
        "/api/faults/F-1/acknowledge",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("Basic {TOKEN}")),
        ],
        r#"{"by":"Ada"}"#,
    )
    .await;
    assert_eq!(r.code, 401);
    assert!(s.received.lock().unwrap().is_empty());

    let r = post_ack(s.addr, "F-1", r#"{"by":"Ada"}"#, Some(TOKEN)).await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.json()["acknowledged_by"], "Ada");
    assert!(!r.body.contains(TOKEN));
}

#[tokio::test]
async fn acknowledge_is_503_when_the_oee_task_is_stopped() {
    let s = start(enabled(None), false).await;
    let r = post_ack(s.addr, "F-1", r#"{"by":"Ada"}"#, None).await;
    assert_eq!(r.code, 503);
    assert_eq!(error_of(&r), "the OEE task is not running");
    // Reading still works from the last published view.
    assert_eq!(get(s.addr, "/api/machines").await.code, 200);
}

#[tokio::test]
async fn dashboard_is_one_self_contained_page() {
    let s = start(AcknowledgeConfig::default(), true).await;
    let r = get(s.addr, "/").await;
    assert_eq!(r.code, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(
        r.header("content-security-policy")
            .is_some_and(|c| c.contains("default-src 'none'"))
    );
    assert!(r.body.starts_with("<!doctype html>"));
    assert!(r.body.contains("/api/view"));
    // Nothing from elsewhere: no external scripts, styles, fonts or images.
    for bad in [
        "http://",
        "https://",
        "<script src",
        "<link",
        "@import",
        "url(",
    ] {
        assert!(!r.body.contains(bad), "the page references {bad:?}");
    }
    assert!(r.body.contains("<h1>") && r.body.contains("lang=\"en\""));
}
