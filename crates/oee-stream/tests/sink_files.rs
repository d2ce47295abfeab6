//! The SQLite and JSON-lines sinks: the same records in, the same rows out.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use oee_stream::settings::{Settings, load_settings};
use oee_stream::sink::{Batch, BatchId, Record, WriteOutcome, start, testdata};

fn settings(url: &str, spool: &Path) -> Settings {
    let text = format!(
        "database:\n  url: \"{url}\"\n  batch_size: 300\n  batch_max_latency_ms: 20\n  \
         spool:\n    dir: \"{}\"\n",
        spool.display()
    );
    load_settings(&text, "test.yml", &BTreeMap::new()).unwrap()
}

fn expected(n: u64) -> (usize, usize) {
    let tags = testdata::tags(30);
    let recs: Vec<Record> = (0..n).map(|i| testdata::mixed(&tags, i)).collect();
    let tel = recs
        .iter()
        .filter(|r| matches!(r, Record::Telemetry(_)))
        .count();
    let ev = recs
        .iter()
        .filter(|r| matches!(r, Record::Event(_)))
        .count();
    (tel, ev)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_round_trip_and_a_repeated_batch_is_not_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("oee.db");
    let h = start(&settings(
        &format!("sqlite://{}", db.display()),
        &dir.path().join("spool"),
    ))
    .await
    .unwrap();
    let tags = testdata::tags(30);
    let n = 2000;
    for i in 0..n {
        h.sender.send(testdata::mixed(&tags, i)).await.unwrap();
    }
    h.shutdown().await.unwrap();
    let (tel, ev) = expected(n);
    let c = rusqlite::Connection::open(&db).unwrap();
    let q = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(q("SELECT count(*) FROM telemetry") as usize, tel);
    assert_eq!(
        q("SELECT count(DISTINCT time) FROM telemetry") as usize,
        tel
    );
    assert_eq!(q("SELECT count(*) FROM events") as usize, ev);
    assert_eq!(q("SELECT count(*) FROM oee_windows"), 5);
    assert_eq!(q("SELECT count(*) FROM faults"), 7);
    assert_eq!(
        c.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
            .unwrap(),
        "wal"
    );
    let (unit, metric, value): (Option<String>, String, f64) = c
        .query_row(
            "SELECT unit, sp_metric, value FROM telemetry WHERE time = 1700000000001",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (unit.as_deref(), metric.as_str(), value),
        (Some("celsius"), "metric/1", 0.5)
    );
    assert_eq!(
        q("SELECT count(*) FROM telemetry WHERE value = 9e999"),
        (0..n)
            .filter(|i| i % 97 == 29 && matches!(testdata::mixed(&tags, *i), Record::Telemetry(_)))
            .count() as i64,
        "+Inf stored as an infinity"
    );
    drop(c);

    // The same batch twice through the writer: the ledger recognises it.
    let mut w = oee_stream::sink::sqlite::SqliteWriter::open(&db).unwrap();
    let batch = Batch {
        id: BatchId { writer: 5, seq: 1 },
        records: (0..10)
            .map(|i| Record::Telemetry(testdata::telemetry(&tags, 10_000 + i)))
            .collect(),
    };
    assert!(matches!(w.write(&batch).unwrap(), WriteOutcome::Written(_)));
    assert!(matches!(w.write(&batch).unwrap(), WriteOutcome::Duplicate));
    let c = rusqlite::Connection::open(&db).unwrap();
    let total: i64 = c
        .query_row("SELECT count(*) FROM telemetry", [], |r| r.get(0))
        .unwrap();
    assert_eq!(total as usize, tel + 10);
}

#[tokio::test]
async fn json_lines_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let h = start(&settings(
        &format!("jsonl://{}", out.display()),
        &dir.path().join("spool"),
    ))
    .await
    .unwrap();
    let tags = testdata::tags(30);
    let n = 1000;
    for i in 0..n {
        h.sender.send(testdata::mixed(&tags, i)).await.unwrap();
    }
    h.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), n as usize, "one line per record");
    let (tel, ev) = expected(n);
    let stream = |s: &str| lines.iter().filter(|l| l["stream"] == s).count();
    assert_eq!(stream("telemetry"), tel);
    assert_eq!(stream("events"), ev);
    assert!(stream("oee_windows") > 0 && stream("faults") > 0);
    // Order is kept and every field is there.
    let first = &lines[1];
    assert_eq!(first["stream"], "telemetry");
    assert_eq!(first["time"], "2023-11-14T22:13:20.001Z");
    assert_eq!(first["unit"], "celsius");
    assert_eq!(first["sp_metric"], "metric/1");
    assert_eq!(first["value"], 0.5);
    assert_eq!(lines[13]["value"], "NaN");
    assert_eq!(lines[9]["stream"], "events");
    assert_eq!(lines[9]["payload"]["to"], "ACTIVE");
}
