//! End to end: the real `oee-stream demo` binary (embedded broker, simulated plant, pipeline,
//! SQLite, HTTP) and its dashboard in a real headless Chromium. Every simulated machine shows an
//! OEE value, the values shown are the ones `/api/view` gave the page; a fault raised by the
//! simulator is acknowledged with a real click and a typed name, the page shows it
//! ACKNOWLEDGED, and after SIGTERM the SQLite `faults` row of that instance carries the name.
//! The screenshot goes to `target/demo-dashboard.png` (an artifact, not committed).
//!
//! Needs `/usr/bin/chromium` (scripts/test.sh installs it) or `OEE_TEST_CHROMIUM=PATH`: without
//! it the test fails saying so. The DevTools client is `tests/cdp/mod.rs`.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod cdp;
mod support;
use cdp::{Browser, shown, target_dir};
use support::{free_port, try_http_get};

/// An hour of plant time per minute: OEE windows within seconds, a fault every few seconds.
const SPEED: &str = "60";
/// The seed and simulated start whose plant raises its first faults early in the run. The start
/// is fixed so the plant's history is the same on every run: started at the wall clock, a run
/// near 02:00, 10:00 or 18:00 UTC fell into the demo's planned break (no faults for 15 min).
const SEED: &str = "1";
const START: &str = "2026-01-01T06:00:00Z";
/// The simulated plant's machines.
const MACHINES: usize = 6;
const OPERATOR: &str = "Ada Lovelace";

/// Every machine shows an OEE (the README's promise is a minute).
const OEE_WITHIN: Duration = Duration::from_secs(60);
/// A fault with an Acknowledge button shows up (faults come every few seconds at this speed).
const FAULT_WITHIN: Duration = Duration::from_secs(40);

/// `oee_calculator_inputs_too_late_total` from the demo's /metrics, read by the page.
const TOO_LATE: &str = "(() => { const x = new XMLHttpRequest(); x.open('GET', '/metrics', false); \
     x.send(); const m = x.responseText.match(/^oee_calculator_inputs_too_late_total (\\d+)$/m); \
     return m ? m[1] : x.responseText.slice(0, 200); })()";

/// The demo process, killed if the test fails before it stops it.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Installed before the page's own script runs: keeps the last `/api/view` answer the page
/// received (`window.__lastView`), so what the page shows can be compared with exactly what
/// the API told it (the plant moves on between two polls), and records every fault row the page
/// ever rendered as ACKNOWLEDGED with its "Acknowledged by" text (`window.__acked`), so a
/// fault that resolves right after its acknowledgement (and leaves the list) still counts.
const PAGE_PROBE: &str = r#"
(function () {
  var f = window.fetch;
  window.__acked = {};
  window.__posts = [];
  window.fetch = function (url) {
    return f.apply(this, arguments).then(function (r) {
      if (String(url).indexOf('/api/view') === 0 && r.ok) {
        r.clone().json().then(function (v) { window.__lastView = v; });
      } else {
        r.clone().text().then(function (t) { window.__posts.push(r.status + ' ' + t); });
      }
      return r;
    });
  };
  new MutationObserver(function () {
    document.querySelectorAll("tr[data-fault][data-state='ACKNOWLEDGED']").forEach(function (tr) {
      var by = tr.querySelector('.fault-by');
      window.__acked[tr.dataset.fault] = by ? by.textContent : '';
    });
  }).observe(document, { childList: true, subtree: true, attributes: true });
})();
"#;

/// The machines' OEE as the page shows it and as the `/api/view` answer it rendered has it,
/// once both describe the same answer (`null` until then).
const SHOWN_VS_API: &str = r#"
(function () {
  var v = window.__lastView;
  if (!v) return null;
  var page = {}, api = {};
  document.querySelectorAll("[data-entity^='machine:'][data-kpi='oee']").forEach(function (e) {
    page[e.dataset.entity.slice(8)] = e.textContent;
  });
  v.machines.forEach(function (m) { api[m.machine_id] = m.current ? m.current.oee : null; });
  return { page: page, api: api, updated_ms: v.updated_ms };
})()
"#;

fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_dashboard_shows_every_machine_and_acknowledges_into_the_database() {
    // Fails here, with what to install, when there is no browser.
    let _ = cdp::chromium_path();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_oee-stream"))
        .args([
            "demo", "--seed", SEED, "--start", START, "--speed", SPEED, "--port",
        ])
        .arg(port.to_string())
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut demo = Demo(child);
    let pid = demo.0.id();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let start = Instant::now();
    loop {
        if let Ok((200, _)) = try_http_get(addr, "/health").await {
            break;
        }
        assert!(demo.0.try_wait().unwrap().is_none(), "demo exited early");
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no /health on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let url = format!("http://{addr}/");
    let shot = target_dir().join("demo-dashboard.png");
    let (fault_id, seen) = tokio::task::spawn_blocking(move || {
        let mut b = Browser::launch();
        b.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": PAGE_PROBE }),
        );
        b.navigate(&url);
        assert_eq!(b.eval("document.title"), json!("OEE dashboard · oee-stream"));
        assert_eq!(
            b.eval("typeof window.__acked"),
            json!("object"),
            "the page probe is installed"
        );

        // Every machine shows an OEE value.
        b.wait_for_within(
            &format!(
                "document.querySelectorAll('[data-machine]').length === {MACHINES} && \
                 Array.from(document.querySelectorAll(\"[data-entity^='machine:'][data-kpi='oee']\"))\
                 .every(e => e.textContent.endsWith(' %'))"
            ),
            OEE_WITHIN.saturating_sub(start.elapsed()),
        );
        eprintln!("every machine shows an OEE after {:?}", start.elapsed());
        // ... from the plant's data: none of it was too late for the engine, whose clock is
        // the plant's (`--start` in the past would leave it far behind the wall clock).
        assert_eq!(
            b.eval(TOO_LATE),
            json!("0"),
            "OEE inputs dropped as too late"
        );

        // ... and they are the values of the /api/view answer the page rendered.
        let deadline = Instant::now() + cdp::WAIT;
        let compared = loop {
            let c = b.eval(SHOWN_VS_API);
            if let (Some(page), Some(api)) = (c["page"].as_object(), c["api"].as_object()) {
                let expected: serde_json::Map<String, Value> = api
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(shown(v))))
                    .collect();
                if *page == expected {
                    break c;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the page's OEE values never matched /api/view: {c}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let page = compared["page"].as_object().unwrap();
        assert_eq!(page.len(), MACHINES, "{compared}");
        assert!(
            page.values().all(|v| v.as_str().unwrap().ends_with(" %")),
            "{compared}"
        );

        // A fault raised by the simulator, still ACTIVE, with an Acknowledge button: the most
        // severe first (they last longest). A fault that resolves between the click and the
        // acknowledgement leaves the list without ever being shown ACKNOWLEDGED: then the next.
        let fault_deadline = Instant::now() + FAULT_WITHIN;
        let mut asked = false;
        let fault_id = loop {
            b.wait_for_within(
                "document.querySelector(\"tr[data-fault][data-state='ACTIVE'] [data-ack]\")",
                fault_deadline.saturating_duration_since(Instant::now()),
            );
            let id = b.eval(
                "document.querySelector(\"tr[data-fault][data-state='ACTIVE'] [data-ack]\").dataset.ack",
            );
            let id = id.as_str().unwrap().to_string();
            b.click(&format!("[data-ack='{id}']"));
            if !asked {
                // The first acknowledgement asks for a name (remembered afterwards).
                b.wait_for("!document.getElementById('who').hidden");
                b.click("#who-name");
                b.call("Input.insertText", json!({ "text": OPERATOR }));
                b.click("#who-save");
                asked = true;
            }
            let acked = format!("window.__acked[{}]", serde_json::to_string(&id).unwrap());
            let settled = format!(
                "{acked} !== undefined || !document.querySelector(\"[data-fault='{id}']\")"
            );
            let deadline = Instant::now() + cdp::WAIT;
            while b.eval(&settled) != json!(true) {
                assert!(
                    Instant::now() < deadline,
                    "fault {id} neither shown ACKNOWLEDGED nor gone: row {}, message {}, \
                     answers {}",
                    b.eval(&format!(
                        "document.querySelector(\"[data-fault='{id}']\").outerHTML"
                    )),
                    b.eval("document.getElementById('message').textContent"),
                    b.eval("window.__posts"),
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            if b.eval(&format!("{acked} !== undefined")) == json!(true) {
                break id;
            }
            eprintln!("fault {id} resolved before its acknowledgement landed; the next one");
            assert!(
                Instant::now() < fault_deadline,
                "no fault could be acknowledged while active"
            );
        };
        // Stop the plant at once: a fault that clears may re-raise (20 s of plant time later
        // at the earliest), which reopens the instance and clears its acknowledgement.
        sigterm(pid);
        let seen = b.eval(&format!(
            "window.__acked[{}]",
            serde_json::to_string(&fault_id).unwrap()
        ));
        assert_eq!(b.eval("document.getElementById('message').textContent"), json!(""));
        assert_eq!(b.text("#operator-name"), OPERATOR);
        b.screenshot(&shot);
        (fault_id, seen)
    })
    .await
    .expect("the browser test");
    eprintln!(
        "fault {fault_id} acknowledged in the page after {:?}",
        start.elapsed()
    );
    assert_eq!(seen, json!(OPERATOR), "the page showed who acknowledged");

    let exit = loop {
        if let Some(s) = demo.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "demo did not stop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "demo exit status {exit}");

    // The acknowledgement is in the database, with the name typed in the page.
    let c = rusqlite::Connection::open(dir.path().join("oee.db")).unwrap();
    let (state, by): (String, Option<String>) = c
        .query_row(
            "SELECT state, acknowledged_by FROM faults WHERE fault_id = ?1",
            [&fault_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap_or_else(|e| panic!("no faults row for {fault_id}: {e}"));
    assert_eq!(by.as_deref(), Some(OPERATOR), "fault {fault_id} ({state})");
    // Still ACKNOWLEDGED, or RESOLVED after it (the acknowledgement stays).
    assert!(
        state == "ACKNOWLEDGED" || state == "RESOLVED",
        "fault {fault_id}: {state}"
    );
    eprintln!("faults row {fault_id}: {state}, acknowledged by {OPERATOR}");
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "the end-to-end test took {:?}",
        start.elapsed()
    );
}
