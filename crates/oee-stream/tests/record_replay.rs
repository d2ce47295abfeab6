//! `oee-stream record` and `oee-stream replay` through the real binary: a live `run` and a
//! recorder on one Mosquitto see the same deterministic plant; replaying the recording writes
//! the rows the live run wrote, and two replays write identical rows. A crafted recording
//! (sequence gap, node death, connection loss) replays identically twice, with the host's
//! reorder timeout run at its recorded time. A recorder killed with SIGKILL leaves a readable
//! file.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use oee_stream::pipeline::now_ms;
use oee_stream::recording::{Entry, Reader, Writer};
use sparkplug::{DataType, Metric, MetricValue, Payload, Value};

mod support;

use support::{Broker, Observer, WAIT, free_port, try_http_get};

const MIN: u64 = 60_000;
const HOUR: u64 = 3_600_000;

/// A child process, killed if the test fails before it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_oee-stream"));
    c.env_remove("OEE_CONFIG").env_remove("RUST_LOG");
    c
}

fn signal(p: &Proc, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &p.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// Waits (bounded) for the process to exit and returns its status.
fn wait_exit(mut p: Proc) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = p.0.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "the process did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `oee-stream record` and waits for its "subscribed" line.
fn start_recorder(url: &str, out: &Path) -> Proc {
    let mut child = bin()
        .args(["record", "--broker", url, "--out"])
        .arg(out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let p = Proc(child);
    loop {
        let line = rx.recv_timeout(WAIT).expect("the recorder subscribes");
        if line.starts_with("subscribed to spBv1.0/#") {
            return p;
        }
    }
}

fn run_replay(recording: &Path, config: &Path, sink: &str) {
    let out = bin()
        .arg("replay")
        .arg(recording)
        .arg("--config")
        .arg(config)
        .args(["--sink", sink])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Messages in a recording whose topic contains `verb`.
fn recorded(path: &Path, verb: &str) -> usize {
    let Ok(mut r) = Reader::open(path) else {
        return 0;
    };
    let mut n = 0;
    while let Ok(Some(e)) = r.next_entry() {
        if let Entry::Message { topic, .. } = e
            && String::from_utf8_lossy(&topic).contains(verb)
        {
            n += 1;
        }
    }
    n
}

/// Every row of the four tables, each as one string, sorted; `live` leaves out what only the
/// receiving client's clock decides (see docs/tools.md).
fn rows(db: &Path, live: bool) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let queries = [
        if live {
            "SELECT 'telemetry', time, site_id, line_id, machine_id, signal_type, value, \
             value_text, unit, quality, sp_group, sp_edge_node, sp_device, sp_metric, \
             is_historical FROM telemetry"
        } else {
            "SELECT 'telemetry', * FROM telemetry"
        },
        if live {
            "SELECT 'events', time, event_type, site_id, line_id, machine_id, severity, event_id, \
             json_remove(payload, '$.received_at') FROM events"
        } else {
            "SELECT 'events', * FROM events"
        },
        "SELECT 'oee_windows', * FROM oee_windows",
        "SELECT 'faults', * FROM faults",
    ];
    let mut out = Vec::new();
    for q in queries {
        let mut stmt = c.prepare(q).unwrap();
        let n = stmt.column_count();
        let mut rs = stmt.query([]).unwrap();
        while let Some(r) = rs.next().unwrap() {
            let cols: Vec<String> = (0..n)
                .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                .collect();
            out.push(cols.join("|"));
        }
    }
    out.sort();
    out
}

fn metric(name: &str, alias: u64, ts: u64, v: Value) -> Metric {
    let datatype = match v {
        Value::Boolean(_) => DataType::Boolean,
        Value::Double(_) => DataType::Double,
        _ => DataType::UInt32,
    };
    Metric {
        name: Some(name.into()),
        alias: Some(alias),
        timestamp: Some(ts),
        datatype: Some(datatype),
        value: MetricValue::Value(v),
        ..Metric::default()
    }
}

fn by_alias(alias: u64, ts: u64, v: Value) -> Metric {
    Metric {
        name: None,
        ..metric("", alias, ts, v)
    }
}

fn payload(seq: Option<u64>, ts: u64, metrics: Vec<Metric>) -> Vec<u8> {
    Payload {
        timestamp: Some(ts),
        metrics,
        seq,
        uuid: None,
        body: None,
    }
    .encode()
    .unwrap()
}

/// The plant: edge node E1 (line L1) with machines M1 and M2, an hour of event time from `w`.
/// Returns (topic, payload) in publishing order.
fn scenario(w: u64) -> Vec<(String, Vec<u8>)> {
    let t = |m: u64| w + m * MIN;
    let mut seq = 0u64;
    let mut next = || {
        let s = seq % 256;
        seq += 1;
        Some(s)
    };
    let mut out = Vec::new();
    let bd = Metric {
        name: Some("bdSeq".into()),
        datatype: Some(DataType::Int64),
        value: MetricValue::Value(Value::Int64(1)),
        ..Metric::default()
    };
    out.push((
        "spBv1.0/G1/NBIRTH/E1".to_string(),
        payload(next(), t(0), vec![bd]),
    ));
    let dbirth = |base: u64, ts: u64, total: u32| {
        vec![
            metric("Running", base + 1, ts, Value::Boolean(true)),
            metric("Total", base + 2, ts, Value::UInt32(total)),
            metric("Reject", base + 3, ts, Value::UInt32(0)),
            metric("Jam", base + 4, ts, Value::Boolean(false)),
            metric("Temperature", base + 5, ts, Value::Double(20.0)),
        ]
    };
    out.push((
        "spBv1.0/G1/DBIRTH/E1/M1".into(),
        payload(next(), t(0), dbirth(0, t(0), 0)),
    ));
    out.push((
        "spBv1.0/G1/DBIRTH/E1/M2".into(),
        payload(next(), t(0), dbirth(10, t(0), 0)),
    ));
    for m in 1..=60u64 {
        let ts = t(m);
        let mut m1 = vec![
            by_alias(2, ts, Value::UInt32((m * 25) as u32)),
            by_alias(5, ts, Value::Double(20.0 + (m % 7) as f64)),
        ];
        if m % 10 == 0 {
            m1.push(by_alias(3, ts, Value::UInt32((m / 10) as u32)));
        }
        // M1 jams from minute 20 to minute 30.
        if m == 20 || m == 30 {
            m1.push(by_alias(1, ts, Value::Boolean(m == 30)));
            m1.push(by_alias(4, ts, Value::Boolean(m == 20)));
        }
        out.push(("spBv1.0/G1/DDATA/E1/M1".into(), payload(next(), ts, m1)));
        // M2 dies at minute 40 and is born again at minute 50.
        match m {
            40 => out.push((
                "spBv1.0/G1/DDEATH/E1/M2".into(),
                payload(next(), ts, vec![]),
            )),
            50 => out.push((
                "spBv1.0/G1/DBIRTH/E1/M2".into(),
                payload(next(), ts, dbirth(10, ts, 2000)),
            )),
            41..=49 => {}
            _ => out.push((
                "spBv1.0/G1/DDATA/E1/M2".into(),
                payload(
                    next(),
                    ts,
                    vec![by_alias(
                        12,
                        ts,
                        Value::UInt32(m as u32 * 30 + if m > 50 { 2000 } else { 0 }),
                    )],
                ),
            )),
        }
    }
    out
}

fn config(dir: &Path, url: &str, db: &str, http: SocketAddr) -> PathBuf {
    let rule = |metric: &str, kind: &str, extra: &str| {
        format!(
            "    - {{source_tag: \"G1/E1/{{machine}}/{metric}\", signal_type: \"{kind}\", \
             machine_id: \"{{machine}}\", line_id: \"L1\", site_id: \"S1\"{extra}}}\n"
        )
    };
    let text = format!(
        "mqtt:\n  url: \"{url}\"\n  host_id: \"rr\"\n\
         sparkplug:\n  shards: 2\n\
         database:\n  url: \"{db}\"\n  batch_max_latency_ms: 100\n  spool:\n    dir: \"{}\"\n\
         http:\n  listen: \"{http}\"\n\
         processing:\n  tag_mappings:\n{}{}{}{}{}  ideal_cycle_times:\n    M1: 2.0\n    M2: 1.5\n",
        dir.join("spool").display(),
        rule("Running", "state.running", ""),
        rule("Total", "counter.total", ""),
        rule("Reject", "counter.reject", ""),
        rule("Jam", "fault.active", ", fault_code: 1001"),
        rule("Temperature", "temperature", ""),
    );
    let path = dir.join("plant.yml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn metric_line(http: SocketAddr, line: &str) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(2), try_http_get(http, "/metrics")).await,
        Ok(Ok((200, body))) if body.lines().any(|l| l == line)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_writes_what_the_live_run_wrote_and_two_replays_are_identical() {
    let broker = Broker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let live_db = dir.path().join("live.db");
    let cfg = config(
        dir.path(),
        &broker.url(),
        &format!("sqlite://{}", live_db.display()),
        http,
    );
    let live = Proc(
        bin()
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + WAIT;
    while !matches!(try_http_get(http, "/ready").await, Ok((200, _))) {
        assert!(Instant::now() < deadline, "run never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rec = dir.path().join("plant.oeerec");
    let recorder = start_recorder(&broker.url(), &rec);

    // Event times lie in the next whole hour, so the live run's wall-clock watermark
    // (now − allowed lateness) never reaches them: as in the replay, only the data moves the
    // watermark, and what the two write does not depend on when either of them stopped.
    let now = now_ms();
    let mut w = (now / HOUR + 1) * HOUR;
    if w - now < MIN {
        w += HOUR;
    }
    let messages = scenario(w);
    let ddata = messages.iter().filter(|m| m.0.contains("DDATA")).count();
    let edge = Observer::connect(broker.port, "edge-e1", &[]).await;
    for (topic, p) in messages {
        edge.publish(&topic, p, false).await;
    }
    let line = format!("oee_stream_mqtt_messages_total{{type=\"DDATA\"}} {ddata}");
    let deadline = Instant::now() + WAIT;
    while !metric_line(http, &line).await {
        assert!(
            Instant::now() < deadline,
            "the live run never showed {line}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for("the recorder to write every DDATA", || {
        recorded(&rec, "DDATA") == ddata
    })
    .await;
    signal(&live, "-TERM");
    assert!(wait_exit(live).success());
    signal(&recorder, "-TERM");
    assert!(wait_exit(recorder).success());

    let r1 = dir.path().join("replay1.db");
    let r2 = dir.path().join("replay2.db");
    run_replay(&rec, &cfg, &format!("sqlite://{}", r1.display()));
    run_replay(&rec, &cfg, &format!("sqlite://{}", r2.display()));

    // The live run wrote an hour window with the jam in it, and the jam as a fault.
    let c = rusqlite::Connection::open(&live_db).unwrap();
    let (run_ms, availability): (i64, f64) = c
        .query_row(
            "SELECT run_ms, availability FROM oee_windows WHERE machine_id = 'M1' \
             AND window_kind = 'hour' AND window_start = ?1",
            [w as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(run_ms, 50 * MIN as i64);
    assert!((availability - 50.0 / 60.0).abs() < 1e-9, "{availability}");
    let jams: i64 = c
        .query_row("SELECT count(*) FROM faults WHERE code = 1001", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(jams, 1);
    let stale: i64 = c
        .query_row(
            "SELECT count(*) FROM telemetry WHERE machine_id = 'M2' AND quality = 500",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stale, 5, "the DDEATH made M2's five metrics STALE");

    let replay1 = rows(&r1, false);
    assert_eq!(
        replay1,
        rows(&r2, false),
        "two replays write identical rows"
    );
    let live_rows = rows(&live_db, true);
    assert!(live_rows.len() > 200, "{}", live_rows.len());
    assert_eq!(
        live_rows,
        rows(&r1, true),
        "the replay writes what the live run wrote"
    );
}

/// A recording with a sequence gap that times out, a node death and a connection loss.
fn crafted(path: &Path, t0: u64) {
    let mut w = Writer::create(path).unwrap();
    let msg = |at: u64, topic: &str, p: Vec<u8>| Entry::Message {
        at_ms: at,
        topic: Bytes::copy_from_slice(topic.as_bytes()),
        payload: Bytes::from(p),
    };
    let bd = |v: i64| Metric {
        name: Some("bdSeq".into()),
        datatype: Some(DataType::Int64),
        value: MetricValue::Value(Value::Int64(v)),
        ..Metric::default()
    };
    let entries = vec![
        Entry::Connected { at_ms: t0 },
        msg(
            t0 + 10,
            "spBv1.0/G1/NBIRTH/E1",
            payload(Some(0), t0, vec![bd(3)]),
        ),
        msg(
            t0 + 20,
            "spBv1.0/G1/DBIRTH/E1/M1",
            payload(
                Some(1),
                t0,
                vec![
                    metric("Running", 1, t0, Value::Boolean(true)),
                    metric("Total", 2, t0, Value::UInt32(0)),
                    metric("Temperature", 5, t0, Value::Double(20.0)),
                ],
            ),
        ),
        msg(
            t0 + 1_000,
            "spBv1.0/G1/DDATA/E1/M1",
            payload(
                Some(2),
                t0 + 1_000,
                vec![by_alias(2, t0 + 1_000, Value::UInt32(5))],
            ),
        ),
        // seq 3 never comes: seq 4 waits for it until the reorder timeout (2 s).
        msg(
            t0 + 2_000,
            "spBv1.0/G1/DDATA/E1/M1",
            payload(
                Some(4),
                t0 + 2_000,
                vec![by_alias(2, t0 + 2_000, Value::UInt32(9))],
            ),
        ),
        msg(
            t0 + 9_000,
            "spBv1.0/G1/NDEATH/E1",
            payload(None, t0 + 9_000, vec![bd(3)]),
        ),
        Entry::ConnectionLost { at_ms: t0 + 12_000 },
        Entry::Connected { at_ms: t0 + 13_000 },
        msg(
            t0 + 14_000,
            "spBv1.0/G1/NBIRTH/E1",
            payload(Some(0), t0 + 14_000, vec![bd(4)]),
        ),
    ];
    for e in &entries {
        w.append(e).unwrap();
    }
    w.sync().unwrap();
}

#[test]
fn replays_are_identical_and_run_host_deadlines_at_their_recorded_time() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("crafted.oeerec");
    let t0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    crafted(&rec, t0);
    let http: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let cfg = config(dir.path(), "mqtt://127.0.0.1:1", "jsonl://-", http);
    let mut outputs = Vec::new();
    for i in 0..2 {
        let out = dir.path().join(format!("replay{i}.jsonl"));
        run_replay(&rec, &cfg, &format!("jsonl://{}", out.display()));
        let text = std::fs::read_to_string(&out).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        outputs.push(lines);
    }
    assert_eq!(outputs[0], outputs[1], "two replays write the same rows");
    let rows: Vec<serde_json::Value> = outputs[0]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events = |kind: &str| -> Vec<&serde_json::Value> {
        rows.iter()
            .filter(|r| r["stream"] == "events" && r["event_type"] == kind)
            .collect()
    };
    // The gap opened at t0 + 2 000 and timed out 2 s later, in recorded time: seq 4 applied,
    // one rebirth request decided then, and not sent.
    let rebirths = events("rebirth_requested");
    assert_eq!(rebirths.len(), 1, "{rebirths:?}");
    assert_eq!(rebirths[0]["time"], "2026-01-01T00:00:04.000Z");
    assert_eq!(rebirths[0]["payload"]["dropped"], "replay");
    let totals: Vec<f64> = rows
        .iter()
        .filter(|r| r["stream"] == "telemetry" && r["signal_type"] == "counter.total")
        .filter_map(|r| r["value"].as_f64())
        .collect();
    assert_eq!(totals, [0.0, 5.0, 9.0]);
    // The NDEATH and the connection loss: nodes offline at their recorded receipt times.
    let offline: Vec<&str> = events("node_offline")
        .iter()
        .map(|e| e["time"].as_str().unwrap())
        .collect();
    assert!(offline.contains(&"2026-01-01T00:00:09.000Z"), "{offline:?}");
    assert_eq!(events("node_online").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_killed_mid_stream_leaves_a_readable_recording() {
    let broker = Broker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("killed.oeerec");
    let recorder = start_recorder(&broker.url(), &rec);
    let edge = Observer::connect(broker.port, "edge-k", &[]).await;
    let ts = now_ms();
    for i in 0..50u64 {
        edge.publish(
            "spBv1.0/G1/NDATA/E9",
            payload(Some(i), ts, vec![by_alias(1, ts, Value::UInt32(i as u32))]),
            false,
        )
        .await;
    }
    wait_for("50 recorded messages", || recorded(&rec, "NDATA") == 50).await;
    signal(&recorder, "-KILL");
    let _ = wait_exit(recorder);
    // A record torn by the crash: half of a frame at the end.
    let mut raw = std::fs::read(&rec).unwrap();
    raw.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4, 1]);
    std::fs::write(&rec, &raw).unwrap();

    let out = bin().args(["record", "--show"]).arg(&rec).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ndata = stdout.lines().filter(|l| l.contains("  NDATA  ")).count();
    assert_eq!(ndata, 50, "{stdout}");
    assert!(
        stdout.lines().last().unwrap().contains("50 messages"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the last 9 bytes") && stderr.contains("not a whole record"),
        "{stderr}"
    );
}
