//! Batches: what the batcher hands to a writer and what the spool stores. A batch gets its id
//! before the first write attempt and keeps it through retries and the spool, so a database can
//! recognise a batch it has already committed (the `sink_batches` ledger).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use super::record::{EventRow, FaultRow, OeeWindowRow, Record, TelemetryRow};

/// Identifies a batch for ever: a random writer id chosen at start plus a sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId {
    pub writer: i64,
    pub seq: i64,
}

/// A batch of records in arrival order.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub id: BatchId,
    pub records: Vec<Record>,
}

/// Rows per table in one batch (after in-batch deduplication of keyed rows).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowCounts {
    pub telemetry: u64,
    pub events: u64,
    pub oee_windows: u64,
    pub faults: u64,
}

impl RowCounts {
    pub fn total(&self) -> u64 {
        self.telemetry + self.events + self.oee_windows + self.faults
    }
}

/// The records of a batch split by table. Keyed tables are deduplicated within the batch (an
/// upsert may not touch one row twice in one statement): for `oee_windows` the highest
/// revision wins, for `faults` the latest change (the later record on a tie), for `events` the
/// first record with an id.
pub struct Split<'a> {
    pub telemetry: Vec<&'a TelemetryRow>,
    pub events: Vec<&'a EventRow>,
    pub oee_windows: Vec<&'a OeeWindowRow>,
    pub faults: Vec<&'a FaultRow>,
}

impl Split<'_> {
    pub fn counts(&self) -> RowCounts {
        RowCounts {
            telemetry: self.telemetry.len() as u64,
            events: self.events.len() as u64,
            oee_windows: self.oee_windows.len() as u64,
            faults: self.faults.len() as u64,
        }
    }
}

type WindowKey<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, i64);

pub fn split(records: &[Record]) -> Split<'_> {
    let mut s = Split {
        telemetry: Vec::with_capacity(records.len()),
        events: Vec::new(),
        oee_windows: Vec::new(),
        faults: Vec::new(),
    };
    let mut events: HashMap<(&str, i64), usize> = HashMap::new();
    let mut windows: HashMap<WindowKey<'_>, usize> = HashMap::new();
    let mut faults: HashMap<&str, usize> = HashMap::new();
    for r in records {
        match r {
            Record::Telemetry(t) => s.telemetry.push(t),
            Record::Event(e) => {
                if let std::collections::hash_map::Entry::Vacant(v) =
                    events.entry((e.id.as_str(), e.time_ms))
                {
                    v.insert(s.events.len());
                    s.events.push(e);
                }
            }
            Record::OeeWindow(w) => {
                let key = (
                    w.scope,
                    w.site_id.as_str(),
                    w.line_id.as_str(),
                    w.machine_id.as_str(),
                    w.window_kind.as_str(),
                    w.window_start_ms,
                );
                match windows.get(&key) {
                    Some(&i) => {
                        if w.revision >= s.oee_windows[i].revision {
                            s.oee_windows[i] = w;
                        }
                    }
                    None => {
                        windows.insert(key, s.oee_windows.len());
                        s.oee_windows.push(w);
                    }
                }
            }
            Record::Fault(f) => match faults.get(f.id.as_str()) {
                Some(&i) => {
                    if f.last_change_ms >= s.faults[i].last_change_ms {
                        s.faults[i] = f;
                    }
                }
                None => {
                    faults.insert(f.id.as_str(), s.faults.len());
                    s.faults.push(f);
                }
            },
        }
    }
    s
}

/// Hands out batch ids: a random writer id (so two instances or two runs never collide) and a
/// counter.
pub struct IdSource {
    writer: i64,
    next: i64,
}

impl IdSource {
    pub fn new() -> IdSource {
        // std's RandomState is seeded from the OS; mix in the time and pid for good measure.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        IdSource {
            writer: h.finish() as i64,
            next: 1,
        }
    }

    pub fn next_id(&mut self) -> BatchId {
        let id = BatchId {
            writer: self.writer,
            seq: self.next,
        };
        self.next += 1;
        id
    }
}

impl Default for IdSource {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::testdata;

    #[test]
    fn split_keeps_the_highest_window_revision_and_the_latest_fault_state() {
        let records = vec![
            Record::OeeWindow(testdata::window(1, 3)),
            Record::OeeWindow(testdata::window(1, 5)),
            Record::OeeWindow(testdata::window(1, 4)),
            Record::Fault(testdata::fault(1, 10, "ACTIVE")),
            Record::Fault(testdata::fault(1, 20, "RESOLVED")),
            Record::Fault(testdata::fault(1, 15, "ACKNOWLEDGED")),
            Record::Event(testdata::event(1)),
            Record::Event(testdata::event(1)),
        ];
        let s = split(&records);
        assert_eq!(s.oee_windows.len(), 1);
        assert_eq!(s.oee_windows[0].revision, 5);
        assert_eq!(s.faults.len(), 1);
        assert_eq!(s.faults[0].state, "RESOLVED");
        assert_eq!(s.events.len(), 1);
    }

    #[test]
    fn ids_are_distinct_across_sources() {
        let mut a = IdSource::new();
        let mut b = IdSource::new();
        let (x, y) = (a.next_id(), a.next_id());
        assert_eq!(x.writer, y.writer);
        assert_eq!(y.seq, x.seq + 1);
        assert_ne!(a.next_id().writer, b.next_id().writer);
    }
}
