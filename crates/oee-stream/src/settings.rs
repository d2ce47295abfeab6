//! The configuration file: typed service sections (`mqtt`, `sparkplug`, `database`, `http`,
//! `log`), the domain sections from `oee-core` (`processing`, `oee`, `faults`), environment
//! overrides, and diagnostics of the form `FILE:LINE:COLUMN: key.path: message`, all at once.
//!
//! Validate, then build: [`load_settings`] is pure (text and an environment map in, settings or
//! every error out) and is exactly what `run` does before it connects to anything;
//! [`check_config`] adds reading the file and checking that the TLS files exist.
//!
//! Environment overrides: a variable `OEE_<SECTION>__<KEY>[__<KEY>…]` (double underscore between
//! levels, names case-insensitive, lower-cased) sets the scalar at `section.key…` after the file
//! is read, e.g. `OEE_MQTT__URL`, `OEE_DATABASE__URL`, `OEE_MQTT__TLS__KEY`,
//! `OEE_HTTP__LISTEN`. The value is read as a plain YAML scalar (so `OEE_OEE__MICRO_STOP_S=60`
//! is a number). Variables starting with `OEE_` but without `__` (such as `OEE_CONFIG` used by
//! the CLI) are not overrides. Lists cannot be set from the environment.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oee_core::config::yaml::{self, Diagnostic, Location, PathError, join_key};
use oee_core::config::{Domain, FaultsConfig, OeeConfig, ProcessingConfig, build_domain};
use serde::Deserialize;

/// The commented default configuration (`config.example.yml` at the repository root); what
/// `oee-stream print-default-config` prints.
pub fn default_config_text() -> &'static str {
    include_str!("../../../config.example.yml")
}

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "OEE_";

/// One configuration error, ready to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigDiagnostic {
    pub file: String,
    pub location: Location,
    /// Key path such as `processing.tag_mappings[3].target_unit`.
    pub path: String,
    pub message: String,
}

impl ConfigDiagnostic {
    fn from(file: &str, d: Diagnostic) -> Self {
        ConfigDiagnostic {
            file: file.to_string(),
            location: d.location,
            path: d.path,
            message: d.message,
        }
    }

    /// (line, column) when the error is in the file.
    pub fn line_column(&self) -> Option<(u32, u32)> {
        match self.location {
            Location::File { line, column } => Some((line, column)),
            Location::Env(_) => None,
        }
    }
}

impl fmt::Display for ConfigDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = Diagnostic {
            location: self.location.clone(),
            path: self.path.clone(),
            message: self.message.clone(),
        };
        f.write_str(&d.render(&self.file))
    }
}

// ---------------------------------------------------------------------------------------------
// The file model.

/// The whole file as written (after environment overrides).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct FileConfig {
    pub mqtt: MqttConfig,
    pub sparkplug: SparkplugConfig,
    pub database: DatabaseConfig,
    pub http: HttpConfig,
    pub processing: ProcessingConfig,
    pub oee: OeeConfig,
    pub faults: FaultsConfig,
    pub log: LogConfig,
}

/// `mqtt:` (its `Debug` does not show the password).
#[derive(Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct MqttConfig {
    /// `mqtt://host:port` (TCP) or `mqtts://host:port` (TLS).
    pub url: String,
    /// Sparkplug host application id: STATE topic `spBv1.0/STATE/<host_id>`.
    pub host_id: String,
    /// MQTT client id; empty = `oee-stream-<host_id>`.
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive_s: u64,
    /// Largest accepted packet in bytes (births can be large).
    pub max_packet_size: u32,
    pub tls: TlsConfig,
    pub reconnect: ReconnectConfig,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: "mqtt://localhost:1883".into(),
            host_id: "oee-stream".into(),
            client_id: String::new(),
            username: None,
            password: None,
            keep_alive_s: 30,
            max_packet_size: 16 * 1024 * 1024,
            tls: TlsConfig::default(),
            reconnect: ReconnectConfig::default(),
        }
    }
}

impl fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttConfig")
            .field("url", &self.url)
            .field("host_id", &self.host_id)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("keep_alive_s", &self.keep_alive_s)
            .field("max_packet_size", &self.max_packet_size)
            .field("tls", &self.tls)
            .field("reconnect", &self.reconnect)
            .finish()
    }
}

/// What `Debug` shows instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// A database URL fit for logs: the password of `scheme://user:password@host/…` and a
/// `password=` query parameter replaced by `<redacted>`.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let mut out = format!("{scheme}://");
    match before_query.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let hidden = if userinfo.contains(':') {
                format!(":{REDACTED}")
            } else {
                String::new()
            };
            out.push_str(&format!("{user}{hidden}@{host}"));
        }
        None => out.push_str(before_query),
    }
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}={REDACTED}"),
                _ => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// `mqtt.tls:` PEM files; `cert` and `key` together enable client certificates (mTLS).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct TlsConfig {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Name checked against the server certificate; default the host of `mqtt.url`.
    pub server_name: Option<String>,
}

/// `mqtt.reconnect:` exponential backoff with jitter.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct ReconnectConfig {
    pub min_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            min_backoff_ms: 500,
            max_backoff_ms: 30_000,
        }
    }
}

/// `sparkplug:`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct SparkplugConfig {
    /// Sparkplug groups to subscribe to; empty = all (`spBv1.0/#`).
    pub groups: Vec<String>,
    /// What the host publishes: STATE and rebirth requests (`primary`), rebirth requests only
    /// (`active`), or nothing (`passive`).
    pub mode: HostMode,
    /// How long an out-of-order message waits for the missing seq before a rebirth request.
    pub reorder_timeout_ms: u64,
    /// Minimum time between two rebirth requests to the same node.
    pub rebirth_cooldown_s: u64,
    /// Rebirth requests per second for the whole process (divided among the shards); 0 = no
    /// global limit.
    pub global_rebirths_per_second: u32,
    /// Pipeline shards (tasks that each own a share of the edge nodes); 0 = one per CPU core.
    pub shards: u32,
    /// Messages waiting per shard before the MQTT reader waits (back-pressure).
    pub shard_queue: u32,
    /// Edge nodes tracked at once over all shards (online, offline and nodes only known from a
    /// rebirth request); each shard holds its share. Beyond it a node without a session makes
    /// room, else the new node is refused (counted as `limit_nodes`).
    pub max_nodes: u32,
    /// Devices per edge node (`limit_devices` beyond).
    pub max_devices_per_node: u32,
    /// Metrics per edge node, its devices and template definitions included: a birth with
    /// more is refused (`limit_metrics`).
    pub max_metrics_per_node: u32,
    /// Messages held in one node's reorder buffer while a seq gap is open.
    pub max_buffered_per_node: u32,
}

impl Default for SparkplugConfig {
    fn default() -> Self {
        SparkplugConfig {
            groups: Vec::new(),
            mode: HostMode::Primary,
            reorder_timeout_ms: 2000,
            rebirth_cooldown_s: 5,
            global_rebirths_per_second: 20,
            shards: 0,
            shard_queue: 4096,
            max_nodes: 10_000,
            max_devices_per_node: 1000,
            max_metrics_per_node: 100_000,
            max_buffered_per_node: 256,
        }
    }
}

/// `sparkplug.mode`: the role of this host application.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HostMode {
    /// The primary host application: STATE birth/death on `spBv1.0/STATE/<host_id>` and rebirth
    /// requests.
    #[default]
    Primary,
    /// Sends rebirth requests but publishes no STATE (a secondary host next to a primary one;
    /// not conformant on its own, see docs/operations.md).
    Active,
    /// Listens only: no STATE, no rebirth requests (next to an existing primary host).
    Passive,
}

impl SparkplugConfig {
    /// The host session configuration of one of `shards` shards: the global limits (rebirth
    /// rate, `max_nodes`) divided among them, the per-node limits as they are.
    pub fn host_config(&self, shards: usize) -> sparkplug::HostConfig {
        let n = u32::try_from(shards.max(1)).unwrap_or(u32::MAX);
        sparkplug::HostConfig {
            reorder_timeout_ms: self.reorder_timeout_ms,
            rebirth_mode: self.mode.rebirth_mode(),
            rebirth_throttle_ms: self.rebirth_cooldown_s.saturating_mul(1000),
            global_rebirths_per_second: match self.global_rebirths_per_second {
                0 => 0,
                total => total.div_ceil(n).max(1),
            },
            max_nodes: self.max_nodes.div_ceil(n).max(1) as usize,
            max_devices_per_node: self.max_devices_per_node as usize,
            max_metrics_per_node: self.max_metrics_per_node as usize,
            max_buffered_per_node: self.max_buffered_per_node as usize,
            ..sparkplug::HostConfig::default()
        }
    }
}

impl HostMode {
    /// The rebirth mode of the host session state machine.
    pub fn rebirth_mode(self) -> sparkplug::RebirthMode {
        match self {
            HostMode::Primary => sparkplug::RebirthMode::Primary,
            HostMode::Active => sparkplug::RebirthMode::Active,
            HostMode::Passive => sparkplug::RebirthMode::Off,
        }
    }

    /// Whether STATE birth/death are published.
    pub fn publishes_state(self) -> bool {
        self == HostMode::Primary
    }
}

/// `database:` (its `Debug` shows the URL without its password).
#[derive(Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct DatabaseConfig {
    /// `postgres://…` / `postgresql://…`, `sqlite://PATH` or `jsonl://PATH` (`jsonl://-` = stdout).
    pub url: String,
    pub batch_size: u32,
    pub batch_max_latency_ms: u64,
    /// Rows held in memory before the spool takes over.
    pub queue_capacity: u32,
    /// PostgreSQL telemetry write path: `copy` (binary COPY, the default) or `unnest`.
    pub write_method: WriteMethod,
    /// First retry delay after a failed write; doubles up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// How long shutdown keeps retrying the database before it spools what is left.
    pub shutdown_timeout_ms: u64,
    /// TimescaleDB only: compress telemetry/events chunks older than this (0 = never).
    pub compress_after_days: u32,
    /// TimescaleDB only: drop telemetry/events chunks older than this (0 = keep for ever).
    pub retention_days: u32,
    pub spool: SpoolConfig,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redacted_url(&self.url))
            .field("batch_size", &self.batch_size)
            .field("batch_max_latency_ms", &self.batch_max_latency_ms)
            .field("queue_capacity", &self.queue_capacity)
            .field("write_method", &self.write_method)
            .field("retry_initial_ms", &self.retry_initial_ms)
            .field("retry_max_ms", &self.retry_max_ms)
            .field("shutdown_timeout_ms", &self.shutdown_timeout_ms)
            .field("compress_after_days", &self.compress_after_days)
            .field("retention_days", &self.retention_days)
            .field("spool", &self.spool)
            .finish()
    }
}

/// `database.write_method`
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WriteMethod {
    #[default]
    Copy,
    Unnest,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://oee-stream.db".into(),
            batch_size: 1000,
            batch_max_latency_ms: 50,
            queue_capacity: 100_000,
            write_method: WriteMethod::Copy,
            retry_initial_ms: 200,
            retry_max_ms: 10_000,
            shutdown_timeout_ms: 10_000,
            compress_after_days: 7,
            retention_days: 0,
            spool: SpoolConfig::default(),
        }
    }
}

/// `database.spool:` durable on-disk queue while the database is unavailable.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    pub max_bytes: u64,
    /// Size at which the spool starts a new segment file.
    pub segment_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: PathBuf::from("spool"),
            max_bytes: 1024 * 1024 * 1024,
            segment_bytes: 16 * 1024 * 1024,
        }
    }
}

/// `http:`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct HttpConfig {
    pub listen: String,
    pub acknowledge: AcknowledgeConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "0.0.0.0:9100".into(),
            acknowledge: AcknowledgeConfig::default(),
        }
    }
}

/// `http.acknowledge:` the one write the API allows. Off by default (the API is read-only);
/// with a `token`, `POST /api/faults/{id}/acknowledge` needs `Authorization: Bearer <token>`.
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct AcknowledgeConfig {
    pub enabled: bool,
    /// Never logged nor printed (its `Debug` shows `<redacted>`).
    pub token: Option<String>,
}

impl fmt::Debug for AcknowledgeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcknowledgeConfig")
            .field("enabled", &self.enabled)
            .field("token", &self.token.as_ref().map(|_| REDACTED))
            .finish()
    }
}

/// `log:`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct LogConfig {
    pub level: LogLevel,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: LogLevel::Info,
            format: LogFormat::Text,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

// ---------------------------------------------------------------------------------------------
// Validated settings.

/// Where the MQTT broker is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerAddress {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

/// Which sink `database.url` selects (its `Debug` hides a PostgreSQL password).
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    Postgres(String),
    Sqlite(PathBuf),
    /// `None` = stdout.
    JsonLines(Option<PathBuf>),
}

impl fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseTarget::Postgres(url) => {
                f.debug_tuple("Postgres").field(&redacted_url(url)).finish()
            }
            DatabaseTarget::Sqlite(p) => f.debug_tuple("Sqlite").field(p).finish(),
            DatabaseTarget::JsonLines(p) => f.debug_tuple("JsonLines").field(p).finish(),
        }
    }
}

/// A loaded and validated configuration: what `run` is built from.
#[derive(Clone, Debug)]
pub struct Settings {
    pub file: FileConfig,
    pub broker: BrokerAddress,
    /// `mqtt.client_id`, defaulted.
    pub client_id: String,
    pub database: DatabaseTarget,
    pub http_listen: SocketAddr,
    /// The processing rules, ready for the normalizer, and the validated oee/faults sections.
    pub domain: Arc<Domain>,
    /// Findings that do not stop the service (printed by `check-config`).
    pub warnings: Vec<ConfigDiagnostic>,
    /// The TLS client configuration built from `mqtt.tls` by [`check_config`] (CA, client
    /// certificate and key parsed once); `None` from [`load_settings`], which reads no files,
    /// and for plain TCP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Whether the OEE watermark also follows the wall clock, so windows close while data is
    /// silent. True for `run`; the demo's simulated plant keeps its own time (sped up, or
    /// started in the past with `--start`), so there only its data moves the watermark.
    pub oee_follows_wall_clock: bool,
}

impl Settings {
    /// Replaces `database.url` (`oee-stream replay --sink`), checked as the file's would be.
    pub fn set_database_url(&mut self, url: &str) -> Result<(), String> {
        let mut db = self.file.database.clone();
        db.url = url.to_string();
        let mut errors = Vec::new();
        let target = check_database(&db, &mut errors);
        match target {
            Some(t) if errors.is_empty() => {
                self.file.database = db;
                self.database = t;
                Ok(())
            }
            _ => Err(errors
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; ")),
        }
    }
}

/// Load from text. `file` names the source in diagnostics; `env` is the process environment
/// (only `OEE_…__…` variables are used). Pure: touches no file, network or clock.
pub fn load_settings(
    text: &str,
    file: &str,
    env: &BTreeMap<String, String>,
) -> Result<Settings, Vec<ConfigDiagnostic>> {
    let wrap = |ds: Vec<Diagnostic>| {
        ds.into_iter()
            .map(|d| ConfigDiagnostic::from(file, d))
            .collect::<Vec<_>>()
    };
    let mut root = yaml::parse(text).map_err(wrap)?;
    let mut diags = apply_env_overrides(&mut root, env);
    let parsed: Option<FileConfig> = yaml::decode(&root, &mut diags);
    let Some(cfg) = parsed else {
        return Err(wrap(diags));
    };
    // Semantic checks run even when decoding found errors, so every error shows up at once.
    let mut errors = Vec::new();
    let broker = check_mqtt(&cfg.mqtt, &mut errors);
    let database = check_database(&cfg.database, &mut errors);
    let http_listen = match cfg.http.listen.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            errors.push(PathError::new(
                "http.listen",
                format!(
                    "`{}` is not an address:port such as 0.0.0.0:9100",
                    cfg.http.listen
                ),
            ));
            None
        }
    };
    check_acknowledge(&cfg.http.acknowledge, &mut errors);
    check_sparkplug(&cfg.sparkplug, &mut errors);
    let domain = build_domain(&cfg.processing, &cfg.oee, &cfg.faults)
        .map_err(|e| errors.extend(e))
        .ok();
    // A value that failed to decode was replaced by a neutral one; do not pile consequences of
    // that on top of the real error.
    let decode_paths: Vec<String> = diags.iter().map(|d| d.path.clone()).collect();
    errors.retain(|e| {
        !decode_paths.iter().any(|p| {
            !p.is_empty()
                && (e.path == *p
                    || e.path.starts_with(&format!("{p}."))
                    || e.path.starts_with(&format!("{p}[")))
        })
    });
    diags.extend(root.locate_all(errors));
    if !diags.is_empty() {
        yaml::sort_diagnostics(&mut diags);
        diags.dedup();
        return Err(wrap(diags));
    }
    let (Some(broker), Some(database), Some(http_listen), Some(domain)) =
        (broker, database, http_listen, domain)
    else {
        return Err(wrap(vec![Diagnostic {
            location: root.location.clone(),
            path: String::new(),
            message: "internal: validation failed without a message".into(),
        }]));
    };
    let warnings = wrap(root.locate_all(domain.rules.warnings.clone()));
    let client_id = if cfg.mqtt.client_id.is_empty() {
        format!("oee-stream-{}", cfg.mqtt.host_id)
    } else {
        cfg.mqtt.client_id.clone()
    };
    Ok(Settings {
        file: cfg,
        broker,
        client_id,
        database,
        http_listen,
        domain: Arc::new(domain),
        warnings,
        tls: None,
        oee_follows_wall_clock: true,
    })
}

/// `http.acknowledge.token`: when given, a usable bearer token (the value itself never appears
/// in a message).
fn check_acknowledge(ack: &AcknowledgeConfig, errors: &mut Vec<PathError>) {
    let Some(token) = &ack.token else {
        return;
    };
    let message = if token.is_empty() {
        "is empty: remove the key for no token, or give one of at least 16 characters"
    } else if token.len() < 16 {
        "is too short: use at least 16 characters (e.g. `openssl rand -hex 32`)"
    } else if !token.bytes().all(|b| b.is_ascii_graphic()) {
        "may contain only visible ASCII characters (no spaces or control characters)"
    } else {
        return;
    };
    errors.push(PathError::new(
        "http.acknowledge.token",
        message.to_string(),
    ));
}

/// Read and validate a configuration file without connecting to anything: what
/// `oee-stream check-config FILE` runs. For an `mqtts://` broker it also reads and parses the
/// TLS files and builds the client configuration ([`Settings::tls`]) once: a missing or
/// unparseable CA, certificate or key is an error here.
pub fn check_config(path: &Path) -> Result<Settings, Vec<ConfigDiagnostic>> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigDiagnostic {
            file: name.clone(),
            location: Location::File { line: 1, column: 1 },
            path: String::new(),
            message: format!("cannot read the configuration file: {e}"),
        }]
    })?;
    let mut settings = load_settings(&text, &name, &env)?;
    let root = yaml::parse(&text).ok();
    let mut diags = Vec::new();
    let tls = &settings.file.mqtt.tls;
    let base = path.parent().unwrap_or(Path::new("."));
    if settings.broker.tls {
        match crate::source::tls::build_client_config(tls, base) {
            Ok(cfg) => settings.tls = Some(Arc::new(cfg)),
            Err(problems) => {
                for p in problems {
                    let location = env_location(p.key, env_var_for(p.key), &env)
                        .or_else(|| root.as_ref().map(|r| r.locate(p.key)))
                        .unwrap_or(Location::File { line: 1, column: 1 });
                    diags.push(ConfigDiagnostic {
                        file: name.clone(),
                        location,
                        path: p.key.to_string(),
                        message: p.message,
                    });
                }
            }
        }
    }
    if diags.is_empty() {
        Ok(settings)
    } else {
        Err(diags)
    }
}

fn env_var_for(path: &str) -> String {
    format!("{ENV_PREFIX}{}", path.replace('.', "__").to_uppercase())
}

fn env_location(_path: &str, var: String, env: &BTreeMap<String, String>) -> Option<Location> {
    env.contains_key(&var).then_some(Location::Env(var))
}

/// Apply `OEE_<SECTION>__<KEY>…` variables to the tree; returns errors for variables that
/// cannot be applied.
pub fn apply_env_overrides(
    root: &mut yaml::Node,
    env: &BTreeMap<String, String>,
) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    for (var, value) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let keys: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        let path = keys.iter().fold(String::new(), |p, k| join_key(&p, k));
        if keys.iter().any(String::is_empty) {
            diags.push(Diagnostic {
                location: Location::Env(var.clone()),
                path,
                message:
                    "empty key in the variable name (use a double underscore only between keys)"
                        .into(),
            });
            continue;
        }
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        if !root.set_scalar(&refs, value, Location::Env(var.clone())) {
            diags.push(Diagnostic {
                location: Location::Env(var.clone()),
                path,
                message: "cannot be set from the environment: a key on the way is a list or a value, not a mapping".into(),
            });
        }
    }
    diags
}

fn check_mqtt(m: &MqttConfig, errors: &mut Vec<PathError>) -> Option<BrokerAddress> {
    // Credentials in the URL would end up in logs and messages (the URL is echoed); the error
    // does not repeat the URL.
    let broker = if m.url.contains('@') {
        errors.push(PathError::new(
            "mqtt.url",
            "must not contain credentials (`user:password@`): set mqtt.username and mqtt.password (or OEE_MQTT__PASSWORD)",
        ));
        None
    } else {
        parse_broker_url(&m.url)
            .map_err(|e| errors.push(PathError::new("mqtt.url", e)))
            .ok()
    };
    if m.host_id.is_empty() {
        errors.push(PathError::new(
            "mqtt.host_id",
            "the Sparkplug host id must not be empty",
        ));
    } else if let Some(c) = m.host_id.chars().find(|c| matches!(c, '/' | '+' | '#')) {
        errors.push(PathError::new(
            "mqtt.host_id",
            format!(
                "`{}` cannot be used in the STATE topic: it contains `{c}`",
                m.host_id
            ),
        ));
    }
    match (&m.tls.cert, &m.tls.key) {
        (Some(_), None) => errors.push(PathError::new(
            "mqtt.tls.cert",
            "a client certificate needs its private key (`mqtt.tls.key`)",
        )),
        (None, Some(_)) => errors.push(PathError::new(
            "mqtt.tls.key",
            "a private key needs its client certificate (`mqtt.tls.cert`)",
        )),
        _ => {}
    }
    let tls_set = m.tls.ca.is_some() || m.tls.cert.is_some() || m.tls.key.is_some();
    if tls_set && broker.as_ref().is_some_and(|b| !b.tls) {
        errors.push(PathError::new(
            "mqtt.url",
            format!(
                "`mqtt.tls` is set but `{}` is plain TCP; use mqtts://",
                m.url
            ),
        ));
    }
    if m.reconnect.min_backoff_ms == 0 || m.reconnect.min_backoff_ms > m.reconnect.max_backoff_ms {
        errors.push(PathError::new(
            "mqtt.reconnect.min_backoff_ms",
            "must be above 0 and not above max_backoff_ms",
        ));
    }
    if m.keep_alive_s > u64::from(u16::MAX) {
        errors.push(PathError::new(
            "mqtt.keep_alive_s",
            "at most 65535 s (the MQTT keep-alive field)",
        ));
    }
    if m.max_packet_size < 1024 {
        errors.push(PathError::new(
            "mqtt.max_packet_size",
            "must be at least 1024 bytes (Sparkplug births are large)",
        ));
    }
    broker
}

/// `mqtt://host:port` / `mqtts://host:port` (port defaults 1883 / 8883).
pub fn parse_broker_url(url: &str) -> Result<BrokerAddress, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(format!(
            "`{url}` must start with mqtt:// (TCP) or mqtts:// (TLS)"
        ));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
            Ok(port) if port > 0 => (h, port),
            _ => {
                return Err(format!(
                    "`{p}` in `{url}` is not a port number (1 to 65535)"
                ));
            }
        },
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() || host.contains('/') {
        return Err(format!("`{url}` has no valid host name"));
    }
    Ok(BrokerAddress {
        tls,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
    })
}

fn check_database(d: &DatabaseConfig, errors: &mut Vec<PathError>) -> Option<DatabaseTarget> {
    let url = d.url.as_str();
    let target = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(DatabaseTarget::Postgres(url.to_string()))
    } else if let Some(p) = url.strip_prefix("sqlite://") {
        if p.is_empty() {
            None
        } else {
            Some(DatabaseTarget::Sqlite(PathBuf::from(p)))
        }
    } else if let Some(p) = url.strip_prefix("jsonl://") {
        match p {
            "" => None,
            "-" => Some(DatabaseTarget::JsonLines(None)),
            p => Some(DatabaseTarget::JsonLines(Some(PathBuf::from(p)))),
        }
    } else {
        None
    };
    if target.is_none() {
        errors.push(PathError::new(
            "database.url",
            "expected postgres://USER@HOST/DB (or postgresql://), sqlite://PATH, or jsonl://PATH (jsonl://- for stdout)",
        ));
    }
    if d.batch_size == 0 {
        errors.push(PathError::new("database.batch_size", "must be at least 1"));
    }
    if d.queue_capacity < d.batch_size {
        errors.push(PathError::new(
            "database.queue_capacity",
            "must be at least batch_size",
        ));
    }
    if d.retry_initial_ms == 0 {
        errors.push(PathError::new(
            "database.retry_initial_ms",
            "must be at least 1 ms",
        ));
    }
    if d.retry_max_ms < d.retry_initial_ms {
        errors.push(PathError::new(
            "database.retry_max_ms",
            "must be at least retry_initial_ms",
        ));
    }
    if d.spool.dir.as_os_str().is_empty() {
        errors.push(PathError::new(
            "database.spool.dir",
            "must name a directory",
        ));
    }
    if d.spool.segment_bytes < 4096 {
        errors.push(PathError::new(
            "database.spool.segment_bytes",
            "must be at least 4096",
        ));
    }
    if d.spool.max_bytes < d.spool.segment_bytes {
        errors.push(PathError::new(
            "database.spool.max_bytes",
            "must be at least segment_bytes",
        ));
    }
    if d.batch_max_latency_ms == 0 {
        errors.push(PathError::new(
            "database.batch_max_latency_ms",
            "must be at least 1 ms",
        ));
    }
    target
}

fn check_sparkplug(s: &SparkplugConfig, errors: &mut Vec<PathError>) {
    for (i, g) in s.groups.iter().enumerate() {
        if g.is_empty() || g.contains(['/', '+', '#']) {
            errors.push(PathError::new(
                format!("sparkplug.groups[{i}]"),
                format!("`{g}` is not a Sparkplug group id (not empty, no `/`, `+` or `#`)"),
            ));
        }
    }
    if s.shard_queue == 0 {
        errors.push(PathError::new(
            "sparkplug.shard_queue",
            "must be at least 1",
        ));
    }
    if s.shards > 1024 {
        errors.push(PathError::new(
            "sparkplug.shards",
            "at most 1024 (0 = one per CPU core)",
        ));
    }
    for (key, v) in [
        ("max_nodes", s.max_nodes),
        ("max_devices_per_node", s.max_devices_per_node),
        ("max_metrics_per_node", s.max_metrics_per_node),
        ("max_buffered_per_node", s.max_buffered_per_node),
    ] {
        if v == 0 {
            errors.push(PathError::new(
                join_key("sparkplug", key),
                "must be at least 1",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_broker_url("mqtt://broker:1884").unwrap(),
            BrokerAddress {
                tls: false,
                host: "broker".into(),
                port: 1884
            }
        );
        assert_eq!(parse_broker_url("mqtts://broker").unwrap().port, 8883);
        assert_eq!(parse_broker_url("mqtt://[::1]:1883").unwrap().host, "::1");
        assert!(parse_broker_url("tcp://broker:1883").is_err());
        assert!(parse_broker_url("mqtt://broker:99999").is_err());
        assert!(parse_broker_url("mqtt://").is_err());
    }

    #[test]
    fn sparkplug_mode_and_shards() {
        let env = BTreeMap::new();
        let s = load_settings("sparkplug:\n  mode: passive\n  shards: 3\n", "t.yml", &env).unwrap();
        assert_eq!(s.file.sparkplug.mode, HostMode::Passive);
        assert_eq!(
            s.file.sparkplug.mode.rebirth_mode(),
            sparkplug::RebirthMode::Off
        );
        assert!(!s.file.sparkplug.mode.publishes_state());
        assert!(s.tls.is_none());
        let errs = load_settings("sparkplug:\n  mode: secondary\n", "t.yml", &env).unwrap_err();
        assert_eq!(errs[0].path, "sparkplug.mode");
        let errs = load_settings("sparkplug:\n  shard_queue: 0\n", "t.yml", &env).unwrap_err();
        assert_eq!(errs[0].path, "sparkplug.shard_queue");
    }

    #[test]
    fn debug_output_hides_every_secret() {
        let env = BTreeMap::new();
        let text = "mqtt:\n  username: u\n  password: mqtt-Secret-1\n\
                    database:\n  url: postgres://oee:db-Secret-2@db:5432/oee?sslmode=require&password=db-Secret-3\n\
                    http:\n  acknowledge:\n    enabled: true\n    token: ack-Secret-4-0123456789\n";
        let s = load_settings(text, "t.yml", &env).unwrap();
        let debug = format!("{s:?}");
        for secret in [
            "mqtt-Secret-1",
            "db-Secret-2",
            "db-Secret-3",
            "ack-Secret-4",
        ] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(
            debug.contains(
                "postgres://oee:<redacted>@db:5432/oee?sslmode=require&password=<redacted>"
            )
        );
        assert!(debug.contains("password: Some(\"<redacted>\")"), "{debug}");
    }

    #[test]
    fn redacted_urls_keep_everything_but_the_password() {
        assert_eq!(
            redacted_url("postgres://u:p@h/db"),
            "postgres://u:<redacted>@h/db"
        );
        assert_eq!(redacted_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redacted_url("postgres://h/db?password=x"),
            "postgres://h/db?password=<redacted>"
        );
        assert_eq!(
            redacted_url("postgres://u:p/w@rd@h"),
            "postgres://u:<redacted>@h"
        );
        assert_eq!(redacted_url("sqlite://oee.db"), "sqlite://oee.db");
    }

    #[test]
    fn credentials_in_the_mqtt_url_are_refused_without_echoing_them() {
        let env = BTreeMap::new();
        let errs = load_settings(
            "mqtt:\n  url: mqtt://u:Secret-5@broker:1883\n",
            "t.yml",
            &env,
        )
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].path, "mqtt.url");
        assert_eq!(errs[0].line_column(), Some((2, 8)));
        assert!(!errs[0].to_string().contains("Secret-5"), "{}", errs[0]);
    }

    #[test]
    fn host_limits_are_shared_among_the_shards() {
        let env = BTreeMap::new();
        let s = load_settings(
            "sparkplug:\n  max_nodes: 1001\n  max_devices_per_node: 7\n  max_metrics_per_node: 50\n  max_buffered_per_node: 3\n  global_rebirths_per_second: 5\n",
            "t.yml",
            &env,
        )
        .unwrap();
        let h = s.file.sparkplug.host_config(4);
        assert_eq!(h.max_nodes, 251);
        assert_eq!(
            (
                h.max_devices_per_node,
                h.max_metrics_per_node,
                h.max_buffered_per_node
            ),
            (7, 50, 3)
        );
        assert_eq!(h.global_rebirths_per_second, 2);
        let errs = load_settings("sparkplug:\n  max_nodes: 0\n", "t.yml", &env).unwrap_err();
        assert_eq!(errs[0].path, "sparkplug.max_nodes");
    }

    #[test]
    fn env_var_names() {
        assert_eq!(env_var_for("mqtt.tls.ca"), "OEE_MQTT__TLS__CA");
    }
}
