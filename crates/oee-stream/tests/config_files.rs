//! `check-config` against broken files: each file under `tests/config/` lists the diagnostics
//! it must produce, in order, as comment lines at its end:
//! `# expect: LINE:COLUMN key.path: message fragment`.
//! Also: the shipped `config.example.yml` and the issue's seed shape load without errors, and
//! environment overrides apply and are located.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oee_core::config::yaml::Location;
use oee_stream::settings::{check_config, default_config_text, load_settings};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/config")
}

fn no_env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

#[test]
fn every_broken_file_reports_its_lines_columns_and_keys() {
    let mut files: Vec<_> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10);
    let mut failures = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let expected: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(|l| {
                let (head, frag) = l.split_once(": ").unwrap_or((l, ""));
                (head.to_string(), frag.to_string())
            })
            .collect();
        assert!(!expected.is_empty(), "{name} has no `# expect:` lines");
        let errors = load_settings(&text, &name, &no_env())
            .err()
            .unwrap_or_default();
        let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let ok = got.len() == expected.len()
            && errors.iter().zip(&expected).all(|(e, (head, frag))| {
                let (line, col) = e.line_column().unwrap_or((0, 0));
                format!("{line}:{col} {}", e.path) == *head && e.message.contains(frag.as_str())
            });
        if !ok {
            failures.push(format!("{name}:\n  expected {expected:#?}\n  got {got:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_default_config_loads_without_errors_or_warnings() {
    let s =
        load_settings(default_config_text(), "config.example.yml", &no_env()).unwrap_or_else(|e| {
            panic!(
                "{}",
                e.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert_eq!(s.http_listen.to_string(), "0.0.0.0:9100");
    assert_eq!(s.client_id, "oee-stream-oee-stream");
    assert_eq!(s.domain.rules.len(), 4);
}

#[test]
fn the_default_config_file_is_the_repository_example() {
    let on_disk = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config.example.yml"),
    )
    .unwrap();
    assert_eq!(on_disk, default_config_text());
    let s =
        check_config(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config.example.yml"))
            .unwrap();
    assert_eq!(s.file.database.url, "sqlite://oee-stream.db");
}

const SEED: &str = r#"processing:
  tag_mappings:
    - source_tag: "/Devices/Line1/M1/ProdCount"
      signal_type: "counter.total"
      machine_id: "SITE01-LINE1-M1"
      line_id: "SITE01-LINE1"
      site_id: "SITE01"
      source_unit: "count"
      target_unit: "count"
      min_quality: 192
    - source_tag: "/Devices/Line1/M1/Temperature"
      signal_type: "temperature"
      machine_id: "SITE01-LINE1-M1"
      line_id: "SITE01-LINE1"
      site_id: "SITE01"
      source_unit: "fahrenheit"
      target_unit: "celsius"
      scale_factor: 0.5556
      offset: -17.78
      deadband_absolute: 2.0
      min_quality: 192
  ideal_cycle_times:
    "SITE01-LINE1-M1": 12.5
"#;

#[test]
fn the_seed_shape_loads_unchanged_and_is_in_the_example() {
    let s = load_settings(SEED, "seed.yml", &no_env()).unwrap();
    assert_eq!(s.domain.rules.len(), 2);
    assert_eq!(
        s.domain.rules.ideal_cycle_times.get("SITE01-LINE1-M1"),
        Some(&12.5)
    );
    // the example carries the seed verbatim (indented under its comments)
    let seed_rules: String = SEED
        .lines()
        .skip(2)
        .take(19)
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        default_config_text().contains(&seed_rules),
        "the seed's rules are not verbatim in config.example.yml"
    );
}

#[test]
fn environment_overrides_apply_after_the_file_and_are_located() {
    let env: BTreeMap<String, String> = [
        ("OEE_MQTT__URL", "mqtts://broker.plant:8883"),
        ("OEE_DATABASE__URL", "postgres://oee@db/oee"),
        ("OEE_MQTT__TLS__CA", "ca.pem"),
        ("OEE_OEE__MICRO_STOP_S", "45"),
        ("OEE_CONFIG", "/etc/oee-stream.yml"),
        ("PATH", "/usr/bin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let s = load_settings(SEED, "seed.yml", &env).unwrap();
    assert_eq!(s.file.mqtt.url, "mqtts://broker.plant:8883");
    assert!(s.broker.tls);
    assert_eq!(s.file.database.url, "postgres://oee@db/oee");
    assert_eq!(s.file.oee.micro_stop_s, 45);
    assert_eq!(
        s.file.mqtt.tls.ca.as_deref(),
        Some(std::path::Path::new("ca.pem"))
    );

    let bad: BTreeMap<String, String> = [
        ("OEE_HTTP__LISTEN", "nowhere"),
        ("OEE_OEE__MICRO_STOP_S", "soon"),
        ("OEE_MQTT__HOSTNAME", "x"),
        ("OEE_PROCESSING__TAG_MAPPINGS__X", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let errors = load_settings(SEED, "seed.yml", &bad).unwrap_err();
    let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(got.len(), 4, "{got:#?}");
    assert!(
        errors
            .iter()
            .all(|e| matches!(e.location, Location::Env(_))),
        "{got:#?}"
    );
    assert!(got.contains(&"$OEE_HTTP__LISTEN: http.listen: `nowhere` is not an address:port such as 0.0.0.0:9100".to_string()), "{got:#?}");
    assert!(
        got.iter()
            .any(|g| g.starts_with("$OEE_MQTT__HOSTNAME: mqtt.hostname: unknown key `hostname`")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|g| g
                .starts_with("$OEE_OEE__MICRO_STOP_S: oee.micro_stop_s: expected a whole number")),
        "{got:#?}"
    );
    assert!(
        got.iter().any(|g| g.starts_with(
            "$OEE_PROCESSING__TAG_MAPPINGS__X: processing.tag_mappings.x: cannot be set"
        )),
        "{got:#?}"
    );
}

#[test]
fn missing_tls_files_are_a_check_config_error() {
    let dir = std::env::temp_dir().join(format!("oee-stream-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.yml");
    std::fs::write(
        &file,
        "mqtt:\n  url: mqtts://b:8883\n  tls:\n    ca: missing-ca.pem\n",
    )
    .unwrap();
    let errors = check_config(&file).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line_column(), Some((4, 9)));
    assert_eq!(errors[0].path, "mqtt.tls.ca");
    assert!(
        errors[0].message.contains("missing-ca.pem"),
        "{}",
        errors[0]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unreadable_file_is_one_clear_error() {
    let errors = check_config(&dir().join("does-not-exist.yml")).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .to_string()
            .contains("cannot read the configuration file"),
        "{}",
        errors[0]
    );
}

fn render(text: &str) -> Vec<String> {
    match load_settings(text, "f.yml", &no_env()) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn an_empty_file_is_the_defaults() {
    let s = load_settings("# nothing\n", "f.yml", &no_env()).unwrap();
    assert_eq!(s.file.http.listen, "0.0.0.0:9100");
    assert_eq!(s.file.faults.dedup_window_s, 300);
    assert_eq!(s.file.oee.micro_stop_s, 120);
    assert!(s.domain.rules.is_empty());
}

#[test]
fn wrong_shapes_are_reported_once_at_their_place() {
    assert_eq!(
        render("processing:\n  tag_mappings: [foo]\n"),
        [
            "f.yml:2:18: processing.tag_mappings[0]: expected a mapping of keys to values, found `foo`"
        ]
    );
    assert_eq!(
        render("processing: 5\n"),
        ["f.yml:1:13: processing: expected a mapping of keys to values, found `5`"]
    );
    assert_eq!(
        render(
            "processing:\n  tag_mappings:\n    - signal_type: counter.total\n      machine_id: M\n"
        ),
        [
            "f.yml:3:7: processing.tag_mappings[0]: missing `source_tag` (group/edge_node/device/metric)"
        ]
    );
}

#[test]
fn a_second_document_is_an_error() {
    assert_eq!(
        render("http:\n  listen: 0.0.0.0:1\n---\nhttp: {}\n"),
        [
            "f.yml:3:1: (document): the configuration must be a single YAML document (found a second `---`)"
        ]
    );
}

#[test]
fn acknowledgement_is_off_by_default_and_its_token_is_never_shown() {
    let s = load_settings("", "empty.yml", &no_env()).unwrap();
    assert!(!s.file.http.acknowledge.enabled);
    assert_eq!(s.file.http.acknowledge.token, None);

    let token = "a-long-enough-secret-token";
    let text = format!("http:\n  acknowledge:\n    enabled: true\n    token: \"{token}\"\n");
    let s = load_settings(&text, "ack.yml", &no_env()).unwrap();
    assert!(s.file.http.acknowledge.enabled);
    assert_eq!(s.file.http.acknowledge.token.as_deref(), Some(token));
    let debug = format!("{:?}", s.file);
    assert!(!debug.contains(token), "{debug}");
    assert!(debug.contains("<redacted>"));

    // From the environment too (how a Secret is usually passed).
    let env: BTreeMap<String, String> = [
        ("OEE_HTTP__ACKNOWLEDGE__ENABLED", "true"),
        ("OEE_HTTP__ACKNOWLEDGE__TOKEN", token),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let s = load_settings("", "empty.yml", &env).unwrap();
    assert!(s.file.http.acknowledge.enabled);
    assert_eq!(s.file.http.acknowledge.token.as_deref(), Some(token));

    for (bad, needle) in [
        ("\"\"", "is empty"),
        ("\"with a space in the token\"", "only visible ASCII"),
    ] {
        let text = format!("http:\n  acknowledge:\n    token: {bad}\n");
        let errors = load_settings(&text, "ack.yml", &no_env()).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "http.acknowledge.token");
        assert!(errors[0].message.contains(needle), "{}", errors[0].message);
    }
}
