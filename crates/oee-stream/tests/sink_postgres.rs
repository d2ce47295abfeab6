//! The PostgreSQL sink against a real server: migrations (twice, concurrently), every table
//! round trip, idempotent retries, and an outage in the middle of a stream (a throwaway cluster
//! stopped and started again). Each test has its own database or cluster.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use oee_stream::settings::{DatabaseConfig, Settings, WriteMethod, load_settings};
use oee_stream::sink::postgres::{PgWriter, migrate};
use oee_stream::sink::{Batch, BatchId, Record, start, testdata};

mod common;
use common::{Cluster, TestDb, wait_until};

fn settings(url: &str, spool: &Path, method: &str) -> Settings {
    let text = format!(
        "database:\n  url: \"{url}\"\n  batch_size: 500\n  batch_max_latency_ms: 20\n  \
         queue_capacity: 2000\n  retry_initial_ms: 50\n  retry_max_ms: 300\n  \
         write_method: {method}\n  spool:\n    dir: \"{}\"\n    segment_bytes: 65536\n",
        spool.display()
    );
    load_settings(&text, "test.yml", &BTreeMap::new()).unwrap()
}

async fn count(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn migrations_run_twice_and_from_two_connections_at_once_apply_once() {
    let db = TestDb::create("migrate").await;
    let mut a = db.client().await;
    let mut b = db.client().await;
    let (ra, rb) = tokio::join!(migrate(&mut a, 7, 0), migrate(&mut b, 7, 0));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let mut applied = [ra.applied.clone(), rb.applied.clone()].concat();
    applied.sort();
    assert_eq!(
        applied,
        vec![1, 2],
        "each migration applied by exactly one connection"
    );
    assert_eq!(ra.timescale, None, "plain PostgreSQL here");
    let again = migrate(&mut a, 7, 0).await.unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(count(&a, "SELECT count(*) FROM schema_migrations").await, 2);
    for t in [
        "telemetry",
        "events",
        "oee_windows",
        "faults",
        "sink_batches",
    ] {
        assert_eq!(
            count(
                &a,
                &format!("SELECT count(*) FROM pg_tables WHERE tablename = '{t}'")
            )
            .await,
            1,
            "{t}"
        );
    }
}

async fn round_trip(method: &str) {
    let db = TestDb::create(method).await;
    let spool = tempfile::tempdir().unwrap();
    let h = start(&settings(&db.url, spool.path(), method))
        .await
        .unwrap();
    let tags = testdata::tags(30);
    let n = 3000u64;
    for i in 0..n {
        h.sender.send(testdata::mixed(&tags, i)).await.unwrap();
    }
    let stats = h.stats.clone();
    h.shutdown().await.unwrap();
    let c = db.client().await;
    let tel = (0..n).filter(|i| matches!(testdata::mixed(&tags, *i), Record::Telemetry(_)));
    let tel: Vec<u64> = tel.collect();
    assert_eq!(
        count(&c, "SELECT count(*) FROM telemetry").await,
        tel.len() as i64
    );
    assert_eq!(
        count(&c, "SELECT count(DISTINCT time) FROM telemetry").await,
        tel.len() as i64
    );
    let nan = tel.iter().filter(|i| *i % 97 == 13).count() as i64;
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM telemetry WHERE value = 'NaN'::float8"
        )
        .await,
        nan
    );
    assert!(
        count(
            &c,
            "SELECT count(*) FROM telemetry WHERE value = 'Infinity'::float8"
        )
        .await
            > 0
    );
    assert!(
        count(
            &c,
            "SELECT count(*) FROM telemetry WHERE value = '-Infinity'::float8"
        )
        .await
            > 0
    );
    assert!(
        count(
            &c,
            "SELECT count(*) FROM telemetry WHERE value_text IS NOT NULL"
        )
        .await
            > 0
    );
    // One full row, checked column by column.
    let r = c
        .query_one(
            "SELECT site_id, line_id, machine_id, signal_type, value, unit, quality, sp_group, \
             sp_edge_node, sp_device, sp_metric, is_historical, \
             (extract(epoch FROM time) * 1000)::bigint, \
             (extract(epoch FROM received_at) * 1000)::bigint \
             FROM telemetry WHERE time = to_timestamp(1700000000.001)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, &str>(0), "site-a");
    assert_eq!(r.get::<_, &str>(1), "line-1");
    assert_eq!(r.get::<_, &str>(2), "m01");
    assert_eq!(r.get::<_, &str>(3), "temperature");
    assert_eq!(r.get::<_, f64>(4), 0.5);
    assert_eq!(r.get::<_, Option<&str>>(5), Some("celsius"));
    assert_eq!(r.get::<_, i32>(6), 192);
    assert_eq!(r.get::<_, &str>(7), "plant");
    assert_eq!(r.get::<_, &str>(8), "node-1");
    assert_eq!(r.get::<_, Option<&str>>(9), Some("m01"));
    assert_eq!(r.get::<_, &str>(10), "metric/1");
    assert!(!r.get::<_, bool>(11));
    assert_eq!(r.get::<_, i64>(12), 1_700_000_000_001);
    assert_eq!(r.get::<_, i64>(13), 1_700_000_000_501);
    // Events: one row per id; windows: one row per key at the highest revision; faults: one
    // row per instance at its latest change.
    let events = (0..n)
        .filter(|i| i % 10 == 9 && i % 25 != 24 && i % 40 != 39)
        .count() as i64;
    assert_eq!(count(&c, "SELECT count(*) FROM events").await, events);
    assert_eq!(
        count(&c, "SELECT count(*) FROM events WHERE payload ? 'to'").await,
        events
    );
    assert_eq!(count(&c, "SELECT count(*) FROM oee_windows").await, 5);
    let max_rev = (0..n)
        .filter(|i| i % 25 == 24 && i % 40 != 39)
        .max()
        .unwrap() as i32;
    assert_eq!(
        c.query_one("SELECT max(revision) FROM oee_windows", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        max_rev
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM oee_windows WHERE flags = ARRAY['partial']"
        )
        .await,
        5
    );
    assert_eq!(count(&c, "SELECT count(*) FROM faults").await, 7);
    let s = stats.snapshot();
    assert_eq!(s.rows_telemetry, tel.len() as u64);
    assert_eq!(s.database_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_four_tables_round_trip_with_binary_copy() {
    round_trip("copy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_four_tables_round_trip_with_unnest() {
    round_trip("unnest").await;
}

#[tokio::test]
async fn a_batch_written_again_after_its_commit_is_recognised_and_not_doubled() {
    let db = TestDb::create("retry").await;
    for method in [WriteMethod::Copy, WriteMethod::Unnest] {
        let cfg = DatabaseConfig {
            write_method: method,
            ..DatabaseConfig::default()
        };
        let mut w = PgWriter::start(&db.url, cfg).await.unwrap();
        let tags = testdata::tags(4);
        let seq = if method == WriteMethod::Copy { 1 } else { 2 };
        let batch = Batch {
            id: BatchId { writer: 99, seq },
            records: (0..200)
                .map(|i| testdata::mixed(&tags, i + 1000 * seq as u64))
                .collect(),
        };
        // The first attempt commits; its acknowledgement is "lost", so the batch is written
        // again with the same id.
        assert!(matches!(
            w.write(&batch).await.unwrap(),
            oee_stream::sink::WriteOutcome::Written(_)
        ));
        assert!(matches!(
            w.write(&batch).await.unwrap(),
            oee_stream::sink::WriteOutcome::Duplicate
        ));
    }
    let c = db.client().await;
    let tel_per_batch = (0..200u64)
        .filter(|i| {
            matches!(
                testdata::mixed(&testdata::tags(1), *i + 1000),
                Record::Telemetry(_)
            )
        })
        .count() as i64;
    assert_eq!(
        count(&c, "SELECT count(*) FROM telemetry").await,
        2 * tel_per_batch
    );
    assert_eq!(count(&c, "SELECT count(*) FROM sink_batches").await, 2);
}

/// PostgreSQL stopped in the middle of a stream and started again: every row arrives exactly
/// once, and the stream never stopped (records went to the spool meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_in_the_middle_of_a_stream_loses_and_doubles_nothing() {
    let cluster = Cluster::start();
    let spool = tempfile::tempdir().unwrap();
    let h = start(&settings(&cluster.url(), spool.path(), "copy"))
        .await
        .unwrap();
    let total = 30_000u64;
    let sent = Arc::new(AtomicU64::new(0));
    let producer = {
        let sender = h.sender.clone();
        let sent = sent.clone();
        tokio::spawn(async move {
            let tags = testdata::tags(50);
            for i in 0..total {
                sender
                    .send(Record::Telemetry(testdata::telemetry(&tags, i)))
                    .await
                    .unwrap();
                sent.store(i + 1, SeqCst);
                if i % 100 == 99 {
                    // About 50,000 records/s: the stream spans the outage.
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            }
        })
    };
    wait_until("first rows committed", || {
        h.stats.snapshot().rows_telemetry > 2000
    })
    .await;
    cluster.pg_ctl_stop();
    let at_stop = sent.load(SeqCst);
    // Down until the stream has moved on by 5,000 records and some of them are spooled.
    wait_until("records spooled while the database is down", || {
        let s = h.stats.snapshot();
        s.database_errors > 0
            && s.spool_appended_batches >= 3
            && sent.load(SeqCst) >= at_stop + 5000
    })
    .await;
    cluster.pg_ctl_start();
    producer.await.unwrap();
    wait_until("all rows committed after the outage", || {
        h.stats.snapshot().rows_telemetry == total
    })
    .await;
    let s = h.stats.snapshot();
    assert!(s.spool_replayed_batches >= 3, "{s:?}");
    h.shutdown().await.unwrap();
    let c = common::pg_connect(&cluster.url()).await;
    let r = c
        .query_one(
            "SELECT count(*), count(DISTINCT time), \
             sum((extract(epoch FROM time) * 1000)::bigint - 1700000000000)::bigint \
             FROM telemetry",
            &[],
        )
        .await
        .unwrap();
    let (n, distinct, sum): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
    assert_eq!(n, total as i64, "row count");
    assert_eq!(distinct, total as i64, "no row twice");
    assert_eq!(
        sum,
        (total * (total - 1) / 2) as i64,
        "checksum of the times"
    );
}

/// The two roles of docs/operations.md on a private cluster (roles are cluster-wide): the
/// migration role creates the schema, then the runtime role — granted exactly
/// `deploy/postgres/grants.sql` — starts the sink (no DDL once the schema is current), writes
/// every table twice over (upserts and ledger included), and cannot change the schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_role_writes_every_table_but_cannot_change_the_schema() {
    let cluster = Cluster::start();
    let admin = common::pg_connect(&cluster.url()).await;
    admin
        .batch_execute(include_str!("../../../deploy/postgres/roles.sql"))
        .await
        .unwrap();
    let as_role = |role: &str| cluster.url().replace("postgres@", &format!("{role}@"));
    let tags = testdata::tags(10);
    let write_all = |url: String, from: u64| {
        let tags = tags.clone();
        async move {
            let spool = tempfile::tempdir().unwrap();
            let h = start(&settings(&url, spool.path(), "copy")).await.unwrap();
            for i in from..from + 400 {
                h.sender.send(testdata::mixed(&tags, i)).await.unwrap();
            }
            // Revisions of windows written before: the runtime role must be able to upsert.
            for i in 0..50 {
                h.sender
                    .send(Record::OeeWindow(testdata::window(i, 1 + from as i32)))
                    .await
                    .unwrap();
            }
            let stats = h.stats.clone();
            h.shutdown().await.unwrap();
            let s = stats.snapshot();
            assert_eq!(
                s.spool_batches, 0,
                "{url}: every batch reached the database: {s:?}"
            );
            assert_eq!(s.database_errors, 0, "{url}: {s:?}");
        }
    };
    write_all(as_role("oee_migrate"), 0).await;
    let owner = common::pg_connect(&as_role("oee_migrate")).await;
    owner
        .batch_execute(include_str!("../../../deploy/postgres/grants.sql"))
        .await
        .unwrap();
    write_all(as_role("oee_runtime"), 400).await;
    let tel_before = count(&admin, "SELECT count(*) FROM telemetry").await;
    assert!(tel_before > 0);
    let runtime = common::pg_connect(&as_role("oee_runtime")).await;
    for ddl in [
        "CREATE TABLE intruder (x int)",
        "DROP TABLE telemetry",
        "TRUNCATE telemetry",
        "ALTER TABLE events ADD COLUMN x int",
        "DELETE FROM telemetry",
        "UPDATE telemetry SET quality = 0",
    ] {
        let e = runtime.batch_execute(ddl).await.unwrap_err();
        assert!(
            e.as_db_error().is_some_and(|d| d.code().code() == "42501"),
            "{ddl}: {e:?} (expected insufficient_privilege)"
        );
    }
    assert_eq!(
        count(&admin, "SELECT count(*) FROM telemetry").await,
        tel_before
    );
}

/// A database still at schema version 1 (no `order_key`/`int_bits`; the start-up rebuild runs
/// before the sink migrates) is read back all the same: its OEE rows rebuild the engine,
/// ordered by time, counters with 64-bit rollover; other signals are not read.
#[tokio::test]
async fn the_rebuild_reads_a_database_still_at_schema_version_1() {
    let db = TestDb::create("rebuildv1").await;
    let c = db.client().await;
    c.batch_execute(oee_stream::sink::postgres::schema::MIGRATIONS[0].2)
        .await
        .unwrap();
    c.batch_execute(
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, \
         applied_at timestamptz NOT NULL DEFAULT now()); \
         INSERT INTO schema_migrations (version, name) VALUES (1, 'tables'); \
         INSERT INTO telemetry (time, site_id, line_id, machine_id, signal_type, value, quality, \
           sp_group, sp_edge_node, sp_device, sp_metric, received_at) VALUES \
         ('2026-11-28 08:00:00+00', 'S', 'L', 'M', 'counter.total', 10, 192, 'G', 'E', 'D', 'Total', '2026-11-28 08:00:00.05+00'), \
         ('2026-11-28 08:00:01+00', 'S', 'L', 'M', 'state.running', 1, 192, 'G', 'E', 'D', 'Running', '2026-11-28 08:00:01.05+00'), \
         ('2026-11-28 08:00:02+00', 'S', 'L', 'M', 'temperature', 70, 192, 'G', 'E', 'D', 'Temp', '2026-11-28 08:00:02.05+00'), \
         ('2026-11-28 08:00:03+00', 'S', 'L', 'M', 'counter.total', 12, 192, 'G', 'E', 'D', 'Total', '2026-11-28 08:00:03.05+00')",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = settings(&db.url, &dir.path().join("spool"), "copy");
    let r = oee_stream::rebuild::load(&s)
        .await
        .unwrap()
        .expect("rows to rebuild from");
    assert_eq!((r.read, r.rows()), (3, 3));
    assert_eq!(r.last_event_ms, 1_795_852_803_000);
    assert_eq!(r.last_received_ms, 1_795_852_803_050);
    let inputs: Vec<_> = r.inputs().collect();
    use oee_core::windows::OeeInput;
    assert!(
        matches!(
            inputs.as_slice(),
            [
                OeeInput::Counter {
                    value: 10,
                    bits: 64,
                    seq: 0,
                    ..
                },
                OeeInput::State { .. },
                OeeInput::Counter { value: 12, .. },
            ]
        ),
        "{inputs:?}"
    );
    // The sink's start then brings the schema to version 2.
    let sink = start(&s).await.unwrap();
    sink.shutdown().await.unwrap();
    let v: i64 = c
        .query_one("SELECT max(version)::bigint FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 2);
}
