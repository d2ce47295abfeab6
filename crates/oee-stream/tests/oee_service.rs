//! The OEE path of the service, in process: a real Mosquitto, a real PostgreSQL database of its
//! own, the pipeline with its OEE task and the sink. An edge node publishes births, then state,
//! counter and fault changes with event timestamps spanning one whole hour window in the past;
//! the wall-clock watermark closes that window, PostgreSQL holds its `oee_windows` row with
//! the numbers worked out below, the `faults` rows follow the fault transitions, and an
//! acknowledgement through `Live` shows in the view and, after shutdown, in the table.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use oee_stream::live::LiveView;
use oee_stream::pipeline::{self, now_ms};
use oee_stream::settings::load_settings;
use oee_stream::sink;
use sparkplug::{DataType, Metric, Value};

mod common;
mod support;

use common::TestDb;
use support::{Broker, Observer, WAIT, by_alias, metric, nbirth, payload};

const MIN: u64 = 60_000;

fn rules(tz: &str) -> String {
    format!(
        r#"processing:
  tag_mappings:
    - {{source_tag: "G1/E1/M1/Running", signal_type: "state.running", machine_id: "M1", line_id: "L1", site_id: "S1"}}
    - {{source_tag: "G1/E1/M1/Total", signal_type: "counter.total", machine_id: "M1", line_id: "L1", site_id: "S1"}}
    - {{source_tag: "G1/E1/M1/Reject", signal_type: "counter.reject", machine_id: "M1", line_id: "L1", site_id: "S1"}}
    - {{source_tag: "G1/E1/M1/Jam", signal_type: "fault.active", fault_code: 1001, machine_id: "M1", line_id: "L1", site_id: "S1"}}
    - {{source_tag: "G1/E1/M1/DoorOpen", signal_type: "fault.active", fault_code: 2002, machine_id: "M1", line_id: "L1", site_id: "S1"}}
  ideal_cycle_times:
    M1: 2.0
  unmapped:
    policy: drop
oee:
  allowed_lateness_s: 60
  calendars:
    - site_id: S1
      time_zone: "{tz}"
      shifts:
        - {{name: all_day, start: "00:00", end: "00:00"}}
faults:
  severity_rules:
    - {{code: 2002, severity: 900, failure: false}}
"#
    )
}

fn at(m: Metric, ts: u64) -> Metric {
    Metric {
        timestamp: Some(ts),
        ..m
    }
}

/// The DDATA of one moment: `(alias, value)` pairs, all stamped `ts`.
fn ddata(seq: u64, ts: u64, values: &[(u64, Value)]) -> Vec<u8> {
    let metrics = values
        .iter()
        .map(|(alias, v)| {
            let dt = match v {
                Value::Boolean(_) => DataType::Boolean,
                _ => DataType::UInt32,
            };
            at(by_alias(*alias, dt, v.clone()), ts)
        })
        .collect();
    payload(Some(seq), metrics)
}

async fn wait_view(
    view: &mut tokio::sync::watch::Receiver<std::sync::Arc<LiveView>>,
    what: &str,
    pred: impl FnMut(&std::sync::Arc<LiveView>) -> bool,
) -> std::sync::Arc<LiveView> {
    let r = tokio::time::timeout(WAIT, view.wait_for(pred))
        .await
        .unwrap_or_else(|_| panic!("the live view never showed {what}"))
        .expect("the OEE task is running");
    std::sync::Arc::clone(&r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_of_machine_data_becomes_oee_windows_and_faults() {
    // The newest whole hour window that the clock watermark (now − 60 s) has passed with a
    // margin. Windows follow the site's local hours: UTC windows start at :00, Asia/Kolkata
    // (UTC+5:30) windows at :30, so one of the two is at most 2 h 32 min old, well inside the
    // engine's revision horizon (2 h behind the watermark) for the time this test runs.
    let now = now_ms();
    let w = (now - 2 * MIN - 60 * MIN) / (30 * MIN) * (30 * MIN);
    let tz = if w.is_multiple_of(60 * MIN) {
        "UTC"
    } else {
        "Asia/Kolkata"
    };
    let broker = Broker::start().await;
    let db = TestDb::create("oee").await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "mqtt:\n  url: \"{}\"\n  host_id: \"oee\"\n\
         database:\n  url: \"{}\"\n  batch_max_latency_ms: 100\n  spool:\n    dir: \"{}\"\n{}",
        broker.url(),
        db.url,
        dir.path().join("spool").display(),
        rules(tz)
    );
    let settings = load_settings(&text, "oee.yml", &BTreeMap::new())
        .unwrap_or_else(|e| panic!("settings: {e:?}"));
    let sink = sink::start(&settings).await.unwrap();
    let pipeline = pipeline::start(&settings, sink.sender.clone(), None).unwrap();
    let live = pipeline.live();
    let mut view = live.view.clone();
    tokio::time::timeout(WAIT, pipeline.status().wait_for(|s| s.sessions >= 1))
        .await
        .expect("the host session is born")
        .unwrap();

    // Births (now): the final values, so nothing is counted after the window.
    let edge = Observer::connect(broker.port, "edge-e1", &[]).await;
    edge.publish("spBv1.0/G1/NBIRTH/E1", nbirth(0, 1), false)
        .await;
    let dbirth = payload(
        Some(1),
        vec![
            metric("Running", 1, DataType::Boolean, Value::Boolean(true)),
            metric("Total", 2, DataType::UInt32, Value::UInt32(2200)),
            metric("Reject", 3, DataType::UInt32, Value::UInt32(60)),
            metric("Jam", 4, DataType::Boolean, Value::Boolean(false)),
            metric("DoorOpen", 5, DataType::Boolean, Value::Boolean(true)),
        ],
    );
    edge.publish("spBv1.0/G1/DBIRTH/E1/M1", dbirth, false).await;

    // The hour [w, w + 60 min), ideal cycle time 2 s:
    //   running 0–20 min, stopped 20–30 min (a jam, fault 1001, 10 min > the 2-min
    //   micro-stop threshold), running 30–60 min: run time 50 min = 3 000 s of 3 600 s planned;
    //   total 1 000 → 2 200 = 1 200 parts, ideal time 2 400 s; rejects 0 → 60, good 1 140.
    //   availability 3 000 / 3 600 = 83.33 %, performance 2 400 / 3 000 = 80 %,
    //   quality 1 140 / 1 200 = 95 %, OEE 2 280 s / 3 600 s = 63.33 %;
    //   one failure (the jam), repaired in 600 s: MTTR 600 s, MTBF 3 000 s / 1.
    //   The door (fault 2002, severity 900, not a failure) opens at 50 min and stays open.
    let t = |m: u64| w + m * MIN;
    let steps: Vec<(u64, Vec<(u64, Value)>)> = vec![
        (
            t(0),
            vec![
                (1, Value::Boolean(true)),
                (2, Value::UInt32(1000)),
                (3, Value::UInt32(0)),
                (4, Value::Boolean(false)),
                (5, Value::Boolean(false)),
            ],
        ),
        (t(10), vec![(2, Value::UInt32(1200))]),
        (
            t(20),
            vec![
                (1, Value::Boolean(false)),
                (4, Value::Boolean(true)),
                (2, Value::UInt32(1400)),
            ],
        ),
        (
            t(30),
            vec![(1, Value::Boolean(true)), (4, Value::Boolean(false))],
        ),
        (
            t(40),
            vec![(2, Value::UInt32(1800)), (3, Value::UInt32(40))],
        ),
        (
            t(50),
            vec![(5, Value::Boolean(true)), (2, Value::UInt32(2000))],
        ),
        (
            t(59),
            vec![(2, Value::UInt32(2200)), (3, Value::UInt32(60))],
        ),
    ];
    for (i, (ts, values)) in steps.iter().enumerate() {
        edge.publish(
            "spBv1.0/G1/DDATA/E1/M1",
            ddata(2 + i as u64, *ts, values),
            false,
        )
        .await;
    }

    // The live view: the jam resolved without acknowledgement, the door active.
    let v = wait_view(&mut view, "both faults", |v| {
        v.faults
            .iter()
            .any(|f| f.code == 1001 && f.state == "RESOLVED")
            && v.faults
                .iter()
                .any(|f| f.code == 2002 && f.state == "ACTIVE" && f.first_active_ms == t(50) as i64)
    })
    .await;
    let jam = v.faults.iter().find(|f| f.code == 1001).unwrap().clone();
    assert!(jam.resolved_unacknowledged);
    assert_eq!(jam.first_active_ms, t(20) as i64);
    assert_eq!(jam.resolved_ms, Some(t(30) as i64));
    // The birth (now) said "open" before the older data arrived: late data re-folds the
    // instance, the view shows only the recomputed one.
    let doors: Vec<_> = v.faults.iter().filter(|f| f.code == 2002).collect();
    assert_eq!(doors.len(), 1, "{doors:?}");
    let door = doors[0].clone();
    assert_eq!(door.severity, 900);
    let m1 = v.machines.iter().find(|m| m.machine_id == "M1").unwrap();
    assert_eq!(m1.line_id, "L1");
    assert_eq!(m1.active_faults, 2);
    assert!(v.nodes.iter().any(|n| n.edge_node == "E1" && n.online));

    // Acknowledge the door through the API's interface.
    let ack_at = now_ms() as i64;
    let acked = live
        .acknowledge(door.id.clone(), "alice".into(), ack_at)
        .await
        .expect("acknowledged");
    assert_eq!(acked.state, "ACKNOWLEDGED");
    assert_eq!(acked.acknowledged_by.as_deref(), Some("alice"));
    let again = live
        .acknowledge(door.id.clone(), "bob".into(), ack_at)
        .await;
    assert!(again.is_err(), "a second acknowledgement is refused");
    assert!(
        live.acknowledge("ffff".into(), "bob".into(), ack_at)
            .await
            .is_err()
    );
    wait_view(&mut view, "the door acknowledged", |v| {
        v.faults
            .iter()
            .any(|f| f.id == door.id && f.state == "ACKNOWLEDGED")
    })
    .await;

    // The hour window reaches PostgreSQL while the service runs (the clock watermark).
    let c = db.client().await;
    let row = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let rows = c
                .query(
                    "SELECT planned_ms, run_ms, total_count, good_count, reject_count, \
                     availability, performance, quality, oee, failures, mtbf_s, mttr_s, \
                     revision, unknown_ms \
                     FROM oee_windows WHERE scope = 'machine' AND machine_id = 'M1' \
                     AND window_kind = 'hour' \
                     AND (extract(epoch FROM window_start) * 1000)::bigint = $1",
                    &[&(w as i64)],
                )
                .await
                .unwrap();
            if let Some(r) = rows.into_iter().next() {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the hour window is written within 30 s");
    let f = |i: usize| -> f64 { row.get::<_, Option<f64>>(i).expect("not NULL") };
    assert_eq!(row.get::<_, i64>(0), 3_600_000, "planned");
    assert_eq!(row.get::<_, i64>(1), 3_000_000, "run");
    assert_eq!(row.get::<_, i64>(2), 1_200, "total");
    assert_eq!(row.get::<_, i64>(3), 1_140, "good");
    assert_eq!(row.get::<_, i64>(4), 60, "reject");
    assert!(
        (f(5) - 3000.0 / 3600.0).abs() < 1e-9,
        "availability {}",
        f(5)
    );
    assert!((f(6) - 0.8).abs() < 1e-9, "performance {}", f(6));
    assert!((f(7) - 0.95).abs() < 1e-9, "quality {}", f(7));
    assert!((f(8) - 2280.0 / 3600.0).abs() < 1e-9, "oee {}", f(8));
    assert_eq!(row.get::<_, i64>(9), 1, "failures");
    assert!((f(10) - 3000.0).abs() < 1e-9, "mtbf {}", f(10));
    assert!((f(11) - 600.0).abs() < 1e-9, "mttr {}", f(11));
    assert_eq!(row.get::<_, i32>(12), 0, "revision");
    assert_eq!(row.get::<_, i64>(13), 0, "no unknown time");

    // Shutdown: pipeline (flushing the engine), then the sink.
    pipeline.shutdown().await;
    sink.shutdown().await.expect("the sink drains");

    let faults = c
        .query(
            "SELECT code, state, acknowledged_by, severity, \
             (extract(epoch FROM resolved_at) * 1000)::bigint \
             FROM faults WHERE machine_id = 'M1' AND state <> 'SUPERSEDED' ORDER BY code",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(faults.len(), 2);
    assert_eq!(faults[0].get::<_, i64>(0), 1001);
    assert_eq!(faults[0].get::<_, String>(1), "RESOLVED");
    assert_eq!(faults[0].get::<_, Option<String>>(2), None);
    assert_eq!(faults[0].get::<_, i32>(3), 500);
    assert_eq!(faults[0].get::<_, Option<i64>>(4), Some(t(30) as i64));
    assert_eq!(faults[1].get::<_, i64>(0), 2002);
    assert_eq!(faults[1].get::<_, String>(1), "ACKNOWLEDGED");
    assert_eq!(
        faults[1].get::<_, Option<String>>(2).as_deref(),
        Some("alice")
    );
    assert_eq!(faults[1].get::<_, i32>(3), 900);

    let transitions: Vec<String> = c
        .query(
            "SELECT payload->>'transition' FROM events WHERE event_type = 'fault_transition' \
             ORDER BY time, event_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // The births (now) arrive before the older data, so the instances are revised as the
    // data comes in (and the door's birth-time instance superseded).
    for want in ["activated", "revised", "superseded", "acknowledged"] {
        assert!(
            transitions.iter().any(|t| t == want),
            "{want} in {transitions:?}"
        );
    }
    let window_events: i64 = c
        .query_one(
            "SELECT count(*) FROM events WHERE event_type = 'oee_window' \
             AND machine_id = 'M1' AND (extract(epoch FROM time) * 1000)::bigint = $1",
            &[&((w + 60 * MIN) as i64)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(window_events, 1, "one event when the hour is first final");
    let line: f64 = c
        .query_one(
            "SELECT oee FROM oee_windows WHERE scope = 'line' AND line_id = 'L1' \
             AND window_kind = 'hour' AND (extract(epoch FROM window_start) * 1000)::bigint = $1",
            &[&(w as i64)],
        )
        .await
        .unwrap()
        .get(0);
    assert!((line - 2280.0 / 3600.0).abs() < 1e-9, "line oee {line}");
    let rolling: i64 = c
        .query_one(
            "SELECT count(*) FROM oee_windows WHERE window_kind = 'rolling'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(rolling > 0, "rolling windows are written too");
}
