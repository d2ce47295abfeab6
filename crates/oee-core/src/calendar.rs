//! Optional shift calendar per site, in an IANA time zone.
//!
//! Shifts are recurring local times (a shift whose end is not after its start crosses
//! midnight), on selected weekdays, with breaks (planned stops). Local times are turned into UTC
//! instants with the zone's rules, so days are 23 or 25 hours long across DST changes, and a
//! 22:00–06:00 night shift lasts 7 or 9 hours. A local time that does not exist (spring forward)
//! moves forward by the gap; an ambiguous one (fall back) takes the earlier instant (jiff's
//! "compatible" rule). Without a calendar, all time is planned.

use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

use crate::types::Ms;

/// The calendar's view of a piece of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CalCat {
    /// Inside a shift, outside its breaks.
    Scheduled,
    /// Inside a break of a shift: a planned stop.
    Break,
    /// Outside every shift.
    NotScheduled,
}

/// Errors building a calendar.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// The time zone name is unknown.
    #[error("unknown time zone {name:?}: use an IANA name such as \"Europe/Berlin\" ({source})")]
    TimeZone {
        /// The name given.
        name: String,
        /// jiff's error.
        source: jiff::Error,
    },
}

/// One recurring shift.
#[derive(Clone, Debug, PartialEq)]
pub struct ShiftRule {
    /// Shift name (reported with shift windows).
    pub name: Arc<str>,
    /// Local start time.
    pub start: Time,
    /// Local end time; not after `start` means the next day.
    pub end: Time,
    /// Weekdays the shift *starts* on: bit 0 = Monday … bit 6 = Sunday (`0x7f` = every day).
    pub weekdays: u8,
    /// Breaks as local `(start, end)`; a time before the shift start means the next day.
    pub breaks: Vec<(Time, Time)>,
}

impl ShiftRule {
    /// A shift on every day without breaks.
    pub fn daily(name: &str, start: Time, end: Time) -> Self {
        Self {
            name: name.into(),
            start,
            end,
            weekdays: 0x7f,
            breaks: Vec::new(),
        }
    }

    /// Adds a break.
    pub fn with_break(mut self, start: Time, end: Time) -> Self {
        self.breaks.push((start, end));
        self
    }
}

/// One concrete shift, in UTC instants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShiftInstance {
    /// Shift name.
    pub name: Arc<str>,
    /// Start instant (ms).
    pub start: Ms,
    /// End instant (ms, exclusive).
    pub end: Ms,
    /// Breaks, clipped to the shift.
    pub breaks: Vec<(Ms, Ms)>,
}

/// A site's shift calendar.
#[derive(Clone, Debug)]
pub struct Calendar {
    tz: TimeZone,
    shifts: Vec<ShiftRule>,
}

fn ms(ts: Timestamp) -> Ms {
    ts.as_millisecond()
}

fn ts(ms: Ms) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

impl Calendar {
    /// A calendar in the named IANA zone (looked up in jiff's time zone database).
    pub fn new(tz_name: &str, shifts: Vec<ShiftRule>) -> Result<Self, CalendarError> {
        let tz = TimeZone::get(tz_name).map_err(|source| CalendarError::TimeZone {
            name: tz_name.to_owned(),
            source,
        })?;
        Ok(Self { tz, shifts })
    }

    /// A calendar in a zone the caller already resolved.
    pub fn with_zone(tz: TimeZone, shifts: Vec<ShiftRule>) -> Self {
        Self { tz, shifts }
    }

    /// The zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The shift rules.
    pub fn shifts(&self) -> &[ShiftRule] {
        &self.shifts
    }

    /// The instant of a local date and time (compatible disambiguation).
    pub fn instant(&self, date: Date, time: Time) -> Ms {
        match date.to_datetime(time).to_zoned(self.tz.clone()) {
            Ok(z) => ms(z.timestamp()),
            Err(_) => i64::MAX / 4,
        }
    }

    /// The local date of an instant.
    pub fn date_of(&self, t: Ms) -> Date {
        self.tz.to_datetime(ts(t)).date()
    }

    /// The local day `[start, end)` containing `t` (23 or 25 hours across DST changes).
    pub fn day_bounds(&self, t: Ms) -> (Ms, Ms) {
        let d = self.date_of(t);
        (self.day_start(d), self.day_start(d.tomorrow().unwrap_or(d)))
    }

    /// The first instant of a local date.
    pub fn day_start(&self, d: Date) -> Ms {
        match d.to_zoned(self.tz.clone()) {
            Ok(z) => ms(z.timestamp()),
            Err(_) => i64::MAX / 4,
        }
    }

    /// The offset of local hours from UTC hours at `t`, in `[0, 3 600 000)` ms (0 for zones
    /// with whole-hour offsets; 1 800 000 for e.g. Asia/Kolkata).
    pub fn hour_phase(&self, t: Ms) -> Ms {
        let off = self.tz.to_offset(ts(t)).seconds() as i64 * 1000;
        off.rem_euclid(3_600_000)
    }

    /// The shift instances starting on local date `d`.
    pub fn shifts_on(&self, d: Date) -> Vec<ShiftInstance> {
        let next = d.tomorrow().unwrap_or(d);
        let day_bit = 1u8 << d.weekday().to_monday_zero_offset();
        let mut out = Vec::new();
        for r in &self.shifts {
            if r.weekdays & day_bit == 0 {
                continue;
            }
            let start = self.instant(d, r.start);
            let end = self.instant(if r.end > r.start { d } else { next }, r.end);
            let mut breaks = Vec::new();
            for (bs, be) in &r.breaks {
                let bd = if *bs >= r.start { d } else { next };
                let bs_i = self.instant(bd, *bs);
                let be_d = if be > bs {
                    bd
                } else {
                    bd.tomorrow().unwrap_or(bd)
                };
                let be_i = self.instant(be_d, *be);
                let (x, y) = (bs_i.max(start), be_i.min(end));
                if x < y {
                    breaks.push((x, y));
                }
            }
            out.push(ShiftInstance {
                name: r.name.clone(),
                start,
                end,
                breaks,
            });
        }
        out
    }

    /// Shift instances overlapping `[from, to)`, sorted by start.
    pub fn shifts_between(&self, from: Ms, to: Ms) -> Vec<ShiftInstance> {
        let mut d = self.date_of(from).yesterday().unwrap_or(self.date_of(from));
        let last = self.date_of(to);
        let mut out = Vec::new();
        while d <= last {
            out.extend(
                self.shifts_on(d)
                    .into_iter()
                    .filter(|s| s.start < to && s.end > from),
            );
            match d.tomorrow() {
                Ok(n) => d = n,
                Err(_) => break,
            }
        }
        out.sort_by(|a, b| (a.start, a.end, &a.name).cmp(&(b.start, b.end, &b.name)));
        out
    }

    /// The calendar timeline over `[from, to)`: sorted segment starts with their category,
    /// adjacent equal segments merged, the first starting at `from`.
    pub fn timeline(&self, from: Ms, to: Ms) -> Vec<(Ms, CalCat)> {
        let inst = self.shifts_between(from, to);
        let mut pts = vec![from];
        for s in &inst {
            pts.extend([s.start, s.end]);
            for b in &s.breaks {
                pts.extend([b.0, b.1]);
            }
        }
        pts.retain(|p| *p >= from && *p < to);
        pts.sort_unstable();
        pts.dedup();
        let mut out: Vec<(Ms, CalCat)> = Vec::new();
        for p in pts {
            let cat = if inst
                .iter()
                .any(|s| s.breaks.iter().any(|b| b.0 <= p && p < b.1))
            {
                CalCat::Break
            } else if inst.iter().any(|s| s.start <= p && p < s.end) {
                CalCat::Scheduled
            } else {
                CalCat::NotScheduled
            };
            if out.last().is_none_or(|l| l.1 != cat) {
                out.push((p, cat));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};

    fn berlin() -> Calendar {
        let night = ShiftRule::daily("night", time(22, 0, 0, 0), time(6, 0, 0, 0));
        Calendar::new("Europe/Berlin", vec![night]).unwrap()
    }

    #[test]
    fn example_21_dst_days_and_night_shifts_in_berlin() {
        let c = berlin();
        let (s, e) = c.day_bounds(c.instant(date(2025, 3, 30), time(12, 0, 0, 0)));
        assert_eq!((e - s) / 1000, 82_800);
        let (s, e) = c.day_bounds(c.instant(date(2025, 10, 26), time(12, 0, 0, 0)));
        assert_eq!((e - s) / 1000, 90_000);
        let n = &c.shifts_on(date(2025, 3, 29))[0];
        assert_eq!((n.end - n.start) / 1000, 25_200);
        let n = &c.shifts_on(date(2025, 10, 25))[0];
        assert_eq!((n.end - n.start) / 1000, 32_400);
        // An ordinary day is 24 h.
        let (s, e) = c.day_bounds(c.instant(date(2025, 6, 1), time(12, 0, 0, 0)));
        assert_eq!((e - s) / 1000, 86_400);
    }

    #[test]
    fn timeline_has_breaks_and_unscheduled_time() {
        let shift = ShiftRule::daily("early", time(6, 0, 0, 0), time(14, 0, 0, 0))
            .with_break(time(10, 0, 0, 0), time(10, 30, 0, 0));
        let c = Calendar::new("UTC", vec![shift]).unwrap();
        let d0 = c.day_start(date(2025, 1, 6));
        let h = 3_600_000;
        let tl = c.timeline(d0, d0 + 24 * h);
        assert_eq!(
            tl,
            vec![
                (d0, CalCat::NotScheduled),
                (d0 + 6 * h, CalCat::Scheduled),
                (d0 + 10 * h, CalCat::Break),
                (d0 + 10 * h + h / 2, CalCat::Scheduled),
                (d0 + 14 * h, CalCat::NotScheduled),
            ]
        );
    }

    #[test]
    fn weekdays_select_the_start_day() {
        let mut shift = ShiftRule::daily("weekday", time(8, 0, 0, 0), time(16, 0, 0, 0));
        shift.weekdays = 0b001_1111; // Monday to Friday
        let c = Calendar::new("UTC", vec![shift]).unwrap();
        assert_eq!(c.shifts_on(date(2025, 1, 6)).len(), 1); // Monday
        assert!(c.shifts_on(date(2025, 1, 11)).is_empty()); // Saturday
    }

    #[test]
    fn half_hour_zones_shift_the_hour_phase() {
        let c = Calendar::new("Asia/Kolkata", vec![]).unwrap();
        assert_eq!(c.hour_phase(0), 1_800_000);
        assert_eq!(berlin().hour_phase(0), 0);
    }

    #[test]
    fn unknown_zone_is_an_error_that_names_it() {
        let e = Calendar::new("Mars/Olympus", vec![]).unwrap_err();
        assert!(e.to_string().contains("Mars/Olympus"));
    }
}
