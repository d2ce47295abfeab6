//! Secrets never reach the output: the MQTT password, the database password (in the URL or as
//! a `password=` parameter) and the acknowledgement token, whether they come from the file or
//! from the environment, appear neither in `check-config`'s output (valid or not) nor in the log
//! of `oee-stream run` at debug level, from start to shutdown.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
mod support;

use common::TestDb;
use support::{Broker, WAIT, free_port, try_http_get};

const MQTT_SECRET: &str = "mqtt-pw-5ecret-1";
const DB_SECRET: &str = "db-pw-5ecret-2";
const TOKEN_SECRET: &str = "ack-token-5ecret-3-0123456789";
const ENV_SECRET: &str = "env-pw-5ecret-4";

fn assert_no_secret(what: &str, text: &str) {
    for s in [MQTT_SECRET, DB_SECRET, TOKEN_SECRET, ENV_SECRET] {
        assert!(!text.contains(s), "{what} shows the secret {s}:\n{text}");
    }
}

fn config(
    dir: &std::path::Path,
    broker: &str,
    db_url: &str,
    http: SocketAddr,
    extra: &str,
) -> std::path::PathBuf {
    let path = dir.join("oee.yml");
    std::fs::write(
        &path,
        format!(
            "mqtt:\n  url: \"{broker}\"\n  host_id: \"secrets\"\n  username: \"oee\"\n  password: \"{MQTT_SECRET}\"\n\
             database:\n  url: \"{db_url}\"\n  spool:\n    dir: \"{}\"\n\
             http:\n  listen: \"{http}\"\n  acknowledge:\n    enabled: true\n    token: \"{TOKEN_SECRET}\"\n\
             log:\n  level: debug\n{extra}",
            dir.join("spool").display()
        ),
    )
    .expect("writes the config");
    path
}

fn with_password(db_url: &str, password: &str) -> String {
    db_url.replacen("postgres@", &format!("postgres:{password}@"), 1)
}

#[test]
fn check_config_shows_no_secret_valid_or_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let http: SocketAddr = "127.0.0.1:9100".parse().expect("address");
    let db = with_password("postgres://postgres@127.0.0.1:5432/oee", DB_SECRET);
    for (name, extra) in [
        ("valid", ""),
        (
            "invalid",
            "sparkplug:\n  shard_queue: 0\n  max_nodes: nope\n",
        ),
    ] {
        let path = config(dir.path(), "mqtt://127.0.0.1:1883", &db, http, extra);
        let out = Command::new(env!("CARGO_BIN_EXE_oee-stream"))
            .arg("check-config")
            .arg(&path)
            .env("OEE_MQTT__PASSWORD", ENV_SECRET)
            .output()
            .expect("runs check-config");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.success(), name == "valid", "{name}: {text}");
        if name == "invalid" {
            assert!(text.contains("sparkplug.max_nodes"), "{text}");
        }
        assert_no_secret(&format!("check-config ({name})"), &text);
    }
    // Credentials written into the broker URL are refused, and not echoed either.
    let path = config(
        dir.path(),
        &format!("mqtt://oee:{MQTT_SECRET}@127.0.0.1:1883"),
        &db,
        http,
        "",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_oee-stream"))
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("runs check-config");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("mqtt.url: must not contain credentials"),
        "{text}"
    );
    assert_no_secret("check-config (credentials in mqtt.url)", &text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_log_at_debug_level_shows_no_secret() {
    let broker = Broker::start().await;
    let db = TestDb::create("secrets").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let http: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("address");
    // Trust authentication ignores the password, so the service really connects with it.
    let db_url = format!("{}?password={DB_SECRET}", with_password(&db.url, DB_SECRET));
    let path = config(dir.path(), &broker.url(), &db_url, http, "");
    // To a file, not a pipe: a debug log can outgrow a pipe's buffer before anyone reads it.
    let log_path = dir.path().join("run.log");
    let log_file = std::fs::File::create(&log_path).expect("creates the log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_oee-stream"))
        .args(["run", "--config"])
        .arg(&path)
        .env("OEE_MQTT__PASSWORD", ENV_SECRET)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::from(log_file.try_clone().expect("clones the file")))
        .stderr(Stdio::from(log_file))
        .spawn()
        .expect("starts oee-stream run");
    let pid = child.id();
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(Ok((200, _))) =
            tokio::time::timeout(Duration::from_secs(2), try_http_get(http, "/ready")).await
        {
            break;
        }
        assert!(Instant::now() < deadline, "/ready never answered 200");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("runs kill");
    assert!(status.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("joins")
        .expect("waits for oee-stream");
    let log = std::fs::read_to_string(&log_path).expect("reads the log");
    assert!(status.success(), "{log}");
    assert!(log.contains("oee-stream running"), "{log}");
    assert!(
        log.contains("effective configuration") && log.contains("<redacted>"),
        "the debug log shows the configuration, secrets redacted:\n{log}"
    );
    assert!(log.contains("connected to the MQTT broker"), "{log}");
    assert_no_secret("the run log", &log);
}
