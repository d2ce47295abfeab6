//! The shipped deployment files stay consistent with the program.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oee_stream::settings::load_settings;

fn repo_file(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The configuration embedded in the Kubernetes ConfigMap loads (TLS files are only checked by
/// `check-config` on the target system, not here).
#[test]
fn kubernetes_configmap_configuration_loads() {
    let manifest = repo_file("deploy/kubernetes/configmap.yaml");
    let mut lines = manifest
        .lines()
        .skip_while(|l| !l.contains("oee-stream.yml: |"));
    assert!(
        lines.next().is_some(),
        "the ConfigMap has an oee-stream.yml key"
    );
    let config: String = lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect();
    let env = BTreeMap::from([("OEE_MQTT__HOST_ID".to_string(), "oee-stream-0".to_string())]);
    let settings = load_settings(&config, "configmap.yaml", &env)
        .unwrap_or_else(|e| panic!("{e:?}\n{config}"));
    assert_eq!(settings.file.mqtt.host_id, "oee-stream-0");
    assert_eq!(settings.http_listen.port(), 9100);
}

/// The systemd unit validates the file before it starts, runs `run --config`, and gives SIGTERM
/// time to drain.
#[test]
fn systemd_unit_checks_then_runs() {
    let unit = repo_file("deploy/systemd/oee-stream.service");
    let line = |key: &str| {
        unit.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in the unit"))
            .to_string()
    };
    assert!(
        line("ExecStartPre=").ends_with("oee-stream check-config /etc/oee-stream/oee-stream.yml")
    );
    assert!(line("ExecStart=").ends_with("oee-stream run --config /etc/oee-stream/oee-stream.yml"));
    assert_eq!(line("KillSignal="), "KillSignal=SIGTERM");
    assert_eq!(line("User="), "User=oee-stream");
}

/// docs/operations.md shows the role SQL of `deploy/postgres/` statement for statement (the
/// files themselves are run by the PostgreSQL sink test of the runtime role).
#[test]
fn the_documented_database_roles_are_the_shipped_sql() {
    let doc = repo_file("docs/operations.md");
    for file in ["deploy/postgres/roles.sql", "deploy/postgres/grants.sql"] {
        let statements: Vec<String> = repo_file(file)
            .lines()
            .filter(|l| !l.starts_with("--") && !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        assert!(!statements.is_empty(), "{file} has statements");
        assert!(
            doc.contains(&statements.join("\n")),
            "docs/operations.md does not show the statements of {file}:\n{}",
            statements.join("\n")
        );
    }
}
