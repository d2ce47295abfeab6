//! COPY vs UNNEST on the telemetry table, through the real writer (ledger row + transaction per
//! batch), against a fresh database; plus `psql \copy` of the same rows as the reference.
//!
//! cargo run --release -p oee-stream --example sink_bench -- [ROWS] [BATCH]
//! (server: OEE_BENCH_PG, default postgres://postgres@127.0.0.1:5432)

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::time::Instant;

use oee_stream::settings::{DatabaseConfig, WriteMethod};
use oee_stream::sink::postgres::PgWriter;
use oee_stream::sink::{Batch, BatchId, Record, testdata};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(500_000);
    let batch: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5_000);
    let base = std::env::var("OEE_BENCH_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let (admin, conn) = tokio_postgres::connect(&format!("{base}/postgres"), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let tags = testdata::tags(1000);
    let batches: Vec<Batch> = (0..rows / batch)
        .map(|b| Batch {
            id: BatchId {
                writer: 1,
                seq: b as i64,
            },
            records: (b * batch..(b + 1) * batch)
                .map(|i| Record::Telemetry(testdata::telemetry(&tags, i)))
                .collect(),
        })
        .collect();
    println!("rows={rows} batch={batch}");
    for method in [
        WriteMethod::Copy,
        WriteMethod::Unnest,
        WriteMethod::Copy,
        WriteMethod::Unnest,
    ] {
        let db = format!("oee_bench_{}", std::process::id());
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
            .await
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        let cfg = DatabaseConfig {
            write_method: method,
            ..DatabaseConfig::default()
        };
        let mut w = PgWriter::start(&format!("{base}/{db}"), cfg).await.unwrap();
        let t = Instant::now();
        for b in &batches {
            w.write(b).await.unwrap();
        }
        let s = t.elapsed().as_secs_f64();
        println!("{method:?}: {:.0} rows/s ({s:.2} s)", rows as f64 / s);
        drop(w);
        admin
            .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
            .await
            .unwrap();
    }
    // Reference: psql \copy of the same rows (CSV) into the same schema.
    let db = format!("oee_bench_ref_{}", std::process::id());
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let w = PgWriter::start(&format!("{base}/{db}"), DatabaseConfig::default())
        .await
        .unwrap();
    drop(w);
    let csv = std::env::temp_dir().join("oee_bench.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
    for b in &batches {
        for r in &b.records {
            let Record::Telemetry(t) = r else { continue };
            let g = &t.tag;
            let v = t.value.map(|v| v.to_string()).unwrap_or_default();
            writeln!(
                f,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                oee_stream::sink::jsonl::rfc3339(t.time_ms),
                g.asset.site_id,
                g.asset.line_id,
                g.asset.machine_id,
                g.signal_type.as_str(),
                v.replace("inf", "Infinity"),
                t.value_text.clone().unwrap_or_default(),
                g.unit.unwrap_or(""),
                t.quality,
                g.source.group,
                g.source.edge_node,
                g.source.device.clone().unwrap_or_default(),
                g.source.metric,
                t.is_historical,
                oee_stream::sink::jsonl::rfc3339(t.received_at_ms),
            )
            .unwrap();
        }
    }
    drop(f);
    let t = Instant::now();
    let out = std::process::Command::new("psql")
        .arg(format!("{base}/{db}"))
        .arg("-c")
        .arg(format!(
            "\\copy telemetry ({}) FROM '{}' (FORMAT csv)",
            oee_stream::sink::postgres::TELEMETRY_COLUMNS,
            csv.display()
        ))
        .output()
        .unwrap();
    let s = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "psql \\copy reference: {:.0} rows/s ({s:.2} s)",
        rows as f64 / s
    );
    admin
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await
        .unwrap();
    let _ = std::fs::remove_file(csv);
}
