//! `check-config` and `print-default-config` through the real binary.

use std::path::PathBuf;
use std::process::{Command, Output};

fn oee_stream(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oee-stream"))
        .args(args)
        .env_remove("OEE_MQTT__URL")
        .output()
        .expect("runs the binary")
}

fn broken(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/config")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn check_config_accepts_the_default_and_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("default.yml");
    let printed = oee_stream(&["print-default-config"]);
    assert!(printed.status.success());
    std::fs::write(&file, &printed.stdout).expect("writes");
    let out = oee_stream(&["check-config", file.to_str().expect("utf-8 path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(": OK ("), "{stdout}");
    assert!(out.stderr.is_empty());
}

#[test]
fn check_config_reports_every_problem_with_its_location_and_exits_1() {
    let file = broken("service.yml");
    let out = oee_stream(&["check-config", &file]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{file}:2:8: mqtt.url: "))),
        "{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{file}:9:11: http.listen: "))),
        "{stderr}"
    );
    let last = lines.last().expect("a summary line");
    assert!(
        last.starts_with("error: ") && last.contains("problems"),
        "{last}"
    );
}

#[test]
fn environment_overrides_are_checked_and_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_oee-stream"))
        .args(["check-config", &broken("../../../../config.example.yml")])
        .env("OEE_MQTT__URL", "ftp://broker")
        .output()
        .expect("runs the binary");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("$OEE_MQTT__URL: mqtt.url: "), "{stderr}");
}

#[test]
fn a_missing_file_is_one_clear_error() {
    let out = oee_stream(&["check-config", "/nonexistent/oee.yml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read the configuration file"),
        "{stderr}"
    );
}
