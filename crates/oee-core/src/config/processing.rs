//! `processing:` the tag mapping rules, ideal cycle times, the unmapped-metric policy and the
//! state-code → category table. Validation lives in [`crate::normalize::rules::RuleSet::compile`]
//! (validate, then build: the same code checks the file and builds the normalizer).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::yaml::{PathError, join_index, join_key};

/// `processing:`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct ProcessingConfig {
    /// Exact and pattern rules, in any order (precedence does not depend on order).
    pub tag_mappings: Vec<TagMapping>,
    /// Ideal cycle time in seconds per machine_id.
    pub ideal_cycle_times: BTreeMap<String, f64>,
    /// What happens to metrics no rule maps.
    pub unmapped: UnmappedConfig,
    /// Integer `state.code` values → state category.
    pub state_codes: StateCodesConfig,
    /// Defaults applied to analog rules that do not set their own.
    pub analog_defaults: AnalogDefaults,
    /// How many distinct source identities the normalizer remembers (rule cache and deadband
    /// state). Beyond it new identities are still normalized, without caching or deadband.
    pub max_tracked_sources: usize,
}

/// One rule: which metric(s), which signal, which asset, how to convert.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct TagMapping {
    /// `group/edge_node/device/metric`, optionally with a leading `/`; `*` and `{name}`
    /// wildcards make it a pattern.
    pub source_tag: Option<String>,
    /// `counter.total`, `counter.good`, `counter.reject`, `state.running`, `state.code`,
    /// `fault.active`, `fault.code`, or an analog name such as `temperature`.
    pub signal_type: Option<String>,
    pub machine_id: Option<String>,
    pub line_id: Option<String>,
    pub site_id: Option<String>,
    /// Free labels copied onto every signal (values may use captures).
    pub labels: BTreeMap<String, String>,
    pub source_unit: Option<String>,
    pub target_unit: Option<String>,
    pub scale_factor: Option<f64>,
    pub offset: Option<f64>,
    /// Absolute deadband in target units (analog only).
    pub deadband_absolute: Option<f64>,
    /// Deadband in percent of `span_high - span_low` (analog only).
    pub deadband_percent: Option<f64>,
    pub span_low: Option<f64>,
    pub span_high: Option<f64>,
    /// Emit a value after this many seconds of deadband silence anyway (analog only).
    pub max_silence_s: Option<f64>,
    /// Samples with a lower quality are dropped (the signal is recorded as bad).
    pub min_quality: Option<i32>,
    /// The fault code a `fault.active` boolean stands for.
    pub fault_code: Option<i64>,
}

/// `processing.unmapped`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct UnmappedConfig {
    pub policy: UnmappedPolicy,
    /// How many distinct unmapped metric names are listed per edge node (all are counted).
    pub max_listed_per_node: usize,
    /// How many edge nodes the unmapped list holds; metrics of further nodes are counted
    /// (`NormalizerStats::unmapped_unlisted`) but not listed.
    pub max_nodes: usize,
}

impl Default for UnmappedConfig {
    fn default() -> Self {
        UnmappedConfig {
            policy: UnmappedPolicy::Telemetry,
            max_listed_per_node: 1000,
            max_nodes: 10_000,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UnmappedPolicy {
    /// Pass unmapped metrics to telemetry raw (signal type `raw`, no asset).
    #[default]
    Telemetry,
    /// Drop them (they are still counted and listed).
    Drop,
}

/// `processing.state_codes`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct StateCodesConfig {
    /// Category of a code no rule lists.
    pub default_category: StateCategory,
    pub rules: Vec<StateCodeRule>,
}

impl Default for StateCodesConfig {
    fn default() -> Self {
        StateCodesConfig {
            default_category: StateCategory::Unknown,
            rules: Vec::new(),
        }
    }
}

/// One code or an inclusive range `from..=to`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct StateCodeRule {
    pub code: Option<i64>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub category: Option<StateCategory>,
    /// Optional reason text reported with the state (e.g. "material shortage").
    pub reason: Option<String>,
}

/// Machine state categories (`docs/oee.md`). `micro_stop` is derived, never configured.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum StateCategory {
    Running,
    UnplannedStop,
    Setup,
    PlannedStop,
    NotScheduled,
    #[default]
    Unknown,
}

/// `processing.analog_defaults`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct AnalogDefaults {
    /// Default maximum deadband silence in seconds for rules that set a deadband.
    pub max_silence_s: f64,
}

impl Default for AnalogDefaults {
    fn default() -> Self {
        AnalogDefaults {
            max_silence_s: 60.0,
        }
    }
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        ProcessingConfig {
            tag_mappings: Vec::new(),
            ideal_cycle_times: BTreeMap::new(),
            unmapped: UnmappedConfig::default(),
            state_codes: StateCodesConfig::default(),
            analog_defaults: AnalogDefaults::default(),
            max_tracked_sources: 1_000_000,
        }
    }
}

/// A resolved state code table.
#[derive(Clone, Debug, PartialEq)]
pub struct StateCodeTable {
    default: StateCategory,
    /// Sorted, non-overlapping inclusive ranges.
    ranges: Vec<(i64, i64, StateCategory, Option<Arc<str>>)>,
}

impl StateCodeTable {
    /// Category of a code no rule lists.
    pub fn default_category(&self) -> StateCategory {
        self.default
    }

    /// The rules as sorted, non-overlapping inclusive ranges `(from, to, category)`.
    pub fn ranges(&self) -> impl Iterator<Item = (i64, i64, StateCategory)> + '_ {
        self.ranges.iter().map(|r| (r.0, r.1, r.2))
    }

    pub fn category(&self, code: i64) -> (StateCategory, Option<&Arc<str>>) {
        let i = self.ranges.partition_point(|r| r.1 < code);
        match self.ranges.get(i) {
            Some((from, _, cat, reason)) if *from <= code => (*cat, reason.as_ref()),
            _ => (self.default, None),
        }
    }
}

impl StateCodesConfig {
    /// Validate and build the table; `path` is `processing.state_codes`.
    pub fn compile(&self, path: &str, errors: &mut Vec<PathError>) -> StateCodeTable {
        let rules_path = join_key(path, "rules");
        let mut ranges: Vec<(i64, i64, StateCategory, Option<String>, usize)> = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            let p = join_index(&rules_path, i);
            let range = match (r.code, r.from, r.to) {
                (Some(c), None, None) => Some((c, c)),
                (None, Some(f), Some(t)) if f <= t => Some((f, t)),
                (None, Some(f), Some(t)) => {
                    errors.push(PathError::new(
                        join_key(&p, "to"),
                        format!("the range is empty: `to` ({t}) is smaller than `from` ({f})"),
                    ));
                    None
                }
                _ => {
                    errors.push(PathError::new(
                        p.clone(),
                        "give either `code: N` or both `from: N` and `to: M` (an inclusive range)",
                    ));
                    None
                }
            };
            let Some(category) = r.category else {
                errors.push(PathError::new(
                    join_key(&p, "category"),
                    "missing `category` (running, unplanned_stop, setup, planned_stop, not_scheduled or unknown)",
                ));
                continue;
            };
            if let Some((f, t)) = range {
                ranges.push((f, t, category, r.reason.clone(), i));
            }
        }
        ranges.sort_by_key(|r| (r.0, r.1));
        for w in ranges.windows(2) {
            if w[1].0 <= w[0].1 {
                errors.push(PathError::new(
                    join_index(&rules_path, w[1].4),
                    format!(
                        "codes {}..={} overlap rule {} ({}..={}); each code must belong to exactly one rule",
                        w[1].0, w[1].1, w[0].4, w[0].0, w[0].1
                    ),
                ));
            }
        }
        StateCodeTable {
            default: self.default_category,
            ranges: ranges
                .into_iter()
                .map(|(f, t, c, r, _)| (f, t, c, r.map(Arc::from)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_code_table_lookup_and_overlaps() {
        let cfg = StateCodesConfig {
            default_category: StateCategory::UnplannedStop,
            rules: vec![
                StateCodeRule {
                    code: Some(1),
                    category: Some(StateCategory::Running),
                    ..Default::default()
                },
                StateCodeRule {
                    from: Some(100),
                    to: Some(199),
                    category: Some(StateCategory::Setup),
                    reason: Some("changeover".into()),
                    ..Default::default()
                },
            ],
        };
        let mut errors = Vec::new();
        let t = cfg.compile("processing.state_codes", &mut errors);
        assert!(errors.is_empty());
        assert_eq!(t.category(1), (StateCategory::Running, None));
        assert_eq!(
            t.category(150),
            (StateCategory::Setup, Some(&Arc::from("changeover")))
        );
        assert_eq!(t.category(199).0, StateCategory::Setup);
        assert_eq!(t.category(200).0, StateCategory::UnplannedStop);
        assert_eq!(t.category(-5).0, StateCategory::UnplannedStop);

        let bad = StateCodesConfig {
            default_category: StateCategory::Unknown,
            rules: vec![
                StateCodeRule {
                    from: Some(10),
                    to: Some(20),
                    category: Some(StateCategory::Running),
                    ..Default::default()
                },
                StateCodeRule {
                    code: Some(15),
                    category: Some(StateCategory::Setup),
                    ..Default::default()
                },
                StateCodeRule {
                    from: Some(5),
                    to: Some(1),
                    category: Some(StateCategory::Setup),
                    ..Default::default()
                },
                StateCodeRule {
                    code: Some(3),
                    ..Default::default()
                },
            ],
        };
        let mut errors = Vec::new();
        bad.compile("s", &mut errors);
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["s.rules[2].to", "s.rules[3].category", "s.rules[1]"]
        );
    }
}
