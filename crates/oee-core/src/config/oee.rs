//! `oee:` windows, micro-stops, unknown time, lateness, counters and shift calendars.
//! The computation that uses these keys arrives with issue 4; the keys, defaults and checks are
//! fixed here so the file format does not change under users.

use serde::Deserialize;

use super::yaml::{PathError, join_index, join_key};

/// `oee:`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct OeeConfig {
    pub windows: WindowsConfig,
    /// Unplanned stops shorter than this (whole duration, seconds) count as run time.
    /// 0 disables micro-stops.
    pub micro_stop_s: u64,
    /// Time without data (node dead, stale, before the first state).
    pub unknown_time: UnknownTimePolicy,
    /// Data later than this behind the newest event of its machine still recomputes its windows
    /// (event time, seconds).
    pub allowed_lateness_s: u64,
    /// Inputs up to this far behind the watermark still revise their windows; older ones are
    /// counted and dropped. Raw inputs are kept this long, so it sets the engine's memory.
    pub revision_horizon_s: u64,
    /// On start, the OEE engine and the fault instances are rebuilt from the stored telemetry
    /// of this long before its newest sample (seconds; 0 = no rebuild).
    pub rebuild_s: u64,
    /// A state older than this without a new sample becomes unknown (0 = never).
    pub stale_after_s: u64,
    /// Whether planned stops are a loss (Vorne style) instead of being excluded from planned time.
    pub planned_stop_is_loss: bool,
    /// MTBF operating time: `run_and_setup` (ISO 22400) or `run_only`.
    pub mtbf_basis: MtbfBasis,
    pub counters: CountersConfig,
    /// Optional shift calendars; a site without one has all time planned.
    pub calendars: Vec<CalendarConfig>,
}

impl Default for OeeConfig {
    fn default() -> Self {
        OeeConfig {
            windows: WindowsConfig::default(),
            micro_stop_s: 120,
            unknown_time: UnknownTimePolicy::Exclude,
            allowed_lateness_s: 300,
            revision_horizon_s: 7200,
            rebuild_s: 7200,
            stale_after_s: 0,
            planned_stop_is_loss: false,
            mtbf_basis: MtbfBasis::RunAndSetup,
            counters: CountersConfig::default(),
            calendars: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UnknownTimePolicy {
    /// Left out of planned production time (reported as `unknown_s`).
    #[default]
    Exclude,
    /// Counted as downtime.
    Downtime,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MtbfBasis {
    #[default]
    RunAndSetup,
    RunOnly,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum TumblingWindow {
    Hour,
    Shift,
    Day,
}

/// `oee.windows`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct WindowsConfig {
    /// Tumbling windows; `shift` and `day` need a calendar for the site (day falls back to UTC).
    pub tumbling: Vec<TumblingWindow>,
    pub rolling: RollingConfig,
}

impl Default for WindowsConfig {
    fn default() -> Self {
        WindowsConfig {
            tumbling: vec![TumblingWindow::Hour],
            rolling: RollingConfig::default(),
        }
    }
}

/// `oee.windows.rolling`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct RollingConfig {
    pub enabled: bool,
    /// Length of the rolling window in seconds.
    pub length_s: u64,
    /// How often (event time, seconds) the rolling window is re-emitted.
    pub emit_every_s: u64,
}

impl Default for RollingConfig {
    fn default() -> Self {
        RollingConfig {
            enabled: true,
            length_s: 3600,
            emit_every_s: 60,
        }
    }
}

/// `oee.counters`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct CountersConfig {
    /// Plausibility factor k: a delta above `ceil(Δt / ideal_cycle_time × k) + slack` is
    /// quarantined.
    pub plausibility_factor: f64,
    pub plausibility_slack: u64,
    /// A fixed cap on one delta instead (0 = use the factor).
    pub max_delta: u64,
}

impl Default for CountersConfig {
    fn default() -> Self {
        CountersConfig {
            plausibility_factor: 2.0,
            plausibility_slack: 10,
            max_delta: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// `oee.calendars[i]`
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct CalendarConfig {
    pub site_id: Option<String>,
    /// IANA zone such as `Europe/Berlin`.
    pub time_zone: Option<String>,
    pub shifts: Vec<ShiftConfig>,
}

/// `oee.calendars[i].shifts[j]`; a shift ending at or before its start ends the next day.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct ShiftConfig {
    pub name: Option<String>,
    /// Local start `HH:MM`.
    pub start: Option<String>,
    /// Local end `HH:MM`.
    pub end: Option<String>,
    /// Days the shift starts on (default every day).
    pub days: Vec<Weekday>,
    /// Breaks (planned stops) inside the shift.
    pub breaks: Vec<BreakConfig>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct BreakConfig {
    pub start: Option<String>,
    pub end: Option<String>,
}

/// Minutes since midnight from `HH:MM`.
pub fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// A plausible IANA zone name (`UTC`, `Area/Location[/Sub]`); the zone database check comes
/// with the calendar implementation.
pub fn plausible_time_zone(tz: &str) -> bool {
    if tz == "UTC" {
        return true;
    }
    let parts: Vec<&str> = tz.split('/').collect();
    parts.len() >= 2
        && parts.iter().all(|p| {
            p.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
        })
}

impl OeeConfig {
    pub fn validate(&self, path: &str, errors: &mut Vec<PathError>) {
        let w = join_key(path, "windows");
        let r = join_key(&w, "rolling");
        if self.windows.rolling.enabled {
            if self.windows.rolling.length_s == 0 {
                errors.push(PathError::new(
                    join_key(&r, "length_s"),
                    "the rolling window must be longer than 0 s",
                ));
            }
            if self.windows.rolling.emit_every_s == 0 {
                errors.push(PathError::new(
                    join_key(&r, "emit_every_s"),
                    "the re-emit interval must be at least 1 s",
                ));
            } else if self.windows.rolling.emit_every_s > self.windows.rolling.length_s {
                errors.push(PathError::new(
                    join_key(&r, "emit_every_s"),
                    format!(
                        "re-emitting every {} s is longer than the rolling window ({} s); results would skip time",
                        self.windows.rolling.emit_every_s, self.windows.rolling.length_s
                    ),
                ));
            }
        }
        let mut seen = Vec::new();
        for (i, t) in self.windows.tumbling.iter().enumerate() {
            if seen.contains(t) {
                errors.push(PathError::new(
                    join_index(&join_key(&w, "tumbling"), i),
                    format!("`{t:?}` is listed twice"),
                ));
            }
            seen.push(*t);
        }
        if seen.contains(&TumblingWindow::Shift) && self.calendars.is_empty() {
            errors.push(PathError::new(
                join_key(&w, "tumbling"),
                "shift windows need a shift calendar (`oee.calendars`)",
            ));
        }
        if self.revision_horizon_s < 60 {
            errors.push(PathError::new(
                join_key(path, "revision_horizon_s"),
                format!(
                    "must be at least 60 s (late data and failures that close later revise windows within it), got {}",
                    self.revision_horizon_s
                ),
            ));
        }
        let c = join_key(path, "counters");
        let f = self.counters.plausibility_factor;
        if !(f.is_finite() && f >= 1.0) {
            errors.push(PathError::new(
                join_key(&c, "plausibility_factor"),
                format!("must be a number of at least 1 (a machine cannot beat its ideal cycle time by more than this factor), got {f}"),
            ));
        }
        let cal = join_key(path, "calendars");
        let mut sites: Vec<&str> = Vec::new();
        for (i, k) in self.calendars.iter().enumerate() {
            let p = join_index(&cal, i);
            match k.site_id.as_deref() {
                None | Some("") => {
                    errors.push(PathError::new(join_key(&p, "site_id"), "missing `site_id`"))
                }
                Some(s) if sites.contains(&s) => errors.push(PathError::new(
                    join_key(&p, "site_id"),
                    format!("site `{s}` already has a calendar; one calendar per site"),
                )),
                Some(s) => sites.push(s),
            }
            match k.time_zone.as_deref() {
                None => errors.push(PathError::new(join_key(&p, "time_zone"), "missing `time_zone` (an IANA zone such as Europe/Berlin)")),
                Some(tz) if !plausible_time_zone(tz) => errors.push(PathError::new(
                    join_key(&p, "time_zone"),
                    format!("`{tz}` is not an IANA time zone name (like Europe/Berlin or America/Chicago)"),
                )),
                _ => {}
            }
            if k.shifts.is_empty() {
                errors.push(PathError::new(
                    join_key(&p, "shifts"),
                    "a calendar needs at least one shift",
                ));
            }
            for (j, s) in k.shifts.iter().enumerate() {
                let sp = join_index(&join_key(&p, "shifts"), j);
                if s.name.as_deref().unwrap_or("").is_empty() {
                    errors.push(PathError::new(
                        join_key(&sp, "name"),
                        "missing shift `name`",
                    ));
                }
                let start = hhmm(&s.start, &join_key(&sp, "start"), errors);
                let end = hhmm(&s.end, &join_key(&sp, "end"), errors);
                let (Some(start), Some(end)) = (start, end) else {
                    continue;
                };
                // minutes from shift start, shifts crossing midnight end the next day
                let len = if end > start {
                    end - start
                } else {
                    end + 1440 - start
                };
                for (b, br) in s.breaks.iter().enumerate() {
                    let bp = join_index(&join_key(&sp, "breaks"), b);
                    let bs = hhmm(&br.start, &join_key(&bp, "start"), errors);
                    let be = hhmm(&br.end, &join_key(&bp, "end"), errors);
                    let (Some(bs), Some(be)) = (bs, be) else {
                        continue;
                    };
                    let off = |m: u32| (m + 1440 - start) % 1440;
                    if !(off(bs) < off(be) && off(be) <= len) {
                        errors.push(PathError::new(
                            bp,
                            format!(
                                "the break {}–{} is not inside the shift {}–{}",
                                br.start.as_deref().unwrap_or(""),
                                br.end.as_deref().unwrap_or(""),
                                s.start.as_deref().unwrap_or(""),
                                s.end.as_deref().unwrap_or("")
                            ),
                        ));
                    }
                }
            }
        }
    }
}

fn hhmm(v: &Option<String>, path: &str, errors: &mut Vec<PathError>) -> Option<u32> {
    match v.as_deref() {
        None => {
            errors.push(PathError::new(
                path,
                "missing time (`HH:MM`, local time of the site)",
            ));
            None
        }
        Some(s) => {
            let r = parse_hhmm(s);
            if r.is_none() {
                errors.push(PathError::new(
                    path,
                    format!("`{s}` is not a time of day `HH:MM` (00:00 to 23:59)"),
                ));
            }
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let mut e = Vec::new();
        OeeConfig::default().validate("oee", &mut e);
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn hhmm_and_zones() {
        assert_eq!(parse_hhmm("06:30"), Some(390));
        assert_eq!(parse_hhmm("24:00"), None);
        assert_eq!(parse_hhmm("6:30"), None);
        assert!(plausible_time_zone("Europe/Berlin"));
        assert!(plausible_time_zone("America/Argentina/Buenos_Aires"));
        assert!(plausible_time_zone("UTC"));
        assert!(!plausible_time_zone("CET+1"));
        assert!(!plausible_time_zone("europe/berlin"));
    }

    #[test]
    fn calendar_checks() {
        let cfg = OeeConfig {
            calendars: vec![CalendarConfig {
                site_id: Some("S".into()),
                time_zone: Some("Berlin".into()),
                shifts: vec![ShiftConfig {
                    name: Some("night".into()),
                    start: Some("22:00".into()),
                    end: Some("06:00".into()),
                    days: vec![],
                    breaks: vec![
                        BreakConfig {
                            start: Some("02:00".into()),
                            end: Some("02:30".into()),
                        },
                        BreakConfig {
                            start: Some("07:00".into()),
                            end: Some("07:30".into()),
                        },
                    ],
                }],
            }],
            ..OeeConfig::default()
        };
        let mut e = Vec::new();
        cfg.validate("oee", &mut e);
        let paths: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "oee.calendars[0].time_zone",
                "oee.calendars[0].shifts[0].breaks[1]"
            ]
        );
    }
}
