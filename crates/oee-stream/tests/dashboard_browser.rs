//! The dashboard in a real headless Chromium, driven over the Chrome DevTools Protocol: the
//! page loads, machines and OEE values appear and match the API, clicking Acknowledge (a real
//! mouse click) asks for a name once, changes the fault's state in the page and reaches the
//! (fake) OEE task with that name, also with a bearer token; the page fits a phone's width.
//! Screenshots go to `target/dashboard.png` and `target/dashboard-phone.png`.
//!
//! Needs `/usr/bin/chromium` (scripts/test.sh installs it) or `OEE_TEST_CHROMIUM=PATH`.
#![allow(clippy::unwrap_used)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use oee_stream::settings::AcknowledgeConfig;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

mod apisupport;
use apisupport::{enabled, get, start};

const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "dashboard-test-token-0123456789";

fn chromium_path() -> PathBuf {
    if let Ok(p) = std::env::var("OEE_TEST_CHROMIUM") {
        return PathBuf::from(p);
    }
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "Chromium is not installed: `apt-get install -y chromium` (scripts/test.sh does it), \
         or set OEE_TEST_CHROMIUM=PATH"
    );
}

/// The cargo target directory (this test runs from `target/<profile>/deps/`).
fn target_dir() -> PathBuf {
    if let Ok(d) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// A headless Chromium with a fresh profile, killed on drop.
struct Browser {
    child: Child,
    ws: WebSocket<TcpStream>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(chromium_path())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--mute-audio",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1280,1000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts chromium");
        // Chromium writes the port it chose and the browser's WebSocket path here.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + WAIT;
        let (port, path) = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    break (port.to_string(), path.to_string());
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromium did not open its DevTools port"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let stream = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let (ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream)
            .expect("DevTools WebSocket handshake");
        let mut b = Browser {
            child,
            ws,
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = b.call("Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = b.call(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        b.call("Page.enable", json!({}));
        b.call("Runtime.enable", json!({}));
        b
    }

    /// One CDP command (on the page's session once attached); events in between are skipped.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .expect("sends a CDP command");
        loop {
            let m = self.ws.read().expect("reads a CDP message");
            let Message::Text(text) = m else { continue };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["id"] == id {
                assert!(v["error"].is_null(), "{method} failed: {}", v["error"]);
                return v["result"].clone();
            }
        }
    }

    /// Evaluates a JavaScript expression in the page and returns its value.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            r["exceptionDetails"].is_null(),
            "{expr} threw: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is true in the page.
    fn wait_for(&mut self, expr: &str) {
        let deadline = Instant::now() + WAIT;
        // Exceptions count as "not yet" (e.g. no body while a page is being replaced).
        let test = format!("(function(){{try{{return !!({expr})}}catch(e){{return false}}}})()");
        while self.eval(&test) != json!(true) {
            assert!(Instant::now() < deadline, "timed out waiting for {expr}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn text(&mut self, selector: &str) -> String {
        let sel = serde_json::to_string(selector).unwrap();
        let v = self.eval(&format!(
            "(function(){{var e=document.querySelector({sel});return e?e.textContent:null}})()"
        ));
        v.as_str()
            .unwrap_or_else(|| panic!("no element {selector}"))
            .to_string()
    }

    /// A real mouse click in the middle of the element.
    fn click(&mut self, selector: &str) {
        let sel = serde_json::to_string(selector).unwrap();
        let r = self.eval(&format!(
            "(function(){{var e=document.querySelector({sel}); if(!e) return null; \
             e.scrollIntoView({{block:'center'}}); var r=e.getBoundingClientRect(); \
             return [r.x + r.width/2, r.y + r.height/2]}})()"
        ));
        let (x, y) = (
            r[0].as_f64()
                .unwrap_or_else(|| panic!("no element {selector}")),
            r[1].as_f64().unwrap(),
        );
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }

    /// Loads `url` and waits until the dashboard has rendered its first view.
    fn navigate(&mut self, url: &str) {
        // Marks the old document so that its rendered state is not mistaken for the new one's.
        self.eval("window.__stale = true");
        self.call("Page.navigate", json!({"url": url}));
        self.wait_for("!window.__stale && document.body.dataset.loaded === 'true'");
    }

    fn screenshot(&mut self, file: &Path) {
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        std::fs::write(file, png).unwrap();
        eprintln!("screenshot: {}", file.display());
    }
}

/// What the page shows for a ratio: one decimal and " %", or "—" for null.
fn shown(v: &Value) -> String {
    match v.as_f64() {
        Some(x) => format!("{:.1} %", x * 100.0),
        None => "—".into(),
    }
}

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
