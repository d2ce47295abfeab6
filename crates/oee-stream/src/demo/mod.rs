//! `oee-stream demo` and `oee-stream simulate`: a simulated Sparkplug B plant, its MQTT driver,
//! the embedded broker and the demo's built-in configuration.

pub mod broker;
pub mod driver;
pub mod simulator;

use std::collections::BTreeMap;
use std::path::Path;

use crate::settings::{ConfigDiagnostic, Settings, load_settings};

/// The demo's built-in configuration (`oee-stream demo --print-config`).
pub const DEMO_CONFIG: &str = include_str!("demo.yml");

/// The demo configuration with the embedded broker's port, the HTTP port and the data
/// directory filled in (as `OEE_…` overrides, so the printed text stays the one that runs).
pub fn demo_settings(
    broker_port: u16,
    http_port: u16,
    dir: &Path,
) -> Result<Settings, Vec<ConfigDiagnostic>> {
    let env: BTreeMap<String, String> = [
        ("OEE_MQTT__URL", format!("mqtt://127.0.0.1:{broker_port}")),
        ("OEE_HTTP__LISTEN", format!("127.0.0.1:{http_port}")),
        (
            "OEE_DATABASE__URL",
            format!("sqlite://{}", dir.join("oee.db").display()),
        ),
        (
            "OEE_DATABASE__SPOOL__DIR",
            dir.join("spool").display().to_string(),
        ),
        // Each demo run starts its plant at the wall clock (or --start), while the previous
        // run's simulated time ran ahead of it: an engine rebuilt from that run would find the
        // new run's data hours too late and drop it.
        ("OEE_OEE__REBUILD_S", "0".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    load_settings(DEMO_CONFIG, "<demo configuration>", &env)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_demo_does_not_rebuild_from_an_earlier_run() {
        let s = demo_settings(1883, 9100, Path::new("/tmp/x")).unwrap();
        assert_eq!(s.domain.oee.rebuild_s, 0);
    }

    #[test]
    fn the_demo_configuration_loads() {
        let s = demo_settings(18830, 19100, Path::new("/tmp/demo-x")).unwrap_or_else(|d| {
            panic!("{d:#?}");
        });
        assert!(s.warnings.is_empty(), "{:#?}", s.warnings);
        assert_eq!(s.http_listen.port(), 19100);
        // On loopback only, with the dashboard's Acknowledge buttons.
        assert!(s.http_listen.ip().is_loopback());
        assert!(s.file.http.acknowledge.enabled);
        assert!(s.file.http.acknowledge.token.is_none());
        assert_eq!(s.broker.port, 18830);
        let s = load_settings(DEMO_CONFIG, "demo.yml", &BTreeMap::new()).unwrap();
        assert_eq!(s.domain.rules.len(), 8);
    }

    #[test]
    fn simulated_breaks_match_the_calendar() {
        assert!(DEMO_CONFIG.contains("start: \"10:00\""));
        for b in simulator::BREAKS_UTC_S {
            let hhmm = format!("start: \"{:02}:{:02}\"", b / 3600, b % 3600 / 60);
            assert!(DEMO_CONFIG.contains(&hhmm), "{hhmm}");
        }
    }
}
