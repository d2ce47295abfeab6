//! What the bench offers: `--rate` (a fixed DDATA rate or `max`) and the service's
//! configuration (the demo's, with `--no-deadband` without its deadbands).

use std::fmt;

use oee_stream::demo::DEMO_CONFIG;

/// `--rate`: DDATA messages per second over all machines, or as fast as the broker accepts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    PerSecond(f64),
    Max,
}

impl Rate {
    /// The simulator's report interval per machine: every step with `max`.
    pub fn report_every_ms(self, machines: usize) -> u64 {
        match self {
            Rate::PerSecond(r) => ((machines as f64 * 1000.0 / r) as u64).max(1),
            Rate::Max => 1,
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::PerSecond(r) => write!(f, "{r} msg/s offered"),
            Rate::Max => f.write_str("as many msg/s as the broker accepts (--rate max)"),
        }
    }
}

pub fn parse_rate(s: &str) -> Result<Rate, String> {
    if s == "max" {
        return Ok(Rate::Max);
    }
    match s.parse::<f64>() {
        Ok(r) if r > 0.0 && r.is_finite() => Ok(Rate::PerSecond(r)),
        _ => Err(format!("`{s}` is neither a positive number nor `max`")),
    }
}

/// The service's configuration file: the demo configuration, without any `deadband_*` key
/// (nor `max_silence_s`, which only applies with a deadband) when `no_deadband`: every analog
/// sample is then stored, like every other sample.
pub fn service_config(no_deadband: bool) -> String {
    if !no_deadband {
        return DEMO_CONFIG.to_string();
    }
    DEMO_CONFIG
        .lines()
        .filter(|l| {
            let key = l.trim_start();
            !(key.starts_with("deadband_") || key.starts_with("max_silence_s:"))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("max"), Ok(Rate::Max));
        assert_eq!(parse_rate("2500"), Ok(Rate::PerSecond(2500.0)));
        for bad in ["0", "-1", "inf", "NaN", "fast", ""] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(Rate::PerSecond(4000.0).report_every_ms(1000), 250);
        assert_eq!(Rate::Max.report_every_ms(1000), 1);
    }

    #[test]
    fn no_deadband_strips_every_deadband_and_still_loads() {
        let rules = |yaml: &str| {
            oee_stream::settings::load_settings(yaml, "test", &BTreeMap::new())
                .unwrap()
                .file
                .processing
                .tag_mappings
        };
        let with = rules(&service_config(false));
        assert!(with.iter().any(|m| m.deadband_absolute.is_some()));
        let without = rules(&service_config(true));
        assert_eq!(without.len(), with.len());
        assert!(
            without
                .iter()
                .all(|m| m.deadband_absolute.is_none() && m.deadband_percent.is_none())
        );
    }
}
