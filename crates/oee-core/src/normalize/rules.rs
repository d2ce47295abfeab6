//! Compiled tag-mapping rules: validation of `processing.tag_mappings` and the index used to
//! find the rule for a metric.
//!
//! Precedence: an exact rule (no wildcard) beats every pattern; among matching patterns the one
//! with the most literal characters wins; two patterns with equal literal characters that can
//! match the same metric are a configuration error (checked when the file is loaded, so it
//! never has to be decided at run time). Rule order in the file does not matter.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use foldhash::HashMap as FastMap;

use super::deadband::Deadband;
use super::pattern::{SourceId, SourcePattern};
use super::units::{Dimension, Linear, Unit, suggest};
use crate::config::processing::{ProcessingConfig, StateCodeTable, TagMapping};
use crate::config::yaml::{PathError, join_index, join_key};

/// Canonical signal types.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SignalType {
    CounterTotal,
    CounterGood,
    CounterReject,
    StateRunning,
    StateCode,
    FaultActive,
    FaultCode,
    /// Any other name: an analog value for telemetry (temperature, pressure, speed …).
    Analog(Arc<str>),
    /// An unmapped metric passed to telemetry as it came.
    Raw,
}

pub const CANONICAL_SIGNAL_TYPES: &[&str] = &[
    "counter.total",
    "counter.good",
    "counter.reject",
    "state.running",
    "state.code",
    "fault.active",
    "fault.code",
];

impl SignalType {
    pub fn parse(s: &str) -> Result<SignalType, String> {
        Ok(match s {
            "counter.total" => SignalType::CounterTotal,
            "counter.good" => SignalType::CounterGood,
            "counter.reject" => SignalType::CounterReject,
            "state.running" => SignalType::StateRunning,
            "state.code" => SignalType::StateCode,
            "fault.active" => SignalType::FaultActive,
            "fault.code" => SignalType::FaultCode,
            "raw" => return Err("`raw` is reserved for unmapped metrics".into()),
            _ => {
                let reserved = ["counter.", "state.", "fault."]
                    .iter()
                    .any(|p| s.starts_with(p));
                if reserved {
                    return Err(format!(
                        "unknown signal type `{s}`; the counter/state/fault types are: {}",
                        CANONICAL_SIGNAL_TYPES.join(", ")
                    ));
                }
                let ok = s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    && s.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')
                    });
                if !ok {
                    return Err(format!(
                        "`{s}` is not a valid signal type: use one of {} or an analog name in lower case \
                         (letters, digits, `_`, `.`, `-`), such as `temperature`",
                        CANONICAL_SIGNAL_TYPES.join(", ")
                    ));
                }
                SignalType::Analog(Arc::from(s))
            }
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            SignalType::CounterTotal => "counter.total",
            SignalType::CounterGood => "counter.good",
            SignalType::CounterReject => "counter.reject",
            SignalType::StateRunning => "state.running",
            SignalType::StateCode => "state.code",
            SignalType::FaultActive => "fault.active",
            SignalType::FaultCode => "fault.code",
            SignalType::Analog(s) => s,
            SignalType::Raw => "raw",
        }
    }

    pub fn is_counter(&self) -> bool {
        matches!(
            self,
            SignalType::CounterTotal | SignalType::CounterGood | SignalType::CounterReject
        )
    }

    pub fn is_analog(&self) -> bool {
        matches!(self, SignalType::Analog(_))
    }
}

impl fmt::Display for SignalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text with `{capture}` placeholders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<TPart>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum TPart {
    Lit(String),
    Cap(usize),
}

impl Template {
    fn parse(s: &str, captures: &[String], source_tag: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(TPart::Lit(rest[..open].to_string()));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(format!("`{s}`: `{{` is not closed with `}}`"));
            };
            let name = &rest[open + 1..open + close];
            match captures.iter().position(|c| c == name) {
                Some(i) => parts.push(TPart::Cap(i)),
                None if captures.is_empty() => {
                    return Err(format!(
                        "uses `{{{name}}}` but source_tag `{source_tag}` has no captures"
                    ));
                }
                None => {
                    return Err(format!(
                        "uses `{{{name}}}` but source_tag `{source_tag}` only captures {}",
                        captures
                            .iter()
                            .map(|c| format!("{{{c}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(TPart::Lit(rest.to_string()));
        }
        Ok(Template { parts })
    }

    pub fn literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [TPart::Lit(s)] => Some(s),
            _ => None,
        }
    }

    pub fn render(&self, caps: &[&str]) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                TPart::Lit(s) => out.push_str(s),
                TPart::Cap(i) => out.push_str(caps.get(*i).copied().unwrap_or("")),
            }
        }
        out
    }
}

/// One validated rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Position in `processing.tag_mappings`.
    pub index: usize,
    pub pattern: SourcePattern,
    pub signal_type: SignalType,
    pub site_id: Template,
    pub line_id: Template,
    pub machine_id: Template,
    pub labels: Vec<(String, Template)>,
    /// Unit of the output value.
    pub unit: Option<Unit>,
    /// Applied to numeric analog values.
    pub transform: Linear,
    pub deadband: Deadband,
    pub min_quality: Option<i32>,
    pub fault_code: Option<i64>,
    specificity: usize,
}

/// All rules, indexed for lookup, plus the other processing tables.
#[derive(Clone, Debug)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// `group/edge_node/device/metric` → rule.
    exact: FastMap<String, u32>,
    /// Patterns by literal group and edge node, by literal group, and the rest; each sorted by
    /// specificity, highest first.
    by_group_node: FastMap<(String, String), Vec<u32>>,
    by_group: FastMap<String, Vec<u32>>,
    wild: Vec<u32>,
    pub ideal_cycle_times: BTreeMap<String, f64>,
    pub state_codes: StateCodeTable,
    pub config: ProcessingConfig,
    /// Non-fatal findings (such as names differing only in letter case).
    pub warnings: Vec<PathError>,
}

/// The joined identity key: `group/edge_node/device/metric` (device empty for node metrics).
pub fn identity_key(out: &mut String, id: &SourceId<'_>) {
    out.clear();
    out.push_str(id.group);
    out.push('/');
    out.push_str(id.edge_node);
    out.push('/');
    out.push_str(id.device.unwrap_or(""));
    out.push('/');
    out.push_str(id.metric);
}

impl RuleSet {
    /// Validate `processing` and build the rule index. All errors are returned at once, each
    /// with its key path under `processing`.
    pub fn compile(cfg: &ProcessingConfig) -> Result<RuleSet, Vec<PathError>> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let base = "processing.tag_mappings";
        let mut rules = Vec::with_capacity(cfg.tag_mappings.len());
        for (i, m) in cfg.tag_mappings.iter().enumerate() {
            let p = join_index(base, i);
            if let Some(r) = compile_rule(i, m, &p, cfg, &mut errors) {
                rules.push(r);
            }
        }

        // Exact rules: duplicates, and names differing only in letter case.
        let mut exact: FastMap<String, u32> = FastMap::default();
        let mut lower: HashMap<String, usize> = HashMap::new();
        let mut by_group_node: FastMap<(String, String), Vec<u32>> = FastMap::default();
        let mut by_group: FastMap<String, Vec<u32>> = FastMap::default();
        let mut wild = Vec::new();
        let mut targets: HashMap<(String, String, String, String), usize> = HashMap::new();
        for (ri, r) in rules.iter().enumerate() {
            let ri = u32::try_from(ri).unwrap_or(u32::MAX);
            if r.pattern.is_exact() {
                let key = r.pattern.to_string();
                if let Some(&first) = exact.get(&key) {
                    errors.push(PathError::new(
                        join_key(&join_index(base, r.index), "source_tag"),
                        format!(
                            "`{key}` is already mapped by {}; a metric can be mapped by one rule only",
                            join_index(base, rules[first as usize].index)
                        ),
                    ));
                    continue;
                }
                if let Some(&other) = lower.get(&key.to_lowercase()) {
                    warnings.push(PathError::new(
                        join_key(&join_index(base, r.index), "source_tag"),
                        format!(
                            "`{key}` differs from the source_tag of {} only in letter case; names are case-sensitive, so both rules apply to different metrics",
                            join_index(base, other)
                        ),
                    ));
                }
                lower.insert(key.to_lowercase(), r.index);
                exact.insert(key, ri);
                // Two exact rules feeding the same signal of the same machine.
                if let (Some(s), Some(l), Some(m)) = (
                    r.site_id.literal(),
                    r.line_id.literal(),
                    r.machine_id.literal(),
                ) && !r.signal_type.is_analog()
                {
                    // `fault.active` signals of one machine differ by their fault code.
                    let k = (
                        s.to_string(),
                        l.to_string(),
                        m.to_string(),
                        match (&r.signal_type, r.fault_code) {
                            (SignalType::FaultActive, Some(c)) => format!("fault.active:{c}"),
                            (t, _) => t.to_string(),
                        },
                    );
                    if let Some(&first) = targets.get(&k) {
                        errors.push(PathError::new(
                            join_key(&join_index(base, r.index), "signal_type"),
                            format!(
                                "{} of machine `{m}` is already fed by {}; two metrics for one counter/state/fault signal would mix their values",
                                r.signal_type,
                                join_index(base, first)
                            ),
                        ));
                    } else {
                        targets.insert(k, r.index);
                    }
                }
            } else {
                match (r.pattern.group.literal(), r.pattern.edge_node.literal()) {
                    (Some(g), Some(n)) => by_group_node
                        .entry((g.to_string(), n.to_string()))
                        .or_default()
                        .push(ri),
                    (Some(g), None) => by_group.entry(g.to_string()).or_default().push(ri),
                    _ => wild.push(ri),
                }
            }
        }
        let spec = |i: &u32| std::cmp::Reverse(rules[*i as usize].specificity);
        by_group_node.values_mut().for_each(|v| v.sort_by_key(spec));
        by_group.values_mut().for_each(|v| v.sort_by_key(spec));
        wild.sort_by_key(spec);

        check_ties(&rules, &by_group_node, &by_group, &wild, &mut errors);

        let ict = join_key("processing", "ideal_cycle_times");
        for (machine, secs) in &cfg.ideal_cycle_times {
            if !(secs.is_finite() && *secs > 0.0) {
                errors.push(PathError::new(
                    join_key(&ict, machine),
                    format!("the ideal cycle time of `{machine}` must be a number of seconds above 0, got {secs}"),
                ));
            }
            if machine.is_empty() {
                errors.push(PathError::new(join_key(&ict, machine), "empty machine_id"));
            }
        }
        let state_codes = cfg
            .state_codes
            .compile("processing.state_codes", &mut errors);
        if cfg.max_tracked_sources == 0 {
            errors.push(PathError::new(
                "processing.max_tracked_sources",
                "must be at least 1",
            ));
        }

        if errors.is_empty() {
            Ok(RuleSet {
                rules,
                exact,
                by_group_node,
                by_group,
                wild,
                ideal_cycle_times: cfg.ideal_cycle_times.clone(),
                state_codes,
                config: cfg.clone(),
                warnings,
            })
        } else {
            Err(errors)
        }
    }

    /// Find the rule for an identity; `key` is its [`identity_key`]. Captures go to `caps`
    /// (cleared first).
    pub fn resolve<'t>(
        &self,
        id: &SourceId<'t>,
        key: &str,
        caps: &mut Vec<&'t str>,
    ) -> Option<usize> {
        caps.clear();
        if let Some(&i) = self.exact.get(key) {
            return Some(i as usize);
        }
        let mut best: Option<(usize, usize, Vec<&'t str>)> = None;
        let lists = [
            self.by_group_node
                .get(&(id.group.to_string(), id.edge_node.to_string())),
            self.by_group.get(id.group),
            Some(&self.wild),
        ];
        let mut scratch: Vec<&'t str> = Vec::new();
        for list in lists.into_iter().flatten() {
            for &i in list {
                let r = &self.rules[i as usize];
                if best.as_ref().is_some_and(|b| b.0 >= r.specificity) {
                    break;
                }
                scratch.clear();
                scratch.resize(r.pattern.captures.len(), "");
                if r.pattern.matches(id, &mut scratch) {
                    best = Some((r.specificity, i as usize, scratch.clone()));
                    break;
                }
            }
        }
        best.map(|(_, r, c)| {
            *caps = c;
            r
        })
    }

    /// The `fault_code` of the rule that maps `id` (for `fault.active` rules).
    pub fn fault_code_of(&self, id: &SourceId<'_>) -> Option<i64> {
        let mut key = String::new();
        identity_key(&mut key, id);
        let i = self.resolve(id, &key, &mut Vec::new())?;
        self.rules.get(i)?.fault_code
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Report pairs of patterns with equal specificity that can match the same metric.
fn check_ties(
    rules: &[Rule],
    by_group_node: &FastMap<(String, String), Vec<u32>>,
    by_group: &FastMap<String, Vec<u32>>,
    wild: &[u32],
    errors: &mut Vec<PathError>,
) {
    let mut reported = std::collections::HashSet::new();
    let mut check = |a: u32, b: u32, errors: &mut Vec<PathError>| {
        let (ra, rb) = (&rules[a as usize], &rules[b as usize]);
        if a == b || ra.specificity != rb.specificity {
            return;
        }
        let (first, second) = if ra.index < rb.index {
            (ra, rb)
        } else {
            (rb, ra)
        };
        if !reported.insert((first.index, second.index)) || !ra.pattern.overlaps(&rb.pattern) {
            return;
        }
        errors.push(PathError::new(
            join_key(&join_index("processing.tag_mappings", second.index), "source_tag"),
            format!(
                "`{}` and `{}` ({}) are equally specific and can match the same metric; make one more specific or narrow one so they cannot overlap",
                second.pattern,
                first.pattern,
                join_index("processing.tag_mappings", first.index)
            ),
        ));
    };
    // Same bucket: sorted by specificity, so only neighbours with equal specificity are compared.
    let same_bucket = |list: &[u32],
                       check: &mut dyn FnMut(u32, u32, &mut Vec<PathError>),
                       errors: &mut Vec<PathError>| {
        for (k, &a) in list.iter().enumerate() {
            for &b in &list[k + 1..] {
                if rules[b as usize].specificity != rules[a as usize].specificity {
                    break;
                }
                check(a, b, errors);
            }
        }
    };
    for list in by_group_node.values() {
        same_bucket(list, &mut check, errors);
    }
    for list in by_group.values() {
        same_bucket(list, &mut check, errors);
    }
    same_bucket(wild, &mut check, errors);
    // Across buckets: group-only patterns against group+node ones of that group; wild ones
    // against everything.
    for ((g, _), list) in by_group_node {
        if let Some(gl) = by_group.get(g) {
            for &a in gl {
                for &b in list {
                    check(a, b, errors);
                }
            }
        }
    }
    for &a in wild {
        for list in by_group_node.values().chain(by_group.values()) {
            for &b in list {
                check(a, b, errors);
            }
        }
    }
}

fn compile_rule(
    index: usize,
    m: &TagMapping,
    p: &str,
    cfg: &ProcessingConfig,
    errors: &mut Vec<PathError>,
) -> Option<Rule> {
    let n_before = errors.len();
    let err = |errors: &mut Vec<PathError>, key: &str, msg: String| {
        errors.push(PathError::new(join_key(p, key), msg))
    };

    let pattern = match m.source_tag.as_deref() {
        None => {
            errors.push(PathError::new(
                p,
                "missing `source_tag` (group/edge_node/device/metric)",
            ));
            None
        }
        Some(tag) => match SourcePattern::parse(tag) {
            Ok(pat) => Some(pat),
            Err(e) => {
                err(errors, "source_tag", e);
                None
            }
        },
    };
    let signal_type = match m.signal_type.as_deref() {
        None => {
            errors.push(PathError::new(
                p,
                format!(
                    "missing `signal_type` ({} or an analog name)",
                    CANONICAL_SIGNAL_TYPES.join(", ")
                ),
            ));
            None
        }
        Some(s) => match SignalType::parse(s) {
            Ok(t) => Some(t),
            Err(e) => {
                err(errors, "signal_type", e);
                None
            }
        },
    };

    let captures: Vec<String> = pattern
        .as_ref()
        .map(|p| p.captures.clone())
        .unwrap_or_default();
    let tag = m.source_tag.as_deref().unwrap_or("");
    // When source_tag itself is broken its captures are unknown: do not report every
    // placeholder as a second error.
    let check_captures = pattern.is_some();
    let template = |key: &str, v: Option<&str>, errors: &mut Vec<PathError>| -> Template {
        match Template::parse(v.unwrap_or(""), &captures, tag) {
            Ok(t) => t,
            Err(e) => {
                if check_captures {
                    err(errors, key, e);
                }
                Template { parts: Vec::new() }
            }
        }
    };
    if m.machine_id.as_deref().unwrap_or("").is_empty() {
        errors.push(PathError::new(
            p,
            "missing `machine_id` (the asset this metric belongs to)",
        ));
    }
    let machine_id = template("machine_id", m.machine_id.as_deref(), errors);
    let line_id = template("line_id", m.line_id.as_deref(), errors);
    let site_id = template("site_id", m.site_id.as_deref(), errors);
    let labels: Vec<(String, Template)> = m
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), template(&join_key("labels", k), Some(v), errors)))
        .collect();

    let unit_of = |key: &str, name: Option<&str>, errors: &mut Vec<PathError>| -> Option<Unit> {
        let name = name?;
        let u = Unit::parse(name);
        if u.is_none() {
            let hint = suggest(name)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            err(
                errors,
                key,
                format!(
                    "unknown unit `{name}`{hint}; known units: {}",
                    Unit::canonical_names().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        u
    };
    let source_unit = unit_of("source_unit", m.source_unit.as_deref(), errors);
    let target_unit = unit_of("target_unit", m.target_unit.as_deref(), errors);

    let is_analog = signal_type.as_ref().is_some_and(SignalType::is_analog);
    let is_counter = signal_type.as_ref().is_some_and(SignalType::is_counter);
    let kind = signal_type
        .as_ref()
        .map(|t| t.to_string())
        .unwrap_or_default();

    // Options that only make sense for analog values.
    if signal_type.is_some() && !is_analog {
        for (key, set) in [
            ("scale_factor", m.scale_factor.is_some()),
            ("offset", m.offset.is_some()),
            ("deadband_absolute", m.deadband_absolute.is_some()),
            ("deadband_percent", m.deadband_percent.is_some()),
            ("span_low", m.span_low.is_some()),
            ("span_high", m.span_high.is_some()),
            ("max_silence_s", m.max_silence_s.is_some()),
        ] {
            if set {
                err(
                    errors,
                    key,
                    format!(
                        "`{key}` applies to analog signals only; `{kind}` values are used exactly as sent"
                    ),
                );
            }
        }
        for (key, u) in [("source_unit", source_unit), ("target_unit", target_unit)] {
            match u {
                Some(u) if !(is_counter && u.dimension == Dimension::Count) => err(
                    errors,
                    key,
                    if is_counter {
                        format!("a counter is counted in `count`, not `{}`", u.name)
                    } else {
                        format!("`{kind}` has no unit (remove `{key}`)")
                    },
                ),
                _ => {}
            }
        }
    }

    // Unit conversion vs scale/offset.
    let mut transform = Linear::IDENTITY;
    let unit = target_unit.or(source_unit);
    if is_analog {
        for (key, v) in [("scale_factor", m.scale_factor), ("offset", m.offset)] {
            if let Some(v) = v
                && !v.is_finite()
            {
                err(errors, key, format!("must be a finite number, got {v}"));
            }
        }
        if m.scale_factor == Some(0.0) {
            err(
                errors,
                "scale_factor",
                "a scale_factor of 0 turns every value into the offset".into(),
            );
        }
        let given = Linear {
            scale: m.scale_factor.unwrap_or(1.0),
            offset: m.offset.unwrap_or(0.0),
        };
        match (source_unit, target_unit) {
            (Some(s), Some(t)) => match s.conversion_to(&t) {
                None => err(
                    errors,
                    "target_unit",
                    format!(
                        "cannot convert `{}` ({}) to `{}` ({}); source_unit and target_unit must measure the same quantity",
                        s.name, s.dimension, t.name, t.dimension
                    ),
                ),
                Some(exact) if exact.is_identity() => transform = given,
                Some(exact) => {
                    if (m.scale_factor.is_some() || m.offset.is_some())
                        && !exact.agrees_with(given.scale, given.offset)
                    {
                        let key = if m.scale_factor.is_some() {
                            "scale_factor"
                        } else {
                            "offset"
                        };
                        err(
                            errors,
                            key,
                            format!(
                                "scale_factor {} and offset {} contradict the conversion {} → {} (× {:.6} {:+.6}); remove scale_factor/offset to use the exact conversion, or drop source_unit to apply only your own scaling",
                                given.scale,
                                given.offset,
                                s.name,
                                t.name,
                                exact.scale,
                                exact.offset
                            ),
                        );
                    }
                    // The exact table conversion is applied; a matching scale/offset is documentation.
                    transform = exact;
                }
            },
            _ => transform = given,
        }
    }

    // Deadband.
    let mut deadband = Deadband::NONE;
    if is_analog {
        let silence = m.max_silence_s.unwrap_or(cfg.analog_defaults.max_silence_s);
        if !(silence.is_finite() && silence > 0.0) {
            let key = if m.max_silence_s.is_some() {
                join_key(p, "max_silence_s")
            } else {
                "processing.analog_defaults.max_silence_s".into()
            };
            errors.push(PathError::new(
                key,
                format!("the maximum silence must be more than 0 seconds, got {silence}"),
            ));
        }
        let silence_ms = Some((silence * 1000.0).round() as i64);
        match (m.deadband_absolute, m.deadband_percent) {
            (Some(_), Some(_)) => err(
                errors,
                "deadband_percent",
                "set either deadband_absolute or deadband_percent, not both".into(),
            ),
            (Some(a), None) => {
                if !(a.is_finite() && a >= 0.0) {
                    err(
                        errors,
                        "deadband_absolute",
                        format!("the deadband must be 0 or more, got {a}"),
                    );
                }
                deadband = Deadband::absolute(a, silence_ms);
            }
            (None, Some(pct)) => {
                if !(pct.is_finite() && (0.0..=100.0).contains(&pct)) {
                    err(
                        errors,
                        "deadband_percent",
                        format!("must be a percentage from 0 to 100, got {pct}"),
                    );
                }
                match (m.span_low, m.span_high) {
                    (Some(lo), Some(hi)) if hi > lo => deadband = Deadband::percent(pct, lo, hi, silence_ms),
                    (Some(lo), Some(hi)) => err(
                        errors,
                        "span_high",
                        format!("span_high ({hi}) must be above span_low ({lo}) for a percent deadband"),
                    ),
                    _ => err(
                        errors,
                        "deadband_percent",
                        "a percent deadband needs span_low and span_high (the measuring range, in target units)".into(),
                    ),
                }
            }
            (None, None) => {
                if m.max_silence_s.is_some() {
                    err(
                        errors,
                        "max_silence_s",
                        "max_silence_s only applies together with a deadband".into(),
                    );
                }
            }
        }
    }

    if let Some(q) = m.min_quality
        && !(0..=192).contains(&q)
    {
        err(
            errors,
            "min_quality",
            format!(
                "must be from 0 to 192 (Sparkplug quality: 0 bad, 192 good, 500 stale), got {q}"
            ),
        );
    }
    match (&signal_type, m.fault_code) {
        (Some(SignalType::FaultActive), None) => {
            errors.push(PathError::new(
                p,
                "`fault.active` needs `fault_code`: the code this boolean stands for",
            ));
        }
        (Some(t), Some(_)) if *t != SignalType::FaultActive => {
            err(
                errors,
                "fault_code",
                format!("fault_code only applies to `fault.active`, not `{t}`"),
            );
        }
        _ => {}
    }

    if errors.len() > n_before {
        return None;
    }
    let pattern = pattern?;
    Some(Rule {
        index,
        specificity: pattern.specificity(),
        pattern,
        signal_type: signal_type?,
        site_id,
        line_id,
        machine_id,
        labels,
        unit,
        transform,
        deadband,
        min_quality: m.min_quality,
        fault_code: m.fault_code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(tag: &str, ty: &str, machine: &str) -> TagMapping {
        TagMapping {
            source_tag: Some(tag.into()),
            signal_type: Some(ty.into()),
            machine_id: Some(machine.into()),
            ..Default::default()
        }
    }

    fn compile(maps: Vec<TagMapping>) -> Result<RuleSet, Vec<PathError>> {
        RuleSet::compile(&ProcessingConfig {
            tag_mappings: maps,
            ..Default::default()
        })
    }

    fn errs(maps: Vec<TagMapping>) -> Vec<String> {
        compile(maps)
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    fn resolve_index(
        rs: &RuleSet,
        g: &str,
        n: &str,
        d: Option<&str>,
        m: &str,
    ) -> Option<(usize, Vec<String>)> {
        let id = SourceId {
            group: g,
            edge_node: n,
            device: d,
            metric: m,
        };
        let mut key = String::new();
        identity_key(&mut key, &id);
        let mut caps = Vec::new();
        rs.resolve(&id, &key, &mut caps).map(|r| {
            (
                rs.rules[r].index,
                caps.iter().map(|s| s.to_string()).collect(),
            )
        })
    }

    #[test]
    fn exact_beats_pattern_and_most_specific_pattern_wins() {
        let rs = compile(vec![
            mapping("P/{line}/{m}/Count", "counter.total", "{m}"),
            mapping("P/L1/{m}/Count", "counter.total", "L1-{m}"),
            mapping("P/L1/M1/Count", "counter.total", "special"),
            mapping("*/{line}/{m}/Count", "counter.total", "any-{m}"),
        ])
        .unwrap();
        assert_eq!(
            resolve_index(&rs, "P", "L1", Some("M1"), "Count")
                .unwrap()
                .0,
            2
        );
        assert_eq!(
            resolve_index(&rs, "P", "L1", Some("M2"), "Count"),
            Some((1, vec!["M2".into()]))
        );
        assert_eq!(
            resolve_index(&rs, "P", "L2", Some("M2"), "Count"),
            Some((0, vec!["L2".into(), "M2".into()]))
        );
        assert_eq!(
            resolve_index(&rs, "Q", "L2", Some("M2"), "Count")
                .unwrap()
                .0,
            3
        );
        assert_eq!(resolve_index(&rs, "P", "L2", Some("M2"), "Temp"), None);
        // case-sensitive
        assert_eq!(resolve_index(&rs, "P", "L1", Some("M1"), "count"), None);
    }

    #[test]
    fn precedence_does_not_depend_on_order() {
        let a = mapping("P/{line}/{m}/Count", "counter.total", "{m}");
        let b = mapping("P/L1/{m}/Count", "counter.total", "L1-{m}");
        let rs1 = compile(vec![a.clone(), b.clone()]).unwrap();
        let rs2 = compile(vec![b, a]).unwrap();
        assert_eq!(
            resolve_index(&rs1, "P", "L1", Some("M"), "Count")
                .unwrap()
                .0,
            1
        );
        assert_eq!(
            resolve_index(&rs2, "P", "L1", Some("M"), "Count")
                .unwrap()
                .0,
            0
        );
    }

    #[test]
    fn ties_are_errors() {
        let e = errs(vec![
            mapping("P/L1/{m}/Count", "counter.total", "{m}"),
            mapping("P/{line}/M1/Count", "counter.total", "{line}"),
        ]);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(
                "processing.tag_mappings[1].source_tag: `P/{line}/M1/Count` and `P/L1/{m}/Count`"
            ),
            "{e:?}"
        );
        // equal specificity but disjoint: fine
        compile(vec![
            mapping("P/L1/{m}/Count", "counter.total", "{m}"),
            mapping("P/L2/{m}/Count", "counter.total", "{m}"),
            mapping("*/L1/{m}/Temp", "temperature", "{m}"),
        ])
        .unwrap();
        // across buckets: a wildcard group against a literal group with a wildcard node
        let e = errs(vec![
            mapping("GG/*/{m}/Count", "counter.total", "{m}"),
            mapping("*/L1/{m}/Count", "counter.total", "{m}"),
        ]);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("processing.tag_mappings[1].source_tag"),
            "{e:?}"
        );
    }

    #[test]
    fn one_machine_has_many_alarms_but_one_per_code() {
        let alarm = |tag: &str, code: i64| TagMapping {
            fault_code: Some(code),
            ..mapping(tag, "fault.active", "M")
        };
        compile(vec![alarm("G/N/D/Jam", 1001), alarm("G/N/D/Door", 2002)])
            .expect("different fault codes");
        let e = errs(vec![alarm("G/N/D/Jam", 1001), alarm("G/N/D/Jam2", 1001)]);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("processing.tag_mappings[1].signal_type"),
            "{e:?}"
        );
    }

    #[test]
    fn a_fault_flag_is_found_back_by_its_source_identity() {
        let alarm = |tag: &str, code: i64| TagMapping {
            fault_code: Some(code),
            ..mapping(tag, "fault.active", "{m}")
        };
        let rs = compile(vec![
            alarm("G/N/{m}/Jam", 1001),
            TagMapping {
                fault_code: Some(1002),
                ..mapping("G/N/Press1/Jam", "fault.active", "Press1")
            },
            mapping("G/N/{m}/Count", "counter.total", "{m}"),
        ])
        .unwrap();
        let id = |d: &'static str, m: &'static str| SourceId {
            group: "G",
            edge_node: "N",
            device: Some(d),
            metric: m,
        };
        assert_eq!(rs.fault_code_of(&id("Press2", "Jam")), Some(1001));
        assert_eq!(rs.fault_code_of(&id("Press1", "Jam")), Some(1002));
        assert_eq!(rs.fault_code_of(&id("Press1", "Count")), None);
        assert_eq!(rs.fault_code_of(&id("Press1", "Door")), None);
    }

    #[test]
    fn duplicates_and_collisions() {
        let e = errs(vec![
            mapping("/G/N/D/Count", "counter.total", "M"),
            mapping("G/N/D/Count", "temperature", "M"),
            mapping("G/N/D/Count2", "counter.total", "M"),
        ]);
        assert_eq!(
            e,
            [
                "processing.tag_mappings[1].source_tag: `G/N/D/Count` is already mapped by processing.tag_mappings[0]; a metric can be mapped by one rule only",
                "processing.tag_mappings[2].signal_type: counter.total of machine `M` is already fed by processing.tag_mappings[0]; two metrics for one counter/state/fault signal would mix their values",
            ]
        );
        let rs = compile(vec![
            mapping("G/N/D/Temp", "temperature", "M"),
            mapping("G/N/D/temp", "temperature", "M"),
        ])
        .unwrap();
        assert_eq!(rs.warnings.len(), 1);
    }

    #[test]
    fn value_checks() {
        let mut bad_units = mapping("G/N/D/T", "temperature", "M");
        bad_units.source_unit = Some("fahrenheit".into());
        bad_units.target_unit = Some("bar".into());
        let mut unknown = mapping("G/N/D/T2", "temperature", "M");
        unknown.target_unit = Some("Celsius".into());
        let mut contradict = mapping("G/N/D/T3", "temperature", "M");
        contradict.source_unit = Some("fahrenheit".into());
        contradict.target_unit = Some("celsius".into());
        contradict.scale_factor = Some(0.5);
        let mut counter_db = mapping("G/N/D/C", "counter.total", "M");
        counter_db.deadband_absolute = Some(1.0);
        counter_db.target_unit = Some("kg".into());
        let mut neg_db = mapping("G/N/D/T4", "pressure", "M");
        neg_db.deadband_absolute = Some(-1.0);
        let mut pct = mapping("G/N/D/T5", "pressure", "M");
        pct.deadband_percent = Some(1.0);
        let mut fault = mapping("G/N/D/F", "fault.active", "M");
        fault.min_quality = Some(500);
        let e = errs(vec![
            bad_units,
            unknown,
            contradict,
            counter_db,
            neg_db,
            pct,
            fault,
            mapping("G/N/D/X", "counter.totl", "M"),
            mapping("G/N/D/Y", "temperature", "{machine}"),
            mapping("G/N/{dev}/Z", "temperature", "{machine}"),
        ]);
        let paths: Vec<&str> = e.iter().map(|s| s.split(':').next().unwrap()).collect();
        assert_eq!(
            paths,
            [
                "processing.tag_mappings[0].target_unit",
                "processing.tag_mappings[1].target_unit",
                "processing.tag_mappings[2].scale_factor",
                "processing.tag_mappings[3].deadband_absolute",
                "processing.tag_mappings[3].target_unit",
                "processing.tag_mappings[4].deadband_absolute",
                "processing.tag_mappings[5].deadband_percent",
                "processing.tag_mappings[6].min_quality",
                "processing.tag_mappings[6]",
                "processing.tag_mappings[7].signal_type",
                "processing.tag_mappings[8].machine_id",
                "processing.tag_mappings[9].machine_id",
            ],
            "{e:#?}"
        );
        assert!(e[1].contains("did you mean `celsius`?"), "{}", e[1]);
        assert!(e[10].contains("has no captures"), "{}", e[10]);
        assert!(e[11].contains("only captures {dev}"), "{}", e[11]);
    }

    #[test]
    fn seed_conversion_uses_the_exact_table() {
        let mut t = mapping("/Devices/Line1/M1/Temperature", "temperature", "M1");
        t.source_unit = Some("fahrenheit".into());
        t.target_unit = Some("celsius".into());
        t.scale_factor = Some(0.5556);
        t.offset = Some(-17.78);
        let rs = compile(vec![t]).unwrap();
        assert!((rs.rules[0].transform.apply(212.0) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn ideal_cycle_times_must_be_positive() {
        let cfg = ProcessingConfig {
            ideal_cycle_times: [
                ("M1".to_string(), -1.0),
                ("M2".to_string(), 0.0),
                ("M3".to_string(), 1.5),
            ]
            .into(),
            ..Default::default()
        };
        let e = RuleSet::compile(&cfg).unwrap_err();
        let paths: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "processing.ideal_cycle_times.M1",
                "processing.ideal_cycle_times.M2"
            ]
        );
    }
}
