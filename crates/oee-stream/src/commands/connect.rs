//! The broker options shared by `record` and `discover`: a URL, or `run`'s configuration file
//! for the whole `mqtt` section (credentials, TLS client certificates, packet size), or both
//! (the URL wins); and the rebirth request both may send on request (`--rebirth`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use oee_stream::settings::{self, Settings};
use oee_stream::source::SourceConfig;
use oee_stream::source::listen::tool_config;
use rumqttc::{AsyncClient, PublishOptions};
use sparkplug::topic::message_topic;
use sparkplug::{DataType, MessageType, Metric, MetricValue, Payload, Value};

use crate::commands::simulate::wall_ms;

use crate::commands::config::{Invalid, print_diagnostics};

#[derive(Debug, clap::Args)]
pub struct BrokerArgs {
    /// The broker: mqtt://HOST:PORT (TCP) or mqtts://HOST:PORT (TLS, the system's CA roots
    /// unless --config gives mqtt.tls).
    #[arg(long, value_name = "URL")]
    pub broker: Option<String>,

    /// Take the connection from this configuration file's `mqtt` section (URL, username,
    /// password, TLS CA and client certificate), as `run` would; --broker replaces its URL.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The MQTT client id (default: oee-stream-<tool>-<process id>, so that it never takes
    /// over the session of a running service).
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
}

impl BrokerArgs {
    /// The session options of the tool `tool` (`record`, `discover`), and the broker URL.
    pub fn source(&self, tool: &str) -> anyhow::Result<(SourceConfig, String)> {
        let mut s = match (&self.config, &self.broker) {
            (Some(file), _) => match settings::check_config(file) {
                Ok(s) => s,
                Err(diags) => {
                    print_diagnostics(&diags);
                    return Err(Invalid::new(file, diags.len()).into());
                }
            },
            (None, Some(url)) => url_only(url)?,
            (None, None) => bail!("give the broker: --broker mqtt://HOST:PORT or --config FILE"),
        };
        if let Some(url) = &self.broker {
            s.broker =
                settings::parse_broker_url(url).map_err(|e| anyhow::anyhow!("--broker: {e}"))?;
            s.file.mqtt.url.clone_from(url);
            if !s.broker.tls {
                s.tls = None;
            }
        }
        let cfg = SourceConfig::from_settings(&s).context("--config: mqtt.tls")?;
        let client_id = self
            .client_id
            .clone()
            .unwrap_or_else(|| format!("oee-stream-{tool}-{}", std::process::id()));
        Ok((tool_config(&cfg, client_id), s.file.mqtt.url.clone()))
    }
}

/// Settings with nothing but the broker URL (every other `mqtt` key at its default).
fn url_only(url: &str) -> anyhow::Result<Settings> {
    settings::parse_broker_url(url).map_err(|e| anyhow::anyhow!("--broker: {e}"))?;
    let text = format!("mqtt:\n  url: {}\n", serde_json::Value::from(url));
    settings::load_settings(&text, "--broker", &BTreeMap::new()).map_err(|diags| {
        let all: Vec<String> = diags.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("--broker: {}", all.join("; "))
    })
}

/// Publishes an NCMD `Node Control/Rebirth` = true to one edge node.
pub fn ask_rebirth(client: &AsyncClient, group: &str, edge_node: &str) {
    let now = wall_ms();
    let payload = Payload {
        timestamp: Some(now),
        metrics: vec![Metric {
            name: Some("Node Control/Rebirth".to_string()),
            timestamp: Some(now),
            datatype: Some(DataType::Boolean),
            value: MetricValue::Value(Value::Boolean(true)),
            ..Metric::default()
        }],
        seq: None,
        uuid: None,
        body: None,
    };
    let topic = message_topic(group, MessageType::NCmd, edge_node, None);
    let sent = payload
        .encode()
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            client
                .try_publish(topic.clone(), bytes, PublishOptions::at_most_once())
                .map_err(|e| e.to_string())
        });
    match sent {
        Ok(()) => eprintln!("asked {group}/{edge_node} for a rebirth ({topic})"),
        Err(e) => eprintln!("warning: cannot ask {group}/{edge_node} for a rebirth: {e}"),
    }
}
