//! `oee-stream demo` as a process: embedded broker, simulator, pipeline, SQLite and HTTP in
//! one, polled (with deadlines) until `/api/machines` shows every simulated machine with an OEE
//! (within 60 s of start at `--speed 60`) and the database shows converted telemetry for every
//! machine and the edge nodes online; then SIGTERM and a clean exit.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{free_port, try_http_get};

/// The demo process, killed if the test fails before it stops it.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const DEADLINE: Duration = Duration::from_secs(90);

/// The simulated plant's machines.
const MACHINES: usize = 6;

/// The README's promise: within a minute the dashboard shows every machine with an OEE.
const OEE_WITHIN: Duration = Duration::from_secs(60);

/// The machines of an `/api/machines` answer with a non-null OEE (current window or rolling),
/// sorted.
fn machines_with_oee(body: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = v["machines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["current"]["oee"].is_number() || m["rolling"]["oee"].is_number())
        .filter_map(|m| m["machine_id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// Temperatures (°C), pressures (bar) and node events in the database so far.
#[derive(Debug, Default)]
struct Seen {
    machines_with_celsius: i64,
    celsius_min: f64,
    celsius_max: f64,
    bar_max: f64,
    machines_with_counts: i64,
    node_online: i64,
}

fn look(db: &std::path::Path) -> Option<Seen> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .ok()?;
    c.busy_timeout(Duration::from_secs(2)).ok()?;
    let (machines_with_celsius, celsius_min, celsius_max) = c
        .query_row(
            "SELECT count(DISTINCT machine_id), coalesce(min(value), 0), coalesce(max(value), 0)
             FROM telemetry WHERE signal_type = 'temperature' AND unit = 'celsius'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .ok()?;
    let bar_max = c
        .query_row(
            "SELECT coalesce(max(value), 0) FROM telemetry WHERE signal_type = 'pressure' AND unit = 'bar'",
            [],
            |r| r.get(0),
        )
        .ok()?;
    let machines_with_counts = c
        .query_row(
            "SELECT count(DISTINCT machine_id) FROM telemetry WHERE signal_type = 'counter.total'",
            [],
            |r| r.get(0),
        )
        .ok()?;
    let node_online = c
        .query_row(
            "SELECT count(*) FROM events WHERE event_type = 'node_online'",
            [],
            |r| r.get(0),
        )
        .ok()?;
    Some(Seen {
        machines_with_celsius,
        celsius_min,
        celsius_max,
        bar_max,
        machines_with_counts,
        node_online,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_fills_the_database_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_oee-stream"))
        .args([
            "demo",
            "--speed",
            "60",
            "--port",
            &port.to_string(),
            "--dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut demo = Demo(child);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let db = dir.path().join("oee.db");
    let start = Instant::now();

    // The HTTP server answers /health.
    loop {
        if let Ok((200, _)) = try_http_get(addr, "/health").await {
            break;
        }
        assert!(demo.0.try_wait().unwrap().is_none(), "demo exited early");
        assert!(start.elapsed() < DEADLINE, "no /health on {addr}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The dashboard's promise: every simulated machine with an OEE within a minute of start.
    let machines = loop {
        let with_oee = match try_http_get(addr, "/api/machines").await {
            Ok((200, body)) => machines_with_oee(&body),
            _ => Vec::new(),
        };
        if with_oee.len() >= MACHINES {
            break with_oee;
        }
        assert!(demo.0.try_wait().unwrap().is_none(), "demo exited early");
        assert!(
            start.elapsed() < OEE_WITHIN,
            "after {:?} only these machines have an OEE: {with_oee:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        machines,
        [
            "DEMO-Line1-Capper",
            "DEMO-Line1-Filler",
            "DEMO-Line1-Labeler",
            "DEMO-Line2-Mixer",
            "DEMO-Line2-Packer",
            "DEMO-Line2-Press",
        ]
    );
    eprintln!("every machine has an OEE after {:?}", start.elapsed());

    // The database fills: six machines, °F converted to °C, psi to bar, both nodes online.
    let seen = loop {
        if db.exists()
            && let Some(s) = look(&db)
            && s.machines_with_celsius >= 6
            && s.machines_with_counts >= 6
            && s.node_online >= 2
        {
            break s;
        }
        assert!(demo.0.try_wait().unwrap().is_none(), "demo exited early");
        assert!(
            start.elapsed() < DEADLINE,
            "the database did not fill in time: {:?}",
            look(&db)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // The machines run at 150–180 °F (65–82 °C), hotter under an overheat fault, cooler stopped.
    assert!(
        seen.celsius_min > 40.0 && seen.celsius_max < 110.0,
        "not °C: {seen:?}"
    );
    // 40–90 psi is 2.8–6.2 bar.
    assert!(
        seen.bar_max > 1.0 && seen.bar_max < 7.0,
        "not bar: {seen:?}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &demo.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(s) = demo.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < DEADLINE + Duration::from_secs(30),
            "demo did not stop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "demo exit status {exit}");
    let mut out = String::new();
    std::io::Read::read_to_string(demo.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(out.contains(&format!("http://127.0.0.1:{port}/")), "{out}");
    assert!(out.contains("oee.db"), "{out}");
    assert!(out.contains("[demo] stopped"), "{out}");
    // The simulator's NDEATHs reached the database before the sink drained.
    let c = rusqlite::Connection::open(&db).unwrap();
    let offline: i64 = c
        .query_row(
            "SELECT count(*) FROM events WHERE event_type = 'node_offline'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(offline >= 2, "node_offline events: {offline}");
}

#[test]
fn print_config_prints_the_built_in_configuration() {
    let out = Command::new(env!("CARGO_BIN_EXE_oee-stream"))
        .args(["demo", "--print-config"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("DemoPlant/{line}/{machine}/Process/Temperature"));
    // It is a valid configuration file as printed.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &text).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_oee-stream"))
        .arg("check-config")
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}
