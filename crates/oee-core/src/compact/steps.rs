//! A piecewise-constant series (machine states, ideal cycle times, fault codes, fault flags) kept
//! as its *changes*: a sorted `Vec` of heads, each a sample whose value differs from the sample
//! before it, and per head the samples that repeated its value after it (a gateway polling a
//! PLC publishes the same state 20 times a second), each repeat as two zigzag varints (time and
//! tie-break differences from the sample before, ~4 bytes) instead of a full sample.
//!
//! The repeats are kept, not dropped, because late data can land inside a run: with A@0 and
//! A@10, a late B@5 makes the value B on [5, 10) and A again from 10. The *full view* (every
//! sample, in order) is exactly what a sorted `Vec` of samples would hold, and the heads are
//! exactly the samples of the full view whose value differs from their predecessor's, whatever
//! the order of inserts, removals and prunes. So a consumer that only looks at where the value
//! changes (the step function) gets the same answer from [`StepSeries::heads`] as from every
//! sample; positions ([`Pos`]) address the full view for the few callers that need it.
//!
//! Appending (the usual case) encodes one repeat or pushes one head. A late sample inside a
//! run decodes and re-encodes that run, as [`super::CounterSeries`] does a block.

use super::{get_varint, put_varint, unzigzag, zigzag};
use crate::types::Ms;

/// A sample of a step series: a key `(ts, seq)` and a value. `Ord` orders the full view.
pub(crate) trait Step: Copy + Ord {
    fn key(&self) -> (Ms, u64);
    /// This sample's value at another key.
    fn at(self, key: (Ms, u64)) -> Self;
    fn same_value(&self, other: &Self) -> bool;
}

/// A sample of the full view: head `h`, then `j = 0` for the head itself or the `j`-th repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) h: usize,
    pub(crate) j: usize,
}

/// Where a sample not in the series would go: after the sample at `.0` (`None` = first).
/// Valid until the series changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Gap(pub(crate) Option<Pos>);

/// The repeats after one head.
#[derive(Clone, Debug)]
struct Run {
    n: usize,
    /// Keys of repeat `n` and of the sample before it (the head when `n == 1`): appending and
    /// the neighbours of the end need no decoding.
    last: (Ms, u64),
    prev: (Ms, u64),
    deltas: Vec<u8>,
}

impl Run {
    fn new(base: (Ms, u64)) -> Self {
        Run {
            n: 0,
            last: base,
            prev: base,
            deltas: Vec::new(),
        }
    }

    /// `None` when `keys` is empty (a head without repeats has no `Run`).
    fn build(base: (Ms, u64), keys: &[(Ms, u64)]) -> Option<Box<Run>> {
        if keys.is_empty() {
            return None;
        }
        let mut r = Run::new(base);
        for k in keys {
            r.push(*k);
        }
        r.deltas.shrink_to_fit();
        Some(Box::new(r))
    }

    fn push(&mut self, k: (Ms, u64)) {
        put_varint(
            &mut self.deltas,
            zigzag(i128::from(k.0) - i128::from(self.last.0)),
        );
        put_varint(
            &mut self.deltas,
            zigzag(i128::from(k.1) - i128::from(self.last.1)),
        );
        self.prev = self.last;
        self.last = k;
        self.n += 1;
    }

    /// The keys of repeats 1..=n.
    fn keys(&self, base: (Ms, u64)) -> Vec<(Ms, u64)> {
        let mut v = Vec::with_capacity(self.n);
        let (mut pos, mut k) = (0, base);
        for _ in 0..self.n {
            // Only decodes what `push` encoded: the sums are back in range.
            k.0 = (i128::from(k.0) + unzigzag(get_varint(&self.deltas, &mut pos))) as Ms;
            k.1 = (i128::from(k.1) + unzigzag(get_varint(&self.deltas, &mut pos))) as u64;
            v.push(k);
        }
        v
    }

    /// The key of repeat `j` (`1..=n`).
    fn key(&self, base: (Ms, u64), j: usize) -> (Ms, u64) {
        if j == self.n {
            self.last
        } else if j + 1 == self.n {
            self.prev
        } else {
            self.keys(base)[j - 1]
        }
    }
}

/// The samples of one series, sorted by `T`'s order (see the module documentation).
#[derive(Clone, Debug)]
pub(crate) struct StepSeries<T> {
    heads: Vec<T>,
    /// Parallel to `heads`; boxed so that a head without repeats costs one pointer more.
    runs: Vec<Option<Box<Run>>>,
    len: usize,
}

impl<T> Default for StepSeries<T> {
    fn default() -> Self {
        Self {
            heads: Vec::new(),
            runs: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Step> StepSeries<T> {
    /// Every sample where the value changes (and the first).
    pub(crate) fn heads(&self) -> &[T] {
        &self.heads
    }

    /// Samples in the full view.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn run_len(&self, h: usize) -> usize {
        self.runs[h].as_ref().map_or(0, |r| r.n)
    }

    fn repeat_keys(&self, h: usize) -> Vec<(Ms, u64)> {
        self.runs[h]
            .as_ref()
            .map_or_else(Vec::new, |r| r.keys(self.heads[h].key()))
    }

    /// The sample at `p`.
    pub(crate) fn get(&self, p: Pos) -> T {
        let head = self.heads[p.h];
        match &self.runs[p.h] {
            Some(r) if p.j > 0 => head.at(r.key(head.key(), p.j)),
            _ => head,
        }
    }

    /// The last sample of head `h`'s run.
    pub(crate) fn run_end(&self, h: usize) -> Pos {
        Pos {
            h,
            j: self.run_len(h),
        }
    }

    pub(crate) fn prev(&self, p: Pos) -> Option<Pos> {
        if p.j > 0 {
            return Some(Pos { h: p.h, j: p.j - 1 });
        }
        p.h.checked_sub(1).map(|h| self.run_end(h))
    }

    pub(crate) fn next(&self, p: Pos) -> Option<Pos> {
        if p.j < self.run_len(p.h) {
            return Some(Pos { h: p.h, j: p.j + 1 });
        }
        (p.h + 1 < self.heads.len()).then_some(Pos { h: p.h + 1, j: 0 })
    }

    /// The first sample after a gap.
    pub(crate) fn after(&self, g: Gap) -> Option<Pos> {
        match g.0 {
            Some(p) => self.next(p),
            None => (!self.heads.is_empty()).then_some(Pos { h: 0, j: 0 }),
        }
    }

    /// The position of a sample equal to `x`, or the gap where it would go.
    pub(crate) fn find(&self, x: &T) -> Result<Pos, Gap> {
        let h = self.heads.partition_point(|e| e <= x);
        let Some(h) = h.checked_sub(1) else {
            return Err(Gap(None));
        };
        let head = self.heads[h];
        if head == *x {
            return Ok(Pos { h, j: 0 });
        }
        let Some(r) = &self.runs[h] else {
            return Err(Gap(Some(Pos { h, j: 0 })));
        };
        // Appending (the usual case) compares with the cached last repeat only.
        let last = head.at(r.last);
        if last < *x {
            return Err(Gap(Some(Pos { h, j: r.n })));
        }
        if last == *x {
            return Ok(Pos { h, j: r.n });
        }
        let keys = r.keys(head.key());
        let q = keys.partition_point(|k| head.at(*k) <= *x);
        if q > 0 && head.at(keys[q - 1]) == *x {
            return Ok(Pos { h, j: q });
        }
        Err(Gap(Some(Pos { h, j: q })))
    }

    /// Inserts `x`; false if an equal sample is already there.
    pub(crate) fn insert(&mut self, x: T) -> bool {
        match self.find(&x) {
            Ok(_) => false,
            Err(g) => {
                self.insert_at(g, x);
                true
            }
        }
    }

    /// Inserts `x` at a gap [`find`](Self::find) returned, the series unchanged since.
    pub(crate) fn insert_at(&mut self, g: Gap, x: T) {
        self.len += 1;
        let Some(Pos { h, j }) = g.0 else {
            if self.heads.first().is_some_and(|f| f.same_value(&x)) {
                self.demote(0, x);
            } else {
                self.heads.insert(0, x);
                self.runs.insert(0, None);
            }
            return;
        };
        let n = self.run_len(h);
        if j == n {
            // After the whole run of head `h`.
            if self.heads[h].same_value(&x) {
                let base = self.heads[h].key();
                self.runs[h]
                    .get_or_insert_with(|| Box::new(Run::new(base)))
                    .push(x.key());
            } else if self.heads.get(h + 1).is_some_and(|nx| nx.same_value(&x)) {
                self.demote(h + 1, x);
            } else {
                self.heads.insert(h + 1, x);
                self.runs.insert(h + 1, None);
            }
            return;
        }
        // Inside the run: after repeat `j`, before repeat `j + 1`.
        let head = self.heads[h];
        let mut keys = self.repeat_keys(h);
        if head.same_value(&x) {
            keys.insert(j, x.key());
            self.runs[h] = Run::build(head.key(), &keys);
            return;
        }
        // A different value splits the run: the repeats after `x` start a new run of the old
        // value.
        let (left, right) = keys.split_at(j);
        let (first, rest) = right
            .split_first()
            .map_or((head.key(), &[][..]), |(f, r)| (*f, r));
        let tail = head.at(first);
        self.runs[h] = Run::build(head.key(), left);
        self.heads.splice(h + 1..h + 1, [x, tail]);
        self.runs
            .splice(h + 1..h + 1, [None, Run::build(first, rest)]);
    }

    /// Head `h` becomes the first repeat of `x`, which takes its place.
    fn demote(&mut self, h: usize, x: T) {
        let mut keys = vec![self.heads[h].key()];
        keys.extend(self.repeat_keys(h));
        self.heads[h] = x;
        self.runs[h] = Run::build(x.key(), &keys);
    }

    /// Removes the sample at `p`.
    pub(crate) fn remove(&mut self, p: Pos) {
        self.len -= 1;
        let mut keys = self.repeat_keys(p.h);
        if p.j > 0 {
            keys.remove(p.j - 1);
            self.runs[p.h] = Run::build(self.heads[p.h].key(), &keys);
            return;
        }
        if let Some((first, rest)) = keys.split_first() {
            self.heads[p.h] = self.heads[p.h].at(*first);
            self.runs[p.h] = Run::build(*first, rest);
            return;
        }
        self.heads.remove(p.h);
        self.runs.remove(p.h);
        // The runs on both sides may now have the same value: one run.
        if p.h > 0 && p.h < self.heads.len() && self.heads[p.h - 1].same_value(&self.heads[p.h]) {
            let mut keys = self.repeat_keys(p.h - 1);
            keys.push(self.heads[p.h].key());
            keys.extend(self.repeat_keys(p.h));
            self.runs[p.h - 1] = Run::build(self.heads[p.h - 1].key(), &keys);
            self.heads.remove(p.h);
            self.runs.remove(p.h);
        }
    }

    /// The last sample with a time at or before `t`.
    pub(crate) fn last_at_or_before(&self, t: Ms) -> Option<Pos> {
        let h = self
            .heads
            .partition_point(|e| e.key().0 <= t)
            .checked_sub(1)?;
        match &self.runs[h] {
            Some(r) if r.last.0 > t => {
                let keys = r.keys(self.heads[h].key());
                let j = keys.partition_point(|k| k.0 <= t);
                Some(Pos { h, j })
            }
            _ => Some(self.run_end(h)),
        }
    }

    /// Drops every sample before `p` (`p` stays, as a head).
    pub(crate) fn prune_to(&mut self, p: Pos) {
        let dropped: usize = (0..p.h).map(|h| 1 + self.run_len(h)).sum::<usize>() + p.j;
        self.heads.drain(..p.h);
        self.runs.drain(..p.h);
        if p.j > 0 {
            let keys = self.repeat_keys(0);
            let k = keys[p.j - 1];
            self.heads[0] = self.heads[0].at(k);
            self.runs[0] = Run::build(k, &keys[p.j..]);
        }
        self.len -= dropped;
    }

    /// Drops every sample with a time before `t`.
    pub(crate) fn drop_before(&mut self, t: Ms) {
        match self.last_at_or_before(t.saturating_sub(1)) {
            None => {}
            Some(p) => match self.next(p) {
                Some(q) => self.prune_to(q),
                None => *self = Self::default(),
            },
        }
    }

    /// The last sample.
    pub(crate) fn last(&self) -> Option<T> {
        let h = self.heads.len().checked_sub(1)?;
        Some(self.get(self.run_end(h)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct S {
        ts: Ms,
        seq: u64,
        v: u8,
    }

    impl Step for S {
        fn key(&self) -> (Ms, u64) {
            (self.ts, self.seq)
        }
        fn at(self, key: (Ms, u64)) -> Self {
            S {
                ts: key.0,
                seq: key.1,
                ..self
            }
        }
        fn same_value(&self, other: &Self) -> bool {
            self.v == other.v
        }
    }

    fn s(ts: Ms, seq: u64, v: u8) -> S {
        S { ts, seq, v }
    }

    /// Every sample, in order, by walking the positions.
    fn full(x: &StepSeries<S>) -> Vec<S> {
        let mut v = Vec::new();
        let mut p = x.after(Gap(None));
        while let Some(q) = p {
            v.push(x.get(q));
            p = x.next(q);
        }
        v
    }

    /// The samples whose value differs from the one before.
    fn changes(v: &[S]) -> Vec<S> {
        (0..v.len())
            .filter(|&i| i == 0 || !v[i - 1].same_value(&v[i]))
            .map(|i| v[i])
            .collect()
    }

    fn check(x: &StepSeries<S>, model: &[S]) {
        assert_eq!(full(x), model);
        assert_eq!(x.heads(), changes(model));
        assert_eq!(x.len(), model.len());
        assert_eq!(x.last(), model.last().copied());
    }

    fn series(v: &[S]) -> StepSeries<S> {
        let mut x = StepSeries::default();
        for e in v {
            assert!(x.insert(*e));
        }
        x
    }

    #[test]
    fn in_order_repeats_are_a_few_bytes_each() {
        let v: Vec<S> = (0..1000)
            .map(|k| s(k * 50, 1 << 24 | (k as u64 % 256) << 16, 1))
            .collect();
        let x = series(&v);
        check(&x, &v);
        assert_eq!(x.heads().len(), 1);
        let r = x.runs[0].as_ref().expect("a run");
        // 1 byte of time, 3 of tie-break (a step of 1 << 16), 4 when the Sparkplug seq wraps.
        assert!(r.deltas.len() < 5 * 999, "{} bytes", r.deltas.len());
    }

    #[test]
    fn a_late_sample_of_the_same_value_joins_the_run() {
        let mut x = series(&[s(0, 0, 1), s(10, 0, 1), s(20, 0, 2)]);
        assert!(x.insert(s(5, 0, 1)));
        check(&x, &[s(0, 0, 1), s(5, 0, 1), s(10, 0, 1), s(20, 0, 2)]);
        assert_eq!(x.heads().len(), 2);
    }

    #[test]
    fn a_late_change_splits_the_run_it_lands_in() {
        // A@0, A@10, A@20; a late B@5: B on [5, 10), A again from 10.
        let mut x = series(&[s(0, 0, 1), s(10, 0, 1), s(20, 0, 1)]);
        assert!(x.insert(s(5, 0, 2)));
        let want = [s(0, 0, 1), s(5, 0, 2), s(10, 0, 1), s(20, 0, 1)];
        check(&x, &want);
        assert_eq!(x.heads(), [s(0, 0, 1), s(5, 0, 2), s(10, 0, 1)]);
        // Removing it joins the runs again.
        x.remove(Pos { h: 1, j: 0 });
        check(&x, &[s(0, 0, 1), s(10, 0, 1), s(20, 0, 1)]);
        assert_eq!(x.heads().len(), 1);
    }

    #[test]
    fn a_change_before_a_head_of_its_value_takes_the_head_over() {
        let mut x = series(&[s(0, 0, 1), s(10, 0, 2), s(20, 0, 2)]);
        assert!(x.insert(s(5, 0, 2)));
        check(&x, &[s(0, 0, 1), s(5, 0, 2), s(10, 0, 2), s(20, 0, 2)]);
        assert!(x.insert(s(-5, 0, 1)));
        assert_eq!(x.heads(), [s(-5, 0, 1), s(5, 0, 2)]);
    }

    #[test]
    fn an_exact_duplicate_of_a_repeat_is_found() {
        let mut x = series(&[s(0, 0, 1), s(10, 3, 1), s(20, 0, 1), s(30, 0, 1)]);
        assert_eq!(x.find(&s(10, 3, 1)), Ok(Pos { h: 0, j: 1 }));
        assert!(!x.insert(s(10, 3, 1)));
        assert!(!x.insert(s(30, 0, 1)));
        // Same key, another value: not a duplicate (ordered by value).
        assert!(x.insert(s(10, 3, 2)));
        check(
            &x,
            &[
                s(0, 0, 1),
                s(10, 3, 1),
                s(10, 3, 2),
                s(20, 0, 1),
                s(30, 0, 1),
            ],
        );
    }

    #[test]
    fn prune_keeps_the_part_of_a_run_after_the_horizon() {
        let v: Vec<S> = (0..10)
            .map(|k| s(k * 10, 0, 1))
            .chain([s(100, 0, 2)])
            .collect();
        let mut x = series(&v);
        let p = x.last_at_or_before(45).expect("some");
        assert_eq!(p, Pos { h: 0, j: 4 });
        x.prune_to(p);
        check(&x, &v[4..]);
        assert_eq!(x.heads()[0], s(40, 0, 1));
        x.drop_before(95);
        check(&x, &v[10..]);
        x.drop_before(101);
        check(&x, &[]);
    }

    /// A small deterministic generator (no dependency for one test).
    fn lcg(x: &mut u64) -> u64 {
        *x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *x >> 33
    }

    #[test]
    fn behaves_like_a_sorted_vec() {
        for seed in 0..20u64 {
            let mut rng = seed;
            let mut x = StepSeries::default();
            let mut model: Vec<S> = Vec::new();
            for n in 0..600i64 {
                let r = lcg(&mut rng);
                // Runs of one value with late samples, duplicates, removals and prunes.
                let ts = if r.is_multiple_of(4) {
                    n * 10 - (r as i64 % 300)
                } else {
                    n * 10
                };
                let e = s(
                    ts,
                    r % 3,
                    if r.is_multiple_of(7) {
                        (r % 3) as u8
                    } else {
                        (n / 40 % 2) as u8
                    },
                );
                let i = model.partition_point(|m| *m < e);
                let dup = model.get(i) == Some(&e);
                assert_eq!(x.insert(e), !dup, "insert {e:?}");
                if !dup {
                    model.insert(i, e);
                }
                if r.is_multiple_of(13) && !model.is_empty() {
                    let k = (r as usize / 13) % model.len();
                    let p = x.find(&model[k]).expect("present");
                    x.remove(p);
                    model.remove(k);
                }
                if r.is_multiple_of(97) {
                    let t = n * 10 - 200;
                    let k = model.partition_point(|m| m.ts <= t).checked_sub(1);
                    assert_eq!(
                        x.last_at_or_before(t).map(|p| x.get(p)),
                        k.map(|k| model[k])
                    );
                    if let (Some(p), Some(k)) = (x.last_at_or_before(t), k) {
                        x.prune_to(p);
                        model.drain(..k);
                    }
                }
                if r.is_multiple_of(101) {
                    let t = n * 10 - 100;
                    x.drop_before(t);
                    model.retain(|m| m.ts >= t);
                }
                check(&x, &model);
            }
        }
    }
}
