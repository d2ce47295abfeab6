//! `oee-stream bench` as a process, tiny and short: it starts its own Mosquitto, runs both
//! phases and reports no loss; into PostgreSQL (the running server, `OEE_TEST_PG`), expected
//! and written counts agree and its databases are dropped. Figures are not checked (no
//! timings in tests).
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

/// Runs `oee-stream bench` on 1 edge node × 2 machines with `args` and `--dir dir`; panics
/// with its output unless it succeeds. Returns its pid and its report (stdout).
fn bench(dir: &tempfile::TempDir, args: &[&str]) -> (u32, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_oee-stream"))
        .args(["bench", "--nodes", "1", "--devices-per-node", "2"])
        .args(args)
        .arg("--dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (pid, stdout)
}

/// The report's row that starts with `prefix`.
fn row(stdout: &str, prefix: &str) -> String {
    stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` row in\n{stdout}"))
        .to_string()
}

#[test]
fn bench_runs_both_phases_and_reports_no_loss() {
    let dir = tempfile::tempdir().unwrap();
    let (_, stdout) = bench(&dir, &["--rate", "20", "--for", "1s", "--warmup", "1s"]);
    let row = |prefix: &str| row(&stdout, prefix);
    // | phase | sent | received | lost | ...
    for prefix in ["| null consumer |", "| oee-stream run |"] {
        let cells: Vec<String> = row(prefix)
            .split('|')
            .map(|c| c.trim().to_string())
            .collect();
        let sent: u64 = cells[2].parse().unwrap();
        assert!(sent > 0, "{prefix}: nothing sent\n{stdout}");
        assert_eq!(cells[2], cells[3], "{prefix}: sent ≠ received\n{stdout}");
        assert_eq!(cells[4], "0", "{prefix}\n{stdout}");
    }
    assert!(
        row("| records out → rows written |").contains("(0 lost)"),
        "{stdout}"
    );
    assert!(row("| peak RSS (VmHWM) |").contains("MB"), "{stdout}");
}

#[test]
fn bench_at_max_rate_without_deadbands_stores_8_rows_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let (_, stdout) = bench(
        &dir,
        &[
            "--rate",
            "max",
            "--no-deadband",
            "--all-metrics",
            "--for",
            "1s",
            "--warmup",
            "1s",
        ],
    );
    let row = |prefix: &str| row(&stdout, prefix);
    for prefix in ["| null consumer |", "| oee-stream run |"] {
        let received: u64 = row(prefix)
            .split('|')
            .nth(3)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(received > 0, "{prefix}: nothing received\n{stdout}");
    }
    // | DDATA / DBIRTH messages received → telemetry rows per message | D / B → r |
    let cell = row("| DDATA / DBIRTH messages received");
    let cell = cell.split('|').nth(2).unwrap().trim();
    let (ddata, rest) = cell.split_once(" / ").unwrap();
    let dbirth = rest.split_whitespace().next().unwrap();
    let (ddata, dbirth): (u64, u64) = (ddata.parse().unwrap(), dbirth.parse().unwrap());
    // The tick-driven simulator sends at most 20 DDATA/s per machine; `max` steps every
    // millisecond it can, so 2 machines over the 2 s of the run send more than that bound.
    assert!(ddata > 20 * 2 * 2, "{stdout}");
    assert_eq!(dbirth, 2, "{stdout}");
    // No deadband and all 8 metrics in every DDATA: every metric of every DDATA and DBIRTH is
    // one telemetry row, plus its STALE marker when the simulator's NDEATH ends the run (one
    // per metric of each machine: as many as the DBIRTHs carried).
    let by_table = row("| rows written by table |");
    let telemetry: u64 = by_table
        .split("telemetry ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(telemetry, 8 * (ddata + 2 * dbirth), "{stdout}");
    assert!(
        row("| records out → rows written |").contains("(0 lost)"),
        "{stdout}"
    );
}

/// The number before and after the `→` of a `| label | A → B (…) |` row.
fn arrow_pair(row: &str) -> (u64, u64) {
    let cell = row.split('|').nth(2).unwrap().trim();
    let (a, rest) = cell.split_once(" → ").unwrap();
    let b = rest.split_whitespace().next().unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

#[test]
fn bench_into_postgres_finds_every_row_in_its_database_and_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{}/postgres", common::pg_base());
    let (pid, stdout) = bench(
        &dir,
        &[
            "--sink",
            "postgres",
            "--database-url",
            &url,
            "--rate",
            "20",
            "--for",
            "2s",
            "--warmup",
            "1s",
            "--skip-null",
        ],
    );
    let row = |prefix: &str| row(&stdout, prefix);

    // Expected (the sink's counters) == written (the database's own counts).
    let (written, telemetry_in_db) = arrow_pair(&row(
        "| telemetry rows: written (sink) → in the database (COUNT) |",
    ));
    assert!(written > 0, "no telemetry rows\n{stdout}");
    assert_eq!(written, telemetry_in_db, "{stdout}");
    let (written, in_db) = arrow_pair(&row(
        "| events rows: written (sink) → in the database (COUNT) |",
    ));
    assert_eq!(written, in_db, "{stdout}");
    let batches = row("| batches: committed (sink) → in the ledger (rows) |");
    let (committed, in_ledger) = arrow_pair(&batches);
    assert!(committed > 0 && committed == in_ledger, "{stdout}");
    assert!(
        row("| records out → rows written |").contains("(0 lost)"),
        "{stdout}"
    );

    // Commit latency from the database: every batch seen by the poll.
    let latency = row("| latency metric timestamp → committed (PostgreSQL");
    assert!(
        latency.contains("p99 ") && latency.contains(" rows)"),
        "{latency}"
    );
    assert!(
        latency.ends_with("; 0 rows in batches the poll did not see |"),
        "{latency}"
    );
    assert!(
        row("| ledger rows the commit poll did not see |").ends_with("| 0 |"),
        "{stdout}"
    );

    // The \copy reference loaded all of the service's telemetry rows.
    let loaded = row("| rows loaded |");
    let cells: Vec<&str> = loaded
        .split('|')
        .nth(2)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(cells[0], cells[4], "{loaded}");
    assert_eq!(
        cells[0].parse::<u64>().unwrap(),
        telemetry_in_db,
        "{loaded}"
    );
    row("| psql \\copy rows/s |");
    row("| service ÷ \\copy |");

    // RSS sampled every second into rss.csv, summarised with a slope.
    assert!(
        row("| RSS at start / after the warm-up / at the end of the simulator |").contains("MB"),
        "{stdout}"
    );
    row("| RSS slope after the warm-up");
    let csv = std::fs::read_to_string(dir.path().join("rss.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("elapsed_s,rss_kb,peak_rss_kb"));
    let samples: Vec<&str> = lines.collect();
    assert!(samples.len() >= 2, "{csv}");
    for s in &samples {
        let kb: u64 = s.split(',').nth(1).unwrap().parse().unwrap();
        assert!(kb > 0, "{csv}");
    }

    // Both databases are gone.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let left: i64 = rt.block_on(async {
        let c = common::pg_connect(&format!("{}/postgres", common::pg_base())).await;
        c.query_one(
            "SELECT count(*) FROM pg_database WHERE datname LIKE $1",
            &[&format!("oee_bench_{pid}%")],
        )
        .await
        .unwrap()
        .get(0)
    });
    assert_eq!(left, 0, "the bench left its databases behind");
}
