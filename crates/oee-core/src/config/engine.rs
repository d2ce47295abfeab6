//! The validated configuration mapped onto the engine's parameters: `oee:` and `faults:` (and
//! `processing.ideal_cycle_times` / `processing.state_codes`) → [`OeeParams`] and
//! [`FaultParams`]. One row per line of the table "Parameters and their config keys" in
//! `docs/oee.md`. Pure: no I/O, no clock.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::civil::Time;

use super::Domain;
use super::oee::{
    MtbfBasis, OeeConfig, TumblingWindow, UnknownTimePolicy, Weekday, parse_hhmm,
    plausible_time_zone,
};
use super::processing::StateCategory;
use super::yaml::{PathError, join_index, join_key};
use crate::calendar::{Calendar, ShiftRule};
use crate::counters::Plausibility;
use crate::faults::{FaultParams, SeverityRule};
use crate::intervals::{Category, StateCodeTable, UnknownPolicy};
use crate::kpi::TbfBasis;
use crate::types::IdealCycle;
use crate::windows::{OeeParams, RollingParams};

/// The engine's category for a configured state category.
pub fn category(c: StateCategory) -> Category {
    match c {
        StateCategory::Running => Category::Running,
        StateCategory::UnplannedStop => Category::UnplannedStop,
        StateCategory::Setup => Category::Setup,
        StateCategory::PlannedStop => Category::PlannedStop,
        StateCategory::NotScheduled => Category::NotScheduled,
        StateCategory::Unknown => Category::Unknown,
    }
}

fn weekday_bit(d: Weekday) -> u8 {
    1 << match d {
        Weekday::Mon => 0,
        Weekday::Tue => 1,
        Weekday::Wed => 2,
        Weekday::Thu => 3,
        Weekday::Fri => 4,
        Weekday::Sat => 5,
        Weekday::Sun => 6,
    }
}

fn time_of(s: Option<&str>) -> Option<Time> {
    let m = parse_hhmm(s?)?;
    Time::new((m / 60) as i8, (m % 60) as i8, 0, 0).ok()
}

/// The shift calendars of `oee.calendars`, keyed by site id. A zone the time zone database
/// does not know is an error at `oee.calendars[i].time_zone`.
pub fn calendars(oee: &OeeConfig) -> Result<HashMap<Arc<str>, Calendar>, Vec<PathError>> {
    let mut out = HashMap::new();
    let mut errors = Vec::new();
    for (i, c) in oee.calendars.iter().enumerate() {
        let (Some(site), Some(tz)) = (c.site_id.as_deref(), c.time_zone.as_deref()) else {
            continue; // reported by OeeConfig::validate
        };
        if !plausible_time_zone(tz) {
            continue; // reported by OeeConfig::validate
        }
        let shifts = c
            .shifts
            .iter()
            .filter_map(|s| {
                let mut rule = ShiftRule::daily(
                    s.name.as_deref().unwrap_or(""),
                    time_of(s.start.as_deref())?,
                    time_of(s.end.as_deref())?,
                );
                if !s.days.is_empty() {
                    rule.weekdays = s.days.iter().fold(0, |acc, d| acc | weekday_bit(*d));
                }
                for b in &s.breaks {
                    if let (Some(bs), Some(be)) =
                        (time_of(b.start.as_deref()), time_of(b.end.as_deref()))
                    {
                        rule = rule.with_break(bs, be);
                    }
                }
                Some(rule)
            })
            .collect();
        match Calendar::new(tz, shifts) {
            Ok(cal) => {
                out.insert(Arc::from(site), cal);
            }
            Err(e) => errors.push(PathError::new(
                join_key(&join_index("oee.calendars", i), "time_zone"),
                e.to_string(),
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

impl Domain {
    /// The engine's parameters from the validated configuration. The only error left after
    /// [`super::build_domain`] is none at all: it runs this too, so an unknown time zone is a
    /// `check-config` error.
    pub fn engine_params(&self) -> Result<(OeeParams, FaultParams), Vec<PathError>> {
        let o = &self.oee;
        let d = OeeParams::default();
        let rolling = o.windows.rolling.enabled.then(|| RollingParams {
            len_ms: o.windows.rolling.length_s.saturating_mul(1000) as i64,
            every_ms: o.windows.rolling.emit_every_s.saturating_mul(1000) as i64,
        });
        let has = |t: TumblingWindow| o.windows.tumbling.contains(&t);
        let ideal_cycles_by_name = self
            .rules
            .ideal_cycle_times
            .iter()
            .map(|(m, secs)| (Arc::from(m.as_str()), IdealCycle::from_secs_f64(*secs)))
            .collect();
        let mut state_codes = StateCodeTable {
            exact: HashMap::new(),
            ranges: Vec::new(),
            default: category(self.rules.state_codes.default_category()),
        };
        for (from, to, c) in self.rules.state_codes.ranges() {
            if from == to {
                state_codes.exact.insert(from, category(c));
            } else {
                state_codes.ranges.push((from, to, category(c)));
            }
        }
        let oee = OeeParams {
            micro_stop_ms: o.micro_stop_s.saturating_mul(1000) as i64,
            minor_stops: d.minor_stops,
            unknown_policy: match o.unknown_time {
                UnknownTimePolicy::Exclude => UnknownPolicy::Exclude,
                UnknownTimePolicy::Downtime => UnknownPolicy::Downtime,
            },
            tumbling_ms: 3_600_000,
            rolling,
            allowed_lateness_ms: o.allowed_lateness_s.saturating_mul(1000) as i64,
            revision_horizon_ms: o.revision_horizon_s.saturating_mul(1000) as i64,
            default_ideal_cycle: None,
            ideal_cycles: HashMap::new(),
            ideal_cycles_by_name,
            plausibility: Plausibility {
                k: o.counters.plausibility_factor,
                slack: o.counters.plausibility_slack,
                cap: (o.counters.max_delta > 0).then_some(o.counters.max_delta),
            },
            state_codes,
            // The normalizer's `state.running = false` is an unplanned stop too.
            not_running: Category::UnplannedStop,
            tbf_basis: match o.mtbf_basis {
                MtbfBasis::RunAndSetup => TbfBasis::RunPlusSetup,
                MtbfBasis::RunOnly => TbfBasis::RunOnly,
            },
            calendars: calendars(o)?,
            planned_stop_is_loss: o.planned_stop_is_loss,
            shift_windows: has(TumblingWindow::Shift),
            day_windows: has(TumblingWindow::Day),
            utc_days_without_calendar: has(TumblingWindow::Day),
        };
        let f = &self.faults;
        let faults = FaultParams {
            dedup_window_ms: f.dedup_window_s.saturating_mul(1000) as i64,
            severity_rules: f
                .severity_rules
                .iter()
                .map(|r| SeverityRule {
                    code: r.code,
                    range: (r.from.is_some() || r.to.is_some())
                        .then(|| (r.from.unwrap_or(i64::MIN), r.to.unwrap_or(i64::MAX))),
                    code_pattern: None,
                    machine_pattern: r.machine.clone(),
                    severity: r.severity,
                    failure: r.failure,
                })
                .collect(),
            default_severity: f.default_severity,
            chatter_count: f.chatter.activations as usize,
            chatter_window_ms: f.chatter.within_s.saturating_mul(1000) as i64,
            ..FaultParams::default()
        };
        Ok((oee, faults))
    }
}

#[cfg(test)]
mod tests {
    use super::super::oee::{BreakConfig, CalendarConfig, ShiftConfig};
    use super::super::{DomainConfig, build_domain};
    use super::*;
    use crate::types::MachineId;

    fn domain(yaml: &str) -> Domain {
        let root = super::super::yaml::parse(yaml).expect("parses");
        let mut diags = Vec::new();
        let cfg: DomainConfig = super::super::yaml::decode(&root, &mut diags).expect("decodes");
        assert!(diags.is_empty(), "{diags:?}");
        build_domain(&cfg.processing, &cfg.oee, &cfg.faults).expect("valid")
    }

    #[test]
    fn defaults_match_the_engine_defaults_where_the_table_says_so() {
        let (p, f) = domain("{}").engine_params().expect("maps");
        let d = OeeParams::default();
        assert_eq!(p.micro_stop_ms, d.micro_stop_ms);
        assert_eq!(p.allowed_lateness_ms, d.allowed_lateness_ms);
        assert_eq!(p.unknown_policy, UnknownPolicy::Exclude);
        assert_eq!(p.tbf_basis, TbfBasis::RunPlusSetup);
        assert_eq!(p.tumbling_ms, 3_600_000);
        // The config's rolling default re-emits every 60 s (the engine's every 5 min).
        assert_eq!(
            p.rolling,
            Some(RollingParams {
                len_ms: 3_600_000,
                every_ms: 60_000
            })
        );
        assert_eq!(p.plausibility.k, 2.0);
        assert_eq!(p.plausibility.slack, 10);
        assert_eq!(p.plausibility.cap, None);
        assert!(!p.shift_windows && !p.day_windows && !p.utc_days_without_calendar);
        assert!(p.calendars.is_empty());
        // processing.state_codes.default_category is `unknown`.
        assert_eq!(p.state_codes.category(7), Category::Unknown);
        assert_eq!(f, FaultParams::default());
    }

    #[test]
    fn every_key_maps() {
        let d = domain(
            r#"
processing:
  ideal_cycle_times:
    "SITE01-LINE1-M1": 12.5
  state_codes:
    default_category: unplanned_stop
    rules:
      - code: 1
        category: running
      - from: 100
        to: 199
        category: setup
oee:
  windows:
    tumbling: [hour, shift, day]
    rolling: {enabled: true, length_s: 1800, emit_every_s: 300}
  micro_stop_s: 45
  unknown_time: downtime
  allowed_lateness_s: 60
  revision_horizon_s: 1800
  planned_stop_is_loss: true
  mtbf_basis: run_only
  counters: {plausibility_factor: 3.0, plausibility_slack: 4, max_delta: 1000}
  calendars:
    - site_id: SITE01
      time_zone: Europe/Berlin
      shifts:
        - name: early
          start: "06:00"
          end: "14:00"
          days: [mon, tue]
          breaks: [{start: "10:00", end: "10:30"}]
        - name: night
          start: "22:00"
          end: "06:00"
faults:
  dedup_window_s: 120
  chatter: {activations: 5, within_s: 30}
  default_severity: 400
  severity_rules:
    - {code: 42, severity: 900}
    - {from: 100, to: 199, severity: 300, failure: false}
    - {from: 500, severity: 100}
    - {machine: "SITE01-*-M1", severity: 700}
"#,
        );
        let (p, f) = d.engine_params().expect("maps");
        assert_eq!(p.micro_stop_ms, 45_000);
        assert_eq!(p.unknown_policy, UnknownPolicy::Downtime);
        assert_eq!(p.allowed_lateness_ms, 60_000);
        assert_eq!(p.revision_horizon_ms, 1_800_000);
        assert!(p.planned_stop_is_loss);
        assert_eq!(p.tbf_basis, TbfBasis::RunOnly);
        assert!(p.shift_windows && p.day_windows && p.utc_days_without_calendar);
        assert_eq!(
            p.rolling,
            Some(RollingParams {
                len_ms: 1_800_000,
                every_ms: 300_000
            })
        );
        assert_eq!(p.plausibility.k, 3.0);
        assert_eq!(p.plausibility.slack, 4);
        assert_eq!(p.plausibility.cap, Some(1000));
        // The seed's ideal cycle time, by machine_id.
        assert_eq!(
            p.ideal_cycles_by_name.get("SITE01-LINE1-M1"),
            Some(&IdealCycle::from_millis(12_500))
        );
        assert_eq!(p.state_codes.category(1), Category::Running);
        assert_eq!(p.state_codes.category(150), Category::Setup);
        assert_eq!(p.state_codes.category(7), Category::UnplannedStop);

        // The calendar: Monday 2024-03-04 in Berlin (UTC+1).
        let cal = &p.calendars[&Arc::<str>::from("SITE01")];
        let rules = cal.shifts();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].weekdays, 0b11);
        assert_eq!(rules[1].weekdays, 0x7f);
        let monday = jiff::civil::date(2024, 3, 4);
        let early = cal
            .shifts_on(monday)
            .into_iter()
            .find(|s| &*s.name == "early")
            .expect("early shift on Monday");
        let utc = |h: i8, m: i8| {
            jiff::civil::date(2024, 3, 4)
                .at(h, m, 0, 0)
                .to_zoned(jiff::tz::TimeZone::UTC)
                .expect("valid")
                .timestamp()
                .as_millisecond()
        };
        assert_eq!((early.start, early.end), (utc(5, 0), utc(13, 0)));
        assert_eq!(early.breaks, vec![(utc(9, 0), utc(9, 30))]);
        let wednesday = jiff::civil::date(2024, 3, 6);
        assert!(cal.shifts_on(wednesday).iter().all(|s| &*s.name != "early"));

        assert_eq!(f.dedup_window_ms, 120_000);
        assert_eq!(f.chatter_count, 5);
        assert_eq!(f.chatter_window_ms, 30_000);
        assert_eq!(f.default_severity, 400);
        assert_eq!(f.classify("X", 42, None), (900, true));
        assert_eq!(f.classify("X", 150, None), (300, false));
        assert_eq!(f.classify("X", 9_999, None), (100, true));
        assert_eq!(f.classify("SITE01-LINE1-M1", 7, None), (700, true));
        assert_eq!(f.classify("SITE01-LINE1-M2", 7, None), (400, true));
        // The same answers as the config's own severity table.
        for (m, c) in [("X", 42), ("X", 150), ("SITE01-LINE1-M1", 7), ("Y", 3)] {
            assert_eq!(f.classify(m, c, None), d.severities.classify(m, c));
        }
    }

    #[test]
    fn the_engine_uses_the_ideal_cycle_time_by_machine_id() {
        let d = domain("processing:\n  ideal_cycle_times:\n    M1: 2.0\n");
        let (p, f) = d.engine_params().expect("maps");
        let mut e = crate::windows::OeeEngine::new(p, f);
        let m = MachineId::new("S", "L", "M1");
        let mut out = Vec::new();
        use crate::counters::CounterKind;
        use crate::windows::{OeeInput, Output, StateValue};
        e.push(
            &OeeInput::State {
                machine: m.clone(),
                ts_ms: 0,
                seq: 0,
                value: StateValue::Running(true),
            },
            &mut out,
        );
        for (i, (t, v)) in [(0, 0), (3_000_000, 1_200)].into_iter().enumerate() {
            e.push(
                &OeeInput::Counter {
                    machine: m.clone(),
                    counter: CounterKind::Total,
                    ts_ms: t,
                    seq: i as u64,
                    value: v,
                    bits: 32,
                    session: 0,
                },
                &mut out,
            );
        }
        e.advance_watermark(3_600_000, &mut out);
        let hour = out
            .iter()
            .find_map(|o| match o {
                Output::Window(w) if w.kind == crate::windows::WindowKind::Tumbling => Some(w),
                _ => None,
            })
            .expect("the hour is final");
        // 1 200 parts × 2 s = 2 400 s of 3 600 s run time.
        let perf = hour.kpis.performance.expect("performance");
        assert!((perf - 2.0 / 3.0).abs() < 1e-9, "{perf}");
    }

    #[test]
    fn an_unknown_zone_is_an_error_at_its_key() {
        let cfg = OeeConfig {
            calendars: vec![CalendarConfig {
                site_id: Some("S".into()),
                time_zone: Some("Europe/Atlantis".into()),
                shifts: vec![ShiftConfig {
                    name: Some("day".into()),
                    start: Some("06:00".into()),
                    end: Some("18:00".into()),
                    days: vec![],
                    breaks: vec![BreakConfig::default()],
                }],
            }],
            ..OeeConfig::default()
        };
        let e = calendars(&cfg).expect_err("unknown zone");
        assert_eq!(e[0].path, "oee.calendars[0].time_zone");
    }
}
