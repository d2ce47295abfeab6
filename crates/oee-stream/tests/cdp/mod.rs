//! A small Chrome DevTools Protocol client for the browser tests: a real headless Chromium
//! with a fresh profile, one page, JavaScript evaluation, waiting on page conditions, real
//! mouse clicks and screenshots. Shared by `dashboard_browser.rs` and `demo_browser.rs`.
//!
//! Needs `/usr/bin/chromium` (scripts/test.sh installs it) or `OEE_TEST_CHROMIUM=PATH`; without
//! it the tests fail with a message saying so (never skipped).
#![allow(dead_code, clippy::unwrap_used)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// How long a single page condition or browser start may take.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn chromium_path() -> PathBuf {
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
pub fn target_dir() -> PathBuf {
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
pub struct Browser {
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
    pub fn launch() -> Browser {
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
    pub fn call(&mut self, method: &str, params: Value) -> Value {
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
    pub fn eval(&mut self, expr: &str) -> Value {
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
    pub fn wait_for(&mut self, expr: &str) {
        self.wait_for_within(expr, WAIT);
    }

    /// Waits at most `limit` until `expr` is true in the page.
    pub fn wait_for_within(&mut self, expr: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        // Exceptions count as "not yet" (e.g. no body while a page is being replaced).
        let test = format!("(function(){{try{{return !!({expr})}}catch(e){{return false}}}})()");
        while self.eval(&test) != json!(true) {
            assert!(Instant::now() < deadline, "timed out waiting for {expr}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn text(&mut self, selector: &str) -> String {
        let sel = serde_json::to_string(selector).unwrap();
        let v = self.eval(&format!(
            "(function(){{var e=document.querySelector({sel});return e?e.textContent:null}})()"
        ));
        v.as_str()
            .unwrap_or_else(|| panic!("no element {selector}"))
            .to_string()
    }

    /// A real mouse click in the middle of the element.
    pub fn click(&mut self, selector: &str) {
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
    pub fn navigate(&mut self, url: &str) {
        // Marks the old document so that its rendered state is not mistaken for the new one's.
        self.eval("window.__stale = true");
        self.call("Page.navigate", json!({"url": url}));
        self.wait_for("!window.__stale && document.body.dataset.loaded === 'true'");
    }

    pub fn screenshot(&mut self, file: &Path) {
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
pub fn shown(v: &Value) -> String {
    match v.as_f64() {
        Some(x) => format!("{:.1} %", x * 100.0),
        None => "—".into(),
    }
}
