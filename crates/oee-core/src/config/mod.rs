//! The processing rules and the `oee` / `faults` sections of the configuration file, their
//! defaults and their validation, plus the located-YAML machinery ([`yaml`]) the loader uses to
//! report every error with its file, line, column and key path.
//!
//! The service sections (`mqtt`, `database`, `http`, `log`) and environment overrides belong to
//! the binary (`oee-stream::settings`); this crate knows nothing about MQTT or SQL.

pub mod engine;
pub mod faults;
pub mod oee;
pub mod processing;
pub mod yaml;

use serde::Deserialize;

pub use faults::FaultsConfig;
pub use oee::OeeConfig;
pub use processing::ProcessingConfig;
use yaml::PathError;

use crate::normalize::rules::RuleSet;

/// The domain sections of the file, validated together.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct DomainConfig {
    pub processing: ProcessingConfig,
    pub oee: OeeConfig,
    pub faults: FaultsConfig,
}

/// The built domain: rules ready for the normalizer, plus the validated sections.
#[derive(Clone, Debug)]
pub struct Domain {
    pub rules: RuleSet,
    pub oee: OeeConfig,
    pub faults: FaultsConfig,
    pub severities: faults::SeverityTable,
}

/// Validate `processing`, `oee` and `faults` together; all errors at once.
pub fn build_domain(
    processing: &ProcessingConfig,
    oee: &OeeConfig,
    faults: &FaultsConfig,
) -> Result<Domain, Vec<PathError>> {
    let mut errors = Vec::new();
    let rules = RuleSet::compile(processing)
        .map_err(|e| errors.extend(e))
        .ok();
    oee.validate("oee", &mut errors);
    let severities = faults.compile("faults", &mut errors);
    if let Err(e) = engine::calendars(oee) {
        errors.extend(e);
    }
    match rules {
        Some(rules) if errors.is_empty() => Ok(Domain {
            rules,
            oee: oee.clone(),
            faults: faults.clone(),
            severities,
        }),
        _ => Err(errors),
    }
}
