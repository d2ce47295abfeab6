//! The shared sink machinery (queue → batches → writer or spool) against the in-memory backend:
//! outages, replay order, lost acknowledgements, spool full, shutdown with the database down.

#![allow(clippy::unwrap_used)]
use std::path::Path;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use oee_stream::settings::{DatabaseConfig, SpoolConfig};
use oee_stream::sink::memory::MemoryWriter;
use oee_stream::sink::{Backend, Record, start_with_backend, testdata};

mod common;
use common::wait_until;

fn config(dir: &Path, max_bytes: u64) -> DatabaseConfig {
    DatabaseConfig {
        batch_size: 10,
        batch_max_latency_ms: 5,
        queue_capacity: 50,
        retry_initial_ms: 5,
        retry_max_ms: 20,
        shutdown_timeout_ms: 300,
        spool: SpoolConfig {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: 4096,
        },
        ..DatabaseConfig::default()
    }
}

/// Telemetry times of every committed record, in commit order.
fn committed_times(w: &MemoryWriter) -> Vec<i64> {
    w.committed
        .lock()
        .unwrap()
        .iter()
        .flat_map(|b| b.records.iter())
        .map(|r| match r {
            Record::Telemetry(t) => t.time_ms,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn expected_times(n: u64) -> Vec<i64> {
    (0..n).map(|i| 1_700_000_000_000 + i as i64).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_spools_and_the_spool_replays_in_order_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let w = MemoryWriter::default();
    w.fail.store(true, SeqCst);
    let h = start_with_backend(Backend::Memory(w.clone()), &config(dir.path(), 1 << 30)).unwrap();
    let tags = testdata::tags(7);
    for i in 0..1000 {
        h.sender
            .send(Record::Telemetry(testdata::telemetry(&tags, i)))
            .await
            .unwrap();
    }
    wait_until(
        "batches spooled and writes failing during the outage",
        || {
            let s = h.stats.snapshot();
            s.spool_appended_batches >= 10 && s.database_errors > 0
        },
    )
    .await;
    w.fail.store(false, SeqCst);
    wait_until("all rows committed", || committed_times(&w).len() == 1000).await;
    assert_eq!(committed_times(&w), expected_times(1000));
    let s = h.stats.snapshot();
    assert_eq!(s.rows_telemetry, 1000);
    assert!(s.spool_replayed_batches >= 10, "{s:?}");
    wait_until("spool gauge back to zero", || {
        h.stats.snapshot().spool_batches == 0
    })
    .await;
    // While the spool held batches they grew past batch_size (10) to catch up, never past the
    // queue's capacity (50); once it is empty, batch_size again.
    let sizes = |w: &MemoryWriter| -> Vec<usize> {
        w.committed
            .lock()
            .unwrap()
            .iter()
            .map(|b| b.records.len())
            .collect()
    };
    let during = sizes(&w);
    assert!(during.iter().any(|n| *n > 10), "{during:?}");
    assert!(during.iter().all(|n| *n <= 50), "{during:?}");
    for i in 1000..1030 {
        h.sender
            .send(Record::Telemetry(testdata::telemetry(&tags, i)))
            .await
            .unwrap();
    }
    wait_until("the rows after the outage committed", || {
        committed_times(&w).len() == 1030
    })
    .await;
    let after = sizes(&w).split_off(during.len());
    assert!(after.iter().all(|n| *n <= 10), "{after:?}");
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_batch_retried_after_a_lost_acknowledgement_is_not_written_twice() {
    let dir = tempfile::tempdir().unwrap();
    let w = MemoryWriter::default();
    w.lose_acks.store(3, SeqCst);
    let h = start_with_backend(Backend::Memory(w.clone()), &config(dir.path(), 1 << 30)).unwrap();
    let tags = testdata::tags(3);
    for i in 0..100 {
        h.sender
            .send(Record::Telemetry(testdata::telemetry(&tags, i)))
            .await
            .unwrap();
    }
    wait_until("all rows committed", || {
        let s = h.stats.snapshot();
        s.batches_duplicate == 3 && s.rows_telemetry + 30 >= 100
    })
    .await;
    h.shutdown().await.unwrap();
    assert_eq!(committed_times(&w), expected_times(100));
    assert_eq!(h_stats_dup(&w), 0);
}

/// No batch id committed twice.
fn h_stats_dup(w: &MemoryWriter) -> usize {
    let ids: Vec<_> = w.committed.lock().unwrap().iter().map(|b| b.id).collect();
    let mut d = ids.clone();
    d.sort();
    d.dedup();
    ids.len() - d.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_stops_the_queue_and_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let w = MemoryWriter::default();
    w.fail.store(true, SeqCst);
    let h = start_with_backend(Backend::Memory(w.clone()), &config(dir.path(), 4096)).unwrap();
    let tags = testdata::tags(5);
    let sender = h.sender.clone();
    let producer = tokio::spawn(async move {
        for i in 0..2000 {
            sender
                .send(Record::Telemetry(testdata::telemetry(&tags, i)))
                .await
                .unwrap();
        }
    });
    wait_until("spool full and queue full", || {
        let s = h.stats.snapshot();
        s.spool_full >= 1 && s.spool_full_now == 1 && h.sender.capacity() == 0
    })
    .await;
    assert!(!producer.is_finished(), "the producer must be held back");
    let s = h.stats.snapshot();
    assert!(s.spool_bytes >= 4096, "{s:?}");
    w.fail.store(false, SeqCst);
    producer.await.unwrap();
    wait_until("all rows committed", || committed_times(&w).len() == 2000).await;
    assert_eq!(committed_times(&w), expected_times(2000));
    assert_eq!(h.stats.snapshot().spool_full_now, 0);
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_the_database_down_spools_everything_and_the_next_start_replays_it() {
    let dir = tempfile::tempdir().unwrap();
    let down = MemoryWriter::default();
    down.fail.store(true, SeqCst);
    let h =
        start_with_backend(Backend::Memory(down.clone()), &config(dir.path(), 1 << 30)).unwrap();
    let tags = testdata::tags(4);
    for i in 0..500 {
        h.sender
            .send(Record::Telemetry(testdata::telemetry(&tags, i)))
            .await
            .unwrap();
    }
    h.shutdown().await.unwrap();
    assert!(committed_times(&down).is_empty());

    let (spool, _) = oee_stream::sink::spool::Spool::open(dir.path(), 1 << 30, 4096).unwrap();
    // 500 rows in batches of 10, and of up to 50 once the spool held some (catching up).
    assert!(
        (10..=50).contains(&spool.frames()),
        "every batch spooled at shutdown: {} frames",
        spool.frames()
    );
    drop(spool);
    let up = MemoryWriter::default();
    let h = start_with_backend(Backend::Memory(up.clone()), &config(dir.path(), 1 << 30)).unwrap();
    wait_until("replayed after restart", || {
        committed_times(&up).len() == 500
    })
    .await;
    assert_eq!(committed_times(&up), expected_times(500));
    h.shutdown().await.unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg"))
            .count(),
        0,
        "spool segments removed once replayed"
    );
}

#[tokio::test]
async fn shutdown_drains_the_queue_to_a_healthy_database() {
    let dir = tempfile::tempdir().unwrap();
    let w = MemoryWriter::default();
    let mut c = config(dir.path(), 1 << 30);
    c.batch_max_latency_ms = 60_000; // only size or shutdown closes a batch
    let h = start_with_backend(Backend::Memory(w.clone()), &c).unwrap();
    let tags = testdata::tags(4);
    for i in 0..45 {
        h.sender
            .send(Record::Telemetry(testdata::telemetry(&tags, i)))
            .await
            .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(10), h.shutdown())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(committed_times(&w), expected_times(45));
}
