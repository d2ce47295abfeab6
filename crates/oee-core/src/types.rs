//! Identities and time units shared by the OEE and fault modules.

use std::fmt;
use std::sync::Arc;

/// Internal hash map: foldhash with a fixed seed (fast, and the same on every run).
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// Event time in milliseconds since the Unix epoch (UTC). Every duration is integer ms.
pub type Ms = i64;

/// One machine: `{site, line, machine}` as small shared strings (cheap to clone).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MachineId {
    /// Site id (selects the shift calendar).
    pub site: Arc<str>,
    /// Line id inside the site.
    pub line: Arc<str>,
    /// Machine id inside the line.
    pub machine: Arc<str>,
}

impl MachineId {
    /// Builds an id from its three parts.
    pub fn new(site: &str, line: &str, machine: &str) -> Self {
        Self {
            site: site.into(),
            line: line.into(),
            machine: machine.into(),
        }
    }

    /// The line this machine belongs to.
    pub fn line_id(&self) -> LineId {
        LineId {
            site: self.site.clone(),
            line: self.line.clone(),
        }
    }
}

impl fmt::Display for MachineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.site, self.line, self.machine)
    }
}

/// One line: `{site, line}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LineId {
    /// Site id.
    pub site: Arc<str>,
    /// Line id inside the site.
    pub line: Arc<str>,
}

impl fmt::Display for LineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.site, self.line)
    }
}

/// An ideal cycle time, stored in integer nanoseconds per unit so that ideal-time sums are exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdealCycle {
    /// Nanoseconds per unit (must be > 0 to be used).
    pub ns: u64,
}

impl IdealCycle {
    /// From seconds per unit (rounded to the nearest nanosecond).
    pub fn from_secs_f64(secs: f64) -> Self {
        Self {
            ns: (secs * 1e9).round().max(0.0) as u64,
        }
    }

    /// From milliseconds per unit.
    pub fn from_millis(ms: u64) -> Self {
        Self {
            ns: ms.saturating_mul(1_000_000),
        }
    }

    /// From a rate in units per minute.
    pub fn from_units_per_minute(rate: f64) -> Self {
        Self::from_secs_f64(60.0 / rate)
    }
}
