//! `oee-stream decode [--topic TOPIC] [--compact] [FILE]`: one payload in, one JSON object out.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use sparkplug::{HostState, Payload, StateError, Topic, TopicError, json};

#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    /// The topic the payload was published on, e.g. spBv1.0/Plant7/DDATA/Gateway-A/Filler.
    /// It is checked and added to the output as a `topic` object.
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,

    /// Print the JSON on one line instead of indented.
    #[arg(long)]
    pub compact: bool,

    /// The payload file (the raw MQTT message body); standard input when absent or `-`.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// Why `decode` failed. Each renders as one line.
#[derive(Debug)]
pub enum Error {
    Topic { topic: String, source: TopicError },
    Read { what: String, source: io::Error },
    Payload(String),
    State(StateError),
    Write(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Topic { topic, source } => write!(f, "invalid topic {topic:?}: {source}"),
            Error::Read { what, source } => write!(f, "cannot read {what}: {source}"),
            Error::Payload(msg) => f.write_str(msg),
            Error::State(e) => write!(f, "invalid STATE payload: {e}"),
            Error::Write(e) => write!(f, "cannot write the output: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// Runs the command on the real standard input and output.
pub fn run(args: &DecodeArgs) -> Result<(), Error> {
    let bytes = read_input(args.file.as_deref())?;
    let out = render(&bytes, args.topic.as_deref())?;
    let text = if args.compact {
        out.to_string()
    } else {
        // Serializing a `Value` cannot fail; fall back to compact output all the same.
        serde_json::to_string_pretty(&out).unwrap_or_else(|_| out.to_string())
    };
    let mut stdout = io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        // A reader that stopped early (`| head`) is not a failure of ours.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(Error::Write),
    }
}

/// Reads the whole file, or standard input to end of file for `None` and `-`.
fn read_input(file: Option<&Path>) -> Result<Vec<u8>, Error> {
    match file {
        None => read_stdin(),
        Some(p) if p == Path::new("-") => read_stdin(),
        Some(p) => std::fs::read(p).map_err(|source| Error::Read {
            what: format!("{:?}", p.display().to_string()),
            source,
        }),
    }
}

fn read_stdin() -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    io::stdin()
        .lock()
        .read_to_end(&mut buf)
        .map_err(|source| Error::Read {
            what: "standard input".into(),
            source,
        })?;
    Ok(buf)
}

/// Decodes `bytes` (a Sparkplug B protobuf payload, or a STATE payload on a STATE topic) and
/// renders it with [`sparkplug::json`].
pub fn render(bytes: &[u8], topic: Option<&str>) -> Result<Json, Error> {
    let topic = topic
        .map(|t| {
            Topic::parse(t).map_err(|source| Error::Topic {
                topic: t.to_string(),
                source,
            })
        })
        .transpose()?;
    if let Some(t @ Topic::State { version, .. }) = &topic {
        let state = HostState::parse(bytes, *version).map_err(Error::State)?;
        return Ok(json::state_to_json(&state, Some(t)));
    }
    let payload = Payload::decode(bytes).map_err(|e| Error::Payload(e.to_string()))?;
    Ok(json::payload_to_json(&payload, topic.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use sparkplug::proto::payload as pb;

    fn metric(
        name: Option<&str>,
        alias: Option<u64>,
        datatype: u32,
        value: pb::metric::Value,
    ) -> pb::Metric {
        pb::Metric {
            name: name.map(String::from),
            alias,
            datatype: Some(datatype),
            value: Some(value),
            ..Default::default()
        }
    }

    fn encode(metrics: Vec<pb::Metric>) -> Vec<u8> {
        sparkplug::proto::Payload {
            metrics,
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn error(bytes: &[u8], topic: Option<&str>) -> String {
        render(bytes, topic).expect_err("should fail").to_string()
    }

    #[test]
    fn value_errors_name_the_metric() {
        let ok = metric(Some("ok"), None, 3, pb::metric::Value::IntValue(1));
        let bad = metric(
            Some("Line/Speed"),
            Some(7),
            3,
            pb::metric::Value::StringValue("x".into()),
        );
        let bytes = encode(vec![ok.clone(), ok, bad]);
        assert_eq!(
            error(&bytes, None),
            r#"metrics[2] "Line/Speed": datatype Int32 cannot be carried in string_value"#
        );
        let by_alias = metric(None, Some(41), 99, pb::metric::Value::IntValue(1));
        assert_eq!(
            error(&encode(vec![by_alias]), None),
            "metrics[0] (alias 41): unknown datatype code 99"
        );
    }

    #[test]
    fn nested_template_members_are_labelled() {
        let member = metric(
            Some("Flow"),
            None,
            10,
            pb::metric::Value::BooleanValue(true),
        );
        let template = pb::Template {
            metrics: vec![member],
            ..Default::default()
        };
        let m = metric(
            Some("Pump1"),
            None,
            19,
            pb::metric::Value::TemplateValue(template),
        );
        assert_eq!(
            error(&encode(vec![m]), None),
            r#"metrics[0] "Pump1".template.metrics[0] "Flow": datatype Double cannot be carried in boolean_value"#
        );
    }

    #[test]
    fn protobuf_and_topic_errors() {
        assert!(error(&[0xff, 0xff, 0xff], None).starts_with("not a Sparkplug B protobuf payload"));
        assert!(
            error(&[], Some("spBv1.0/G/NOPE/E"))
                .starts_with("invalid topic \"spBv1.0/G/NOPE/E\": ")
        );
    }

    #[test]
    fn state_topics_read_state_payloads() {
        let out = render(
            br#"{"online":true,"timestamp":5}"#,
            Some("spBv1.0/STATE/h1"),
        )
        .expect("state");
        assert_eq!(
            out,
            serde_json::json!({"topic": {"host_id": "h1", "version": "3.0"}, "online": true, "timestamp": 5})
        );
        let out = render(b"OFFLINE", Some("STATE/h1")).expect("state");
        assert_eq!(out["online"], false);
        assert!(error(b"maybe", Some("STATE/h1")).starts_with("invalid STATE payload: "));
    }

    #[test]
    fn empty_input_is_an_empty_payload() {
        let out = render(&[], None).expect("empty payload");
        assert_eq!(out["metrics"], serde_json::json!([]));
        assert_eq!(out["seq"], Json::Null);
    }
}
