//! The dashboard in a real headless Chromium, driven over the Chrome DevTools Protocol: the
//! page loads, machines and OEE values appear and match the API, clicking Acknowledge (a real
//! mouse click) asks for a name once, changes the fault's state in the page and reaches the
//! (fake) OEE task with that name, also with a bearer token; the page fits a phone's width.
//! Screenshots go to `target/dashboard.png` and `target/dashboard-phone.png`.
//!
//! Needs `/usr/bin/chromium` (scripts/test.sh installs it) or `OEE_TEST_CHROMIUM=PATH`; the
//! DevTools client is `tests/cdp/mod.rs`.
#![allow(clippy::unwrap_used)]

use oee_stream::settings::AcknowledgeConfig;
use serde_json::{Value, json};

mod apisupport;
mod cdp;
use apisupport::{enabled, get, start};
use cdp::{Browser, shown, target_dir};

const TOKEN: &str = "dashboard-test-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium_shows_the_api_and_acknowledges() {
    let s = start(enabled(None), true).await;
    let readonly = start(AcknowledgeConfig::default(), true).await;
    let guarded = start(enabled(Some(TOKEN)), true).await;
    let api = get(s.addr, "/api/machines").await.json();
    let lines = get(s.addr, "/api/lines").await.json();
    let url = format!("http://{}/", s.addr);
    let readonly_url = format!("http://{}/", readonly.addr);
    let guarded_url = format!("http://{}/", guarded.addr);
    let received = std::sync::Arc::clone(&s.received);
    let guarded_received = std::sync::Arc::clone(&guarded.received);
    let shot = target_dir().join("dashboard.png");
    let phone_shot = target_dir().join("dashboard-phone.png");

    tokio::task::spawn_blocking(move || {
        let mut b = Browser::launch();
        b.navigate(&url);
        assert_eq!(
            b.eval("document.title"),
            json!("OEE dashboard · oee-stream")
        );

        // Machines and their KPIs as the API has them.
        let page_machines = b.eval(
            "Array.from(document.querySelectorAll('[data-machine]')).map(e => e.dataset.machine)",
        );
        let api_machines: Vec<Value> = api["machines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["machine_id"].clone())
            .collect();
        assert_eq!(page_machines, json!(api_machines));
        for m in api["machines"].as_array().unwrap() {
            let id = m["machine_id"].as_str().unwrap();
            for kpi in ["oee", "availability", "performance", "quality"] {
                let got = b.text(&format!("[data-entity='machine:{id}'][data-kpi='{kpi}']"));
                assert_eq!(got, shown(&m["current"][kpi]), "{id} {kpi}");
            }
            let state = b.text(&format!("[data-machine='{id}'] .state"));
            assert!(!state.is_empty());
        }
        assert_eq!(
            b.text("[data-entity='machine:M1'][data-kpi='oee']"),
            "68.4 %"
        );
        // No denominator is "—", never 0 %.
        assert_eq!(b.text("[data-entity='machine:M2'][data-kpi='oee']"), "—");
        assert_eq!(b.text("[data-machine='M1'] .state"), "Unplanned stop");
        let line = &lines["lines"][0];
        assert_eq!(
            b.text("[data-entity='line:L1'][data-kpi='oee']"),
            shown(&line["current"]["oee"])
        );
        // The timeline has a text alternative.
        let label = b.eval(
            "document.querySelector(\"[data-machine='M1'] .bar\").getAttribute('aria-label')",
        );
        assert!(
            label.as_str().unwrap().contains("Running"),
            "timeline label: {label}"
        );
        // Nodes online and offline, in words.
        assert_eq!(b.text("[data-node='G1/E1'] td:nth-child(2)"), "● Online");
        assert_eq!(b.text("[data-node='G1/E2'] td:nth-child(2)"), "○ Offline");
        // Open faults only (F-3 is resolved and acknowledged).
        let rows = b.eval(
            "Array.from(document.querySelectorAll('[data-fault]')).map(e => e.dataset.fault)",
        );
        assert_eq!(rows, json!(["F-1", "F-2", "F-4"]));
        assert_eq!(
            b.eval("document.querySelector(\"[data-ack='F-2']\") === null"),
            json!(true),
            "an acknowledged fault has no button"
        );

        // Acknowledge: the first time asks for a name.
        b.click("[data-ack='F-1']");
        b.wait_for("!document.getElementById('who').hidden");
        b.click("#who-name");
        b.call("Input.insertText", json!({"text": "Grace Hopper"}));
        b.click("#who-save");
        b.wait_for(
            "document.querySelector(\"[data-fault='F-1']\").dataset.state === 'ACKNOWLEDGED'",
        );
        assert_eq!(b.text("[data-fault='F-1'] .fault-by"), "Grace Hopper");
        assert_eq!(b.text("[data-fault='F-1'] .fault-state"), "ACKNOWLEDGED");
        assert_eq!(b.text("#operator-name"), "Grace Hopper");
        // The second time uses the remembered name.
        b.click("[data-ack='F-4']");
        b.wait_for(
            "document.querySelector(\"[data-fault='F-4']\").dataset.state === 'ACKNOWLEDGED'",
        );
        {
            let got = received.lock().unwrap();
            let pairs: Vec<(&str, &str)> = got
                .iter()
                .map(|r| (r.instance_id.as_str(), r.who.as_str()))
                .collect();
            assert_eq!(pairs, [("F-1", "Grace Hopper"), ("F-4", "Grace Hopper")]);
        }
        b.screenshot(&shot);

        // A phone: nothing wider than the screen.
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
        );
        b.navigate(&url);
        assert_eq!(
            b.eval("document.documentElement.scrollWidth <= window.innerWidth"),
            json!(true),
            "the page scrolls sideways on a phone"
        );
        // Table rows become blocks: a fault's state is on screen without scrolling sideways.
        assert_eq!(
            b.eval(
                "document.querySelector(\"[data-fault='F-1'] .fault-state\")\
                 .getBoundingClientRect().right <= window.innerWidth"
            ),
            json!(true)
        );
        b.screenshot(&phone_shot);

        // Read-only: no Acknowledge buttons at all.
        b.call("Emulation.clearDeviceMetricsOverride", json!({}));
        b.navigate(&readonly_url);
        assert_eq!(
            b.eval("document.querySelectorAll('[data-ack]').length"),
            json!(0)
        );
        assert_eq!(
            b.eval("document.querySelectorAll('[data-fault]').length"),
            json!(3)
        );

        // With a token: the form asks for it too (another origin, so the name again).
        b.navigate(&guarded_url);
        b.click("[data-ack='F-1']");
        b.wait_for("!document.getElementById('who-token-row').hidden");
        b.click("#who-name");
        b.call("Input.insertText", json!({"text": "Lin"}));
        b.click("#who-token");
        b.call("Input.insertText", json!({"text": TOKEN}));
        b.click("#who-save");
        b.wait_for(
            "document.querySelector(\"[data-fault='F-1']\").dataset.state === 'ACKNOWLEDGED'",
        );
        assert_eq!(b.text("[data-fault='F-1'] .fault-by"), "Lin");
        assert_eq!(b.text("#message"), "", "no error shown");
    })
    .await
    .expect("the browser test");

    // And the API agrees with what the page showed.
    let faults = get(s.addr, "/api/faults?state=ACKNOWLEDGED").await.json();
    let by: Vec<&str> = faults["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["acknowledged_by"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["Grace Hopper", "Ada", "Grace Hopper"]);
    let got = guarded_received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].instance_id.as_str(), got[0].who.as_str()),
        ("F-1", "Lin")
    );
}
