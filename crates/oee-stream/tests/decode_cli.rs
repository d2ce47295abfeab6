//! Runs the real `oee-stream decode` binary on Tahu vectors and on malformed input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use prost::Message;
use serde_json::{Value as Json, json};
use sparkplug::Payload;
use sparkplug::proto::payload as pb;

fn vector(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/sparkplug-vectors")
        .join(format!("{name}.bin"))
}

fn vector_bytes(name: &str) -> Vec<u8> {
    std::fs::read(vector(name)).expect("vector exists")
}

/// Runs `oee-stream decode ARGS`, feeding `stdin` (to end of file) when given, an empty
/// standard input otherwise.
fn decode(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oee-stream"))
        .arg("decode")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(bytes).expect("writes stdin");
        // Dropping the pipe closes it: the binary sees end of file.
    }
    child.wait_with_output().expect("binary finishes")
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8 output")
}

/// Exit 0, nothing on stderr, one JSON document on stdout.
fn success(out: &Output) -> Json {
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "stderr: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// Exit 1, empty stdout, exactly one stderr line starting with `error:`; returns that line.
fn failure(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "stdout: {}", text(&out.stdout));
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.ends_with('\n'), "{err:?}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err:?}");
    assert!(lines[0].starts_with("error: "), "{err:?}");
    lines[0].to_string()
}

/// What the library renders for a vector, to compare the binary's output with.
fn library_json(name: &str) -> Json {
    let payload = Payload::decode(&vector_bytes(name)).expect("vector decodes");
    sparkplug::json::payload_to_json(&payload, None)
}

#[test]
fn file_argument_without_topic() {
    let path = vector("dataset_mixed");
    let out = decode(&[path.to_str().expect("UTF-8 path")], None);
    let j = success(&out);
    assert_eq!(j, library_json("dataset_mixed"));
    assert!(j.get("topic").is_none());
    let ds = &j["metrics"][0]["value"];
    assert_eq!(ds["types"][2], "Int64");
    assert_eq!(ds["rows"][2][2], json!(-9_000_000_000_i64));
    assert_eq!(ds["rows"][3][5], "NaN");
    // Pretty by default: indented over several lines.
    assert!(text(&out.stdout).lines().count() > 10);
}

#[test]
fn file_argument_with_topic() {
    let path = vector("nbirth_basic");
    let out = decode(
        &[
            "--topic",
            "spBv1.0/Plant7/NBIRTH/Gateway-A",
            path.to_str().expect("UTF-8 path"),
        ],
        None,
    );
    let mut j = success(&out);
    assert_eq!(
        j["topic"],
        json!({"namespace": "spBv1.0", "group_id": "Plant7", "message_type": "NBIRTH",
               "edge_node_id": "Gateway-A", "device_id": null})
    );
    j.as_object_mut().expect("object").remove("topic");
    assert_eq!(j, library_json("nbirth_basic"));
}

#[test]
fn stdin_without_file_and_with_dash() {
    let bytes = vector_bytes("uint64_edges");
    for args in [&["--compact"][..], &["--compact", "-"][..]] {
        let out = decode(args, Some(&bytes));
        let j = success(&out);
        assert_eq!(j, library_json("uint64_edges"), "{args:?}");
        let stdout = text(&out.stdout);
        assert_eq!(stdout.lines().count(), 1, "compact is one line");
        // u64::MAX is printed exactly, not as a float.
        assert!(
            stdout.contains(r#""value":18446744073709551615"#),
            "{stdout}"
        );
    }
}

#[test]
fn stdin_with_topic() {
    let bytes = vector_bytes("ddata_alias_only_no_datatype");
    let out = decode(
        &["--topic", "spBv1.0/Plant7/DDATA/Gateway-A/Filler"],
        Some(&bytes),
    );
    let j = success(&out);
    assert_eq!(j["topic"]["device_id"], "Filler");
    assert_eq!(j["topic"]["message_type"], "DDATA");
    // No datatype on the wire: the raw fields (Int16 -2 is sign-extended in int_value).
    let m = &j["metrics"][4];
    assert_eq!(m["alias"], 48);
    assert_eq!(m["datatype"], Json::Null);
    assert_eq!(m["value"], json!(4_294_967_294_u32));
}

#[test]
fn state_topic_reads_a_state_payload() {
    let out = decode(
        &["--topic", "spBv1.0/STATE/scada-1"],
        Some(br#"{"online":false,"timestamp":1718900000000}"#),
    );
    assert_eq!(
        success(&out),
        json!({"topic": {"host_id": "scada-1", "version": "3.0"},
               "online": false, "timestamp": 1_718_900_000_000_u64})
    );
}

#[test]
fn empty_stdin_is_an_empty_payload() {
    let j = success(&decode(&[], None));
    assert_eq!(
        j,
        json!({"timestamp": null, "seq": null, "uuid": null, "body": null, "metrics": []})
    );
}

#[test]
fn truncated_payload_is_an_error() {
    let bytes = vector_bytes("dbirth_filler");
    let line = failure(&decode(&[], Some(&bytes[..bytes.len() / 3])));
    assert!(
        line.starts_with("error: not a Sparkplug B protobuf payload"),
        "{line}"
    );
}

#[test]
fn garbage_is_an_error() {
    let line = failure(&decode(&["-"], Some(&[0xff; 64])));
    assert!(
        line.starts_with("error: not a Sparkplug B protobuf payload"),
        "{line}"
    );
    // A text file is not a payload either.
    let line = failure(&decode(&[], Some(b"hello, world\n")));
    assert!(line.starts_with("error: "), "{line}");
}

#[test]
fn value_that_does_not_fit_its_datatype_names_the_metric() {
    let metric = |name: &str, value| pb::Metric {
        name: Some(name.into()),
        datatype: Some(3),
        value: Some(value),
        ..Default::default()
    };
    let bytes = sparkplug::proto::Payload {
        seq: Some(1),
        metrics: vec![
            metric("Line/Count", pb::metric::Value::IntValue(1)),
            metric("Line/Good", pb::metric::Value::IntValue(2)),
            metric("Line/Speed", pb::metric::Value::StringValue("fast".into())),
        ],
        ..Default::default()
    }
    .encode_to_vec();
    let line = failure(&decode(&[], Some(&bytes)));
    assert_eq!(
        line,
        r#"error: metrics[2] "Line/Speed": datatype Int32 cannot be carried in string_value"#
    );
}

#[test]
fn unknown_datatype_is_an_error() {
    let bytes = sparkplug::proto::Payload {
        metrics: vec![pb::Metric {
            alias: Some(9),
            datatype: Some(77),
            value: Some(pb::metric::Value::IntValue(1)),
            ..Default::default()
        }],
        ..Default::default()
    }
    .encode_to_vec();
    let line = failure(&decode(&[], Some(&bytes)));
    assert_eq!(
        line,
        "error: metrics[0] (alias 9): unknown datatype code 77"
    );
}

#[test]
fn bad_topic_is_an_error() {
    let bytes = vector_bytes("ddeath");
    let line = failure(&decode(
        &["--topic", "spBv1.0/Plant7/DDEATH/Gateway-A"],
        Some(&bytes),
    ));
    assert!(
        line.starts_with(r#"error: invalid topic "spBv1.0/Plant7/DDEATH/Gateway-A": "#),
        "{line}"
    );
    let line = failure(&decode(&["--topic", "not/a/topic"], Some(&bytes)));
    assert!(line.starts_with("error: invalid topic"), "{line}");
}

#[test]
fn bad_topic_with_a_newline_stays_on_one_line() {
    let line = failure(&decode(&["--topic", "spBv1.0/G/\nNDATA/E"], Some(&[])));
    assert!(line.starts_with("error: invalid topic"), "{line}");
}

#[test]
fn missing_file_is_an_error() {
    let line = failure(&decode(&["/nonexistent/dir/payload.bin"], None));
    assert!(
        line.starts_with(r#"error: cannot read "/nonexistent/dir/payload.bin": "#),
        "{line}"
    );
}

#[test]
fn a_directory_is_an_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let line = failure(&decode(&[dir.to_str().expect("UTF-8 path")], None));
    assert!(line.starts_with("error: cannot read"), "{line}");
}

#[test]
fn bad_state_payload_is_an_error() {
    let line = failure(&decode(&["--topic", "STATE/scada-1"], Some(b"MAYBE")));
    assert!(line.starts_with("error: invalid STATE payload"), "{line}");
}

#[test]
fn help_describes_the_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_oee-stream"))
        .args(["decode", "--help"])
        .output()
        .expect("binary runs");
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for needle in ["--topic", "--compact", "[FILE]", "standard input", "error:"] {
        assert!(help.contains(needle), "help lacks {needle:?}:\n{help}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_oee-stream"))
        .arg("--help")
        .output()
        .expect("binary runs");
    assert!(text(&out.stdout).contains("decode"));
}
