//! `oee-stream discover` through the real binary against the simulated plant of `oee-stream
//! simulate` on a throwaway Mosquitto: the plant is born before discover listens, so discover
//! asks for rebirths (`--rebirth`), lists every machine metric, and writes a configuration
//! with one pattern rule per repeated metric name that `check-config` accepts as written.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{Broker, Observer, WAIT};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_oee-stream"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_maps_a_plant_with_repeating_device_names_into_pattern_rules() {
    let broker = Broker::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The plant is born (6 DBIRTHs) before discover starts.
    let mut watch = Observer::connect(broker.port, "watch", &["spBv1.0/+/DBIRTH/#"]).await;
    let _sim = Proc(
        bin()
            .args(["simulate", "--broker", &broker.url(), "--no-node-deaths"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..6 {
        tokio::time::timeout(WAIT, watch.rx.recv())
            .await
            .expect("the simulator publishes its births")
            .unwrap();
    }

    let out = dir.path().join("plant.yml");
    let mut child = bin()
        .args([
            "discover",
            "--broker",
            &broker.url(),
            "--for",
            "10m",
            "--rebirth",
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let listing = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    let discover = Proc(child);
    // It asks both edge nodes for a rebirth, and hears the six device births.
    let mut asked = 0;
    let mut dbirths = 0;
    while dbirths < 6 {
        let line = rx.recv_timeout(WAIT).expect("discover reports the births");
        if line.starts_with("asked DemoPlant/Line") {
            asked += 1;
        }
        if line.starts_with("DBIRTH DemoPlant/") {
            dbirths += 1;
        }
    }
    assert_eq!(asked, 2);
    let ok = Command::new("kill")
        .args(["-TERM", &discover.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let mut discover = discover;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = discover.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "discover did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());

    let listing = listing.join().unwrap();
    for needle in [
        "edge node DemoPlant/Line1",
        "device Filler",
        "device Packer",
        "Process/Temperature                  Float      unit °F",
    ] {
        assert!(listing.contains(needle), "{needle:?} not in\n{listing}");
    }
    assert!(listing.contains("2 edge nodes, 6 devices, 52 metrics in births; 8 tag mapping rules"));

    let yaml = std::fs::read_to_string(&out).unwrap();
    // One pattern rule per metric name repeated across the six machines.
    assert!(
        yaml.contains(
            "    - source_tag: \"DemoPlant/{line}/{machine}/Counters/Total\"\n      \
             signal_type: \"counter.total\"\n"
        ),
        "{yaml}"
    );
    assert!(yaml.contains("signal_type: \"state.running\""), "{yaml}");
    assert!(yaml.contains("signal_type: \"fault.code\""), "{yaml}");
    assert_eq!(yaml.matches("- source_tag:").count(), 8, "{yaml}");
    assert!(yaml.matches("# review:").count() >= 8, "{yaml}");

    let check = bin()
        .arg("check-config")
        .arg(&out)
        .env_remove("OEE_MQTT__URL")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains(": OK (8 tag mapping rules"));
}

#[test]
fn discover_refuses_to_overwrite_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("exists.yml");
    std::fs::write(&out, "keep me").unwrap();
    let r = bin()
        .args(["discover", "--broker", "mqtt://127.0.0.1:1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me");
}
