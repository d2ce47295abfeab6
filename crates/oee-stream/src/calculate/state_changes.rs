//! The live view's record of a machine's state: its *changes* only, each with the last time it
//! was seen again, so a machine that repeats its state 20 times a second (a gateway polling a
//! PLC, no deadband) costs one entry per change instead of one per sample.

use std::collections::BTreeMap;

use oee_core::intervals::Category;
use oee_core::types::Ms;

/// (event time, tie-break).
pub type Key = (Ms, u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    category: Category,
    /// The newest sample that repeated this category (the run's own key when none has).
    last_seen: Key,
}

/// A machine's state changes by (event time, tie-break): no two neighbours share a category.
#[derive(Debug, Default)]
pub struct StateChanges {
    runs: BTreeMap<Key, Run>,
}

impl StateChanges {
    /// Records a state sample. A repeat of the run it falls in only moves that run's
    /// `last_seen`. A different category starts a run; when it lands inside a run that was seen
    /// again after it (a late sample), that run's category resumes at its `last_seen`: the
    /// repeats in between were not kept, so the late state is shown until then, an upper bound
    /// (the OEE engine keeps them and is exact; this is only the dashboard's timeline).
    pub fn insert(&mut self, key: Key, category: Category) {
        let prev = self.runs.range(..=key).next_back().map(|(k, r)| (*k, *r));
        if let Some((pk, run)) = prev {
            if run.category == category {
                let r = self.runs.entry(pk).or_insert(run);
                r.last_seen = r.last_seen.max(key);
                return;
            }
            if pk == key {
                self.runs.remove(&pk);
            } else if run.last_seen > key {
                self.runs.insert(
                    pk,
                    Run {
                        last_seen: pk,
                        ..run
                    },
                );
            }
            if run.last_seen > key {
                self.runs.insert(run.last_seen, run);
            }
        }
        let mut new = Run {
            category,
            last_seen: key,
        };
        let next = self
            .runs
            .range((std::ops::Bound::Excluded(key), std::ops::Bound::Unbounded))
            .next()
            .map(|(k, r)| (*k, *r));
        if let Some((nk, next)) = next
            && next.category == category
        {
            self.runs.remove(&nk);
            new.last_seen = new.last_seen.max(next.last_seen);
        }
        // A replaced run at the same key may leave a neighbour before it with this category.
        if let Some((_, before)) = self.runs.range_mut(..key).next_back()
            && before.category == category
        {
            before.last_seen = before.last_seen.max(new.last_seen);
            return;
        }
        self.runs.insert(key, new);
    }

    /// Drops the changes before the last one at or before `from` (which holds the state at
    /// `from`).
    pub fn keep_from(&mut self, from: Ms) {
        if let Some(cut) = self.runs.range(..(from, 0)).next_back().map(|(k, _)| *k) {
            self.runs = self.runs.split_off(&cut);
        }
    }

    /// The runs in time order: (category, start, end), the last one open.
    pub fn runs(&self) -> impl Iterator<Item = (Category, Ms, Option<Ms>)> + '_ {
        let mut it = self.runs.iter().peekable();
        std::iter::from_fn(move || {
            let (k, r) = it.next()?;
            Some((r.category, k.0, it.peek().map(|(next, _)| next.0)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Category::{Running, UnplannedStop};

    fn changes(s: &StateChanges) -> Vec<(Ms, Category)> {
        s.runs().map(|(c, start, _)| (start, c)).collect()
    }

    #[test]
    fn repeats_in_order_keep_one_entry_per_change() {
        let mut s = StateChanges::default();
        for t in 0..1000 {
            s.insert((t, 0), if t < 500 { Running } else { UnplannedStop });
        }
        assert_eq!(changes(&s), vec![(0, Running), (500, UnplannedStop)]);
    }

    #[test]
    fn a_late_different_state_inside_a_repeated_run_lasts_until_the_runs_last_repeat() {
        let mut s = StateChanges::default();
        for t in [0, 10, 20] {
            s.insert((t, 0), Running);
        }
        s.insert((5, 0), UnplannedStop);
        assert_eq!(
            changes(&s),
            vec![(0, Running), (5, UnplannedStop), (20, Running)]
        );
        // The repeat at 20 stays a repeat of the resumed run.
        s.insert((30, 0), Running);
        assert_eq!(changes(&s).len(), 3);
    }

    #[test]
    fn a_late_state_after_a_runs_last_repeat_starts_a_run_and_merges_with_an_equal_next_one() {
        let mut s = StateChanges::default();
        s.insert((0, 0), Running);
        s.insert((10, 0), UnplannedStop);
        s.insert((12, 0), UnplannedStop);
        // Late: Stopped from 5, before the Stopped run at 10: one run from 5.
        s.insert((5, 0), UnplannedStop);
        assert_eq!(changes(&s), vec![(0, Running), (5, UnplannedStop)]);
        // A later Running repeat inside the merged run splits it at its last repeat (12).
        s.insert((8, 0), Running);
        assert_eq!(
            changes(&s),
            vec![
                (0, Running),
                (5, UnplannedStop),
                (8, Running),
                (12, UnplannedStop)
            ]
        );
    }

    #[test]
    fn a_sample_at_the_same_key_replaces_the_change_and_merges_neighbours() {
        let mut s = StateChanges::default();
        s.insert((0, 0), Running);
        s.insert((10, 0), UnplannedStop);
        s.insert((10, 0), Running);
        assert_eq!(changes(&s), vec![(0, Running)]);
    }

    #[test]
    fn keep_from_keeps_the_change_holding_the_state_at_from() {
        let mut s = StateChanges::default();
        s.insert((0, 0), Running);
        s.insert((10, 0), UnplannedStop);
        s.insert((20, 0), Running);
        s.keep_from(15);
        assert_eq!(changes(&s), vec![(10, UnplannedStop), (20, Running)]);
    }
}
