//! `faults:` dedup window, chattering and severity rules. The fault tracker that uses them
//! arrives with issue 4.

use serde::Deserialize;

use super::yaml::{PathError, join_index, join_key};
use crate::normalize::pattern::{FieldPattern, Tok};

/// `faults:`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct FaultsConfig {
    /// A re-activation of the same (machine, code) within this many seconds after it resolved
    /// merges into the same instance (inclusive boundary).
    pub dedup_window_s: u64,
    pub chatter: ChatterConfig,
    /// Severity (1–1000) when no rule matches.
    pub default_severity: u16,
    /// First matching rule wins (list order).
    pub severity_rules: Vec<SeverityRule>,
}

impl Default for FaultsConfig {
    fn default() -> Self {
        FaultsConfig {
            dedup_window_s: 300,
            chatter: ChatterConfig::default(),
            default_severity: 500,
            severity_rules: Vec::new(),
        }
    }
}

/// `faults.chatter`: an instance activating this often is flagged `chattering`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct ChatterConfig {
    pub activations: u32,
    pub within_s: u64,
}

impl Default for ChatterConfig {
    fn default() -> Self {
        ChatterConfig {
            activations: 3,
            within_s: 60,
        }
    }
}

/// `faults.severity_rules[i]`: matches by code, code range and/or machine pattern (all given
/// conditions must hold).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct SeverityRule {
    pub code: Option<i64>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// A machine_id pattern with `*` wildcards, e.g. `SITE01-*`.
    pub machine: Option<String>,
    pub severity: Option<u16>,
    /// Whether faults matching this rule are failures for MTBF/MTTR (default true).
    pub failure: Option<bool>,
}

/// A validated severity table.
#[derive(Clone, Debug)]
pub struct SeverityTable {
    default: u16,
    rules: Vec<(i64, i64, Option<FieldPattern>, u16, bool)>,
}

impl SeverityTable {
    /// (severity, counts as failure) for a fault.
    pub fn classify(&self, machine_id: &str, code: i64) -> (u16, bool) {
        for (from, to, machine, sev, failure) in &self.rules {
            if (*from..=*to).contains(&code)
                && machine
                    .as_ref()
                    .is_none_or(|m| m.matches(machine_id, &mut []))
            {
                return (*sev, *failure);
            }
        }
        (self.default, true)
    }
}

impl FaultsConfig {
    pub fn compile(&self, path: &str, errors: &mut Vec<PathError>) -> SeverityTable {
        let sev_ok = |s: u16| (1..=1000).contains(&s);
        if !sev_ok(self.default_severity) {
            errors.push(PathError::new(
                join_key(path, "default_severity"),
                format!(
                    "severity must be from 1 to 1000, got {}",
                    self.default_severity
                ),
            ));
        }
        if self.chatter.activations < 2 {
            errors.push(PathError::new(
                join_key(&join_key(path, "chatter"), "activations"),
                "chattering needs at least 2 activations",
            ));
        }
        let rp = join_key(path, "severity_rules");
        let mut rules = Vec::new();
        for (i, r) in self.severity_rules.iter().enumerate() {
            let p = join_index(&rp, i);
            let (from, to) = match (r.code, r.from, r.to) {
                (Some(c), None, None) => (c, c),
                (None, f, t) if f.is_some() || t.is_some() => {
                    let (f, t) = (f.unwrap_or(i64::MIN), t.unwrap_or(i64::MAX));
                    if f > t {
                        errors.push(PathError::new(
                            join_key(&p, "to"),
                            format!("the range is empty: `to` ({t}) is smaller than `from` ({f})"),
                        ));
                    }
                    (f, t)
                }
                (None, None, None) => (i64::MIN, i64::MAX),
                _ => {
                    errors.push(PathError::new(
                        p.clone(),
                        "give either `code` or a range (`from`/`to`), not both",
                    ));
                    continue;
                }
            };
            if r.code.is_none() && r.from.is_none() && r.to.is_none() && r.machine.is_none() {
                errors.push(PathError::new(
                    p.clone(),
                    "a severity rule needs a condition: `code`, `from`/`to` or `machine`",
                ));
            }
            let machine = r.machine.as_deref().map(|m| FieldPattern {
                toks: m
                    .split('*')
                    .enumerate()
                    .flat_map(|(k, lit)| {
                        let star = (k > 0).then_some(Tok::Star);
                        star.into_iter()
                            .chain((!lit.is_empty()).then(|| Tok::Lit(lit.to_string())))
                    })
                    .collect(),
            });
            let Some(sev) = r.severity else {
                errors.push(PathError::new(
                    join_key(&p, "severity"),
                    "missing `severity` (1 to 1000)",
                ));
                continue;
            };
            if !sev_ok(sev) {
                errors.push(PathError::new(
                    join_key(&p, "severity"),
                    format!("severity must be from 1 to 1000, got {sev}"),
                ));
            }
            rules.push((from, to, machine, sev, r.failure.unwrap_or(true)));
        }
        SeverityTable {
            default: self.default_severity,
            rules,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_rules_first_match_wins() {
        let cfg = FaultsConfig {
            severity_rules: vec![
                SeverityRule {
                    code: Some(42),
                    severity: Some(900),
                    ..Default::default()
                },
                SeverityRule {
                    from: Some(100),
                    to: Some(199),
                    severity: Some(300),
                    failure: Some(false),
                    ..Default::default()
                },
                SeverityRule {
                    machine: Some("SITE01-*-M1".into()),
                    severity: Some(700),
                    ..Default::default()
                },
            ],
            ..FaultsConfig::default()
        };
        let mut e = Vec::new();
        let t = cfg.compile("faults", &mut e);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(t.classify("X", 42), (900, true));
        assert_eq!(t.classify("X", 150), (300, false));
        assert_eq!(t.classify("SITE01-LINE1-M1", 7), (700, true));
        assert_eq!(t.classify("SITE01-LINE1-M2", 7), (500, true));
    }

    #[test]
    fn severity_errors() {
        let cfg = FaultsConfig {
            default_severity: 0,
            severity_rules: vec![
                SeverityRule {
                    code: Some(1),
                    severity: Some(2000),
                    ..Default::default()
                },
                SeverityRule {
                    severity: Some(10),
                    ..Default::default()
                },
                SeverityRule {
                    code: Some(1),
                    from: Some(1),
                    severity: Some(10),
                    ..Default::default()
                },
                SeverityRule {
                    from: Some(9),
                    to: Some(1),
                    severity: Some(10),
                    ..Default::default()
                },
            ],
            ..FaultsConfig::default()
        };
        let mut e = Vec::new();
        cfg.compile("faults", &mut e);
        let paths: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "faults.default_severity",
                "faults.severity_rules[0].severity",
                "faults.severity_rules[1]",
                "faults.severity_rules[2]",
                "faults.severity_rules[3].to"
            ]
        );
    }
}
