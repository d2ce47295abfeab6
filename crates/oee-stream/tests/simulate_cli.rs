//! `oee-stream simulate` as a process against a real Mosquitto: births, then alias-only DDATA;
//! a rebirth NCMD sent by the test is answered with an NBIRTH; SIGTERM sends the NDEATHs; a
//! lost connection brings a new session with the next bdSeq.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sparkplug::{DataType, Payload, Value};

mod support;

use support::{Broker, Observer, Proxy, WAIT, metric, payload};

struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bd_seq(p: &Payload) -> u64 {
    let m = p
        .metrics
        .iter()
        .find(|m| m.name.as_deref() == Some("bdSeq"))
        .expect("bdSeq metric");
    match m.value.as_value() {
        Some(Value::UInt64(b)) => *b,
        other => panic!("bdSeq is {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_births_ddata_rebirth_and_death() {
    let broker = Broker::start().await;
    let mut obs = Observer::connect(broker.port, "sim-observer", &["spBv1.0/DemoPlant/#"]).await;
    let child = Command::new(env!("CARGO_BIN_EXE_oee-stream"))
        .args([
            "simulate",
            "--broker",
            &broker.url(),
            "--speed",
            "60",
            "--for",
            "120s",
        ])
        .args(["--seed", "3", "--no-node-deaths"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut sim = Sim(child);

    // Births first: NBIRTH (seq 0, bdSeq 0), then a DBIRTH with names and aliases per machine.
    let nbirth = obs.next_on("spBv1.0/DemoPlant/NBIRTH/Line1").await;
    let nbirth = Payload::decode(&nbirth.payload).unwrap();
    assert_eq!(nbirth.seq, Some(0));
    assert_eq!(bd_seq(&nbirth), 0);
    let dbirth = obs.next_on("spBv1.0/DemoPlant/DBIRTH/Line1/Filler").await;
    let dbirth = Payload::decode(&dbirth.payload).unwrap();
    assert_eq!(dbirth.seq, Some(1));
    assert!(
        dbirth
            .metrics
            .iter()
            .all(|m| m.name.is_some() && m.alias.is_some() && m.datatype.is_some())
    );
    let temp = dbirth
        .metrics
        .iter()
        .find(|m| m.name.as_deref() == Some("Process/Temperature"))
        .unwrap();
    let unit = temp.properties.as_ref().unwrap().get("engUnit").unwrap();
    assert_eq!(unit.value.as_value(), Some(&Value::String("°F".into())));

    // Then data by alias only.
    let ddata = obs.next_on("spBv1.0/DemoPlant/DDATA/Line1/Filler").await;
    let ddata = Payload::decode(&ddata.payload).unwrap();
    assert!(!ddata.metrics.is_empty());
    assert!(
        ddata
            .metrics
            .iter()
            .all(|m| m.name.is_none() && m.alias.is_some())
    );
    assert!(ddata.seq.unwrap() > 0);

    // A rebirth request is answered with NBIRTH (seq 0, same bdSeq) and the DBIRTHs.
    obs.publish("spBv1.0/DemoPlant/NCMD/Line1", rebirth_request(), false)
        .await;
    let again = obs.next_on("spBv1.0/DemoPlant/NBIRTH/Line1").await;
    let again = Payload::decode(&again.payload).unwrap();
    assert_eq!(again.seq, Some(0));
    assert_eq!(bd_seq(&again), 0);
    obs.next_on("spBv1.0/DemoPlant/DBIRTH/Line1/Filler").await;

    // SIGTERM: every node sends its NDEATH (its bdSeq) and the process exits 0.
    let status = Command::new("kill")
        .args(["-TERM", &sim.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let death = obs.next_on("spBv1.0/DemoPlant/NDEATH/Line1").await;
    assert_eq!(bd_seq(&Payload::decode(&death.payload).unwrap()), 0);
    let start = Instant::now();
    let exit = loop {
        if let Some(s) = sim.0.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < WAIT, "simulate did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit}");
}

fn rebirth_request() -> Vec<u8> {
    payload(
        None,
        vec![metric(
            "Node Control/Rebirth",
            2,
            DataType::Boolean,
            Value::Boolean(true),
        )],
    )
}

/// An edge node whose connection drops (the broker publishes its Will, the NDEATH) must start a
/// new session with the next bdSeq and new births, and answer rebirth requests in it; before,
/// the simulator's MQTT client reconnected silently, without births or its NCMD subscription,
/// so a host saw data of a dead node and its rebirth requests went unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_starts_a_new_session_when_its_connection_is_lost() {
    let broker = Broker::start().await;
    let proxy = Proxy::start(broker.port).await;
    let mut obs = Observer::connect(broker.port, "sim-observer", &["spBv1.0/DemoPlant/#"]).await;
    let child = Command::new(env!("CARGO_BIN_EXE_oee-stream"))
        .args(["simulate", "--broker"])
        .arg(format!("mqtt://127.0.0.1:{}", proxy.port))
        .args(["--speed", "60", "--for", "120s", "--seed", "3"])
        .arg("--no-node-deaths")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let _sim = Sim(child);
    let first = obs.next_on("spBv1.0/DemoPlant/NBIRTH/Line1").await;
    assert_eq!(bd_seq(&Payload::decode(&first.payload).unwrap()), 0);
    obs.next_on("spBv1.0/DemoPlant/DDATA/Line1/Filler").await;

    proxy.cut();
    let will = obs.next_on("spBv1.0/DemoPlant/NDEATH/Line1").await;
    assert_eq!(bd_seq(&Payload::decode(&will.payload).unwrap()), 0);
    let birth = obs.next_on("spBv1.0/DemoPlant/NBIRTH/Line1").await;
    let birth = Payload::decode(&birth.payload).unwrap();
    assert_eq!((birth.seq, bd_seq(&birth)), (Some(0), 1), "a new session");
    obs.next_on("spBv1.0/DemoPlant/DBIRTH/Line1/Filler").await;

    // The new session subscribed to its NCMD topic again.
    obs.publish("spBv1.0/DemoPlant/NCMD/Line1", rebirth_request(), false)
        .await;
    let again = obs.next_on("spBv1.0/DemoPlant/NBIRTH/Line1").await;
    assert_eq!(bd_seq(&Payload::decode(&again.payload).unwrap()), 1);
}

#[test]
fn simulate_stops_after_for() {
    // No broker at all: it keeps retrying the connection and still stops on time.
    let port = support::free_port();
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_oee-stream"))
        .args([
            "simulate",
            "--broker",
            &format!("mqtt://127.0.0.1:{port}"),
            "--for",
            "1s",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(start.elapsed() < Duration::from_secs(20));
}
