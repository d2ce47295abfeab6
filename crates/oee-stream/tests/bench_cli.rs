//! `oee-stream bench` as a process, tiny and short: it starts its own Mosquitto, runs both
//! phases and reports no loss. Figures are not checked (no timings in tests).
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn bench_runs_both_phases_and_reports_no_loss() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_oee-stream"))
        .args([
            "bench",
            "--nodes",
            "1",
            "--devices-per-node",
            "2",
            "--rate",
            "20",
            "--for",
            "1s",
            "--warmup",
            "1s",
            "--service-env",
            "OEE_DATABASE__BATCH_MAX_LATENCY_MS=50",
            "--dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let row = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` row in\n{stdout}"))
            .to_string()
    };
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
