//! One counter's samples, sorted, in blocks of up to [`BLOCK`]: each block keeps its first and
//! last sample in full and the rest as varint deltas from the sample before (time, tie-break and
//! value; width and session only when they change). A sample of a machine reporting every few
//! seconds takes a few bytes (its deltas, plus its share of the block) instead of 40 plus the
//! slack of a growing `Vec`.
//!
//! Appending (the usual case) encodes one delta; a late sample decodes its block, is inserted
//! and the block is re-encoded (split in two when full).

use super::{get_varint, put_varint, unzigzag, zigzag};
use crate::counters::CounterSample;
use crate::types::Ms;

const BLOCK: usize = 64;

#[derive(Clone, Debug)]
struct Block {
    first: CounterSample,
    last: CounterSample,
    len: usize,
    /// Samples 2..=len, each as a delta from the one before.
    deltas: Vec<u8>,
}

impl Block {
    fn new(s: CounterSample) -> Self {
        Block {
            first: s,
            last: s,
            len: 1,
            deltas: Vec::new(),
        }
    }

    fn push(&mut self, s: CounterSample) {
        encode(&mut self.deltas, &self.last, &s);
        self.last = s;
        self.len += 1;
        if self.len == BLOCK {
            self.deltas.shrink_to_fit();
        }
    }

    fn from_sorted(v: &[CounterSample]) -> Option<Self> {
        let (first, rest) = v.split_first()?;
        let mut b = Block::new(*first);
        for s in rest {
            b.push(*s);
        }
        b.deltas.shrink_to_fit();
        Some(b)
    }

    fn iter(&self) -> BlockIter<'_> {
        BlockIter {
            block: self,
            next: Some(self.first),
            pos: 0,
            left: self.len,
        }
    }

    fn decode(&self) -> Vec<CounterSample> {
        self.iter().collect()
    }
}

fn encode(buf: &mut Vec<u8>, prev: &CounterSample, s: &CounterSample) {
    let meta = s.bits != prev.bits || s.session != prev.session;
    // Sorted by time, so the time delta is ≥ 0; wrapping keeps the round trip exact anyway.
    let dts = u128::from(s.ts.wrapping_sub(prev.ts) as u64);
    put_varint(buf, dts << 1 | u128::from(meta));
    put_varint(buf, zigzag(s.seq.wrapping_sub(prev.seq) as i64 as i128));
    put_varint(buf, zigzag(s.value.wrapping_sub(prev.value) as i64 as i128));
    if meta {
        put_varint(buf, u128::from(s.bits));
        put_varint(buf, u128::from(s.session));
    }
}

struct BlockIter<'a> {
    block: &'a Block,
    next: Option<CounterSample>,
    pos: usize,
    left: usize,
}

impl Iterator for BlockIter<'_> {
    type Item = CounterSample;

    fn next(&mut self) -> Option<CounterSample> {
        if self.left == 0 {
            return None;
        }
        let cur = self.next?;
        self.left -= 1;
        if self.left > 0 {
            let buf = &self.block.deltas;
            let head = get_varint(buf, &mut self.pos);
            let mut s = cur;
            s.ts = cur.ts.wrapping_add((head >> 1) as u64 as i64);
            s.seq = cur
                .seq
                .wrapping_add(unzigzag(get_varint(buf, &mut self.pos)) as u64);
            s.value = cur
                .value
                .wrapping_add(unzigzag(get_varint(buf, &mut self.pos)) as u64);
            if head & 1 == 1 {
                s.bits = get_varint(buf, &mut self.pos) as u8;
                s.session = get_varint(buf, &mut self.pos) as u64;
            }
            self.next = Some(s);
        }
        Some(cur)
    }
}

/// What [`CounterSeries::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Insert {
    /// An equal sample was already there.
    Duplicate,
    /// Inserted; `next` is the time of the sample after it, if any.
    Added { next: Option<Ms> },
}

/// The sorted samples of one counter of one machine.
#[derive(Clone, Debug, Default)]
pub(crate) struct CounterSeries {
    blocks: Vec<Block>,
    len: usize,
}

impl CounterSeries {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Inserts `s` in order (the order of [`CounterSample`]'s `Ord`).
    pub(crate) fn insert(&mut self, s: CounterSample) -> Insert {
        match self.blocks.last_mut() {
            None => self.blocks.push(Block::new(s)),
            Some(b) if b.last < s => {
                if b.len < BLOCK {
                    b.push(s);
                } else {
                    self.blocks.push(Block::new(s));
                }
            }
            Some(_) => return self.insert_inside(s),
        }
        self.len += 1;
        Insert::Added { next: None }
    }

    fn insert_inside(&mut self, s: CounterSample) -> Insert {
        let j = self
            .blocks
            .partition_point(|b| b.first <= s)
            .saturating_sub(1);
        let mut v = self.blocks[j].decode();
        let i = v.partition_point(|e| *e < s);
        if v.get(i) == Some(&s) {
            return Insert::Duplicate;
        }
        v.insert(i, s);
        let next = match v.get(i + 1) {
            Some(n) => Some(n.ts),
            None => self.blocks.get(j + 1).map(|b| b.first.ts),
        };
        let (left, right) = if v.len() > BLOCK {
            v.split_at(v.len() / 2)
        } else {
            (&v[..], &[][..])
        };
        if let Some(b) = Block::from_sorted(left) {
            self.blocks[j] = b;
        }
        if let Some(b) = Block::from_sorted(right) {
            self.blocks.insert(j + 1, b);
        }
        self.len += 1;
        Insert::Added { next }
    }

    /// Calls `f(previous, sample)` for every sample with a time in `[a, b)`, in order;
    /// `previous` is the sample before it in the whole series.
    pub(crate) fn for_each_in(
        &self,
        a: Ms,
        b: Ms,
        mut f: impl FnMut(Option<&CounterSample>, &CounterSample),
    ) {
        let j = self.blocks.partition_point(|bl| bl.last.ts < a);
        let mut prev = j.checked_sub(1).map(|k| self.blocks[k].last);
        for bl in &self.blocks[j..] {
            if bl.first.ts >= b {
                return;
            }
            for cur in bl.iter() {
                if cur.ts >= b {
                    return;
                }
                if cur.ts >= a {
                    f(prev.as_ref(), &cur);
                }
                prev = Some(cur);
            }
        }
    }

    /// Drops every sample before the last one at or before `t` (that one stays: it is the
    /// baseline of the next delta).
    pub(crate) fn prune(&mut self, t: Ms) {
        let k = self.blocks.partition_point(|b| b.first.ts <= t);
        let Some(k) = k.checked_sub(1) else { return };
        let dropped: usize = self.blocks.drain(..k).map(|b| b.len).sum();
        self.len -= dropped;
        // Block 0 now holds the last sample at or before `t` (the next block starts after it).
        let Some(b) = self.blocks.first() else { return };
        let v = b.decode();
        let keep_from = v.partition_point(|e| e.ts <= t).saturating_sub(1);
        if keep_from > 0
            && let Some(nb) = Block::from_sorted(&v[keep_from..])
        {
            self.len -= keep_from;
            self.blocks[0] = nb;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same operations on a plain sorted `Vec` (what the engine used before).
    #[derive(Default)]
    struct Model(Vec<CounterSample>);

    impl Model {
        fn insert(&mut self, s: CounterSample) -> Insert {
            let i = self.0.partition_point(|e| *e < s);
            if self.0.get(i) == Some(&s) {
                return Insert::Duplicate;
            }
            self.0.insert(i, s);
            Insert::Added {
                next: self.0.get(i + 1).map(|n| n.ts),
            }
        }

        fn prune(&mut self, t: Ms) {
            let i = self.0.partition_point(|e| e.ts <= t).saturating_sub(1);
            self.0.drain(..i);
        }

        fn pairs(&self, a: Ms, b: Ms) -> Vec<(Option<CounterSample>, CounterSample)> {
            let i0 = self.0.partition_point(|x| x.ts < a);
            let i1 = self.0.partition_point(|x| x.ts < b);
            (i0..i1)
                .map(|i| (i.checked_sub(1).map(|p| self.0[p]), self.0[i]))
                .collect()
        }
    }

    fn pairs(s: &CounterSeries, a: Ms, b: Ms) -> Vec<(Option<CounterSample>, CounterSample)> {
        let mut v = Vec::new();
        s.for_each_in(a, b, |p, c| v.push((p.copied(), *c)));
        v
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
        let mut rng = 7u64;
        let mut series = CounterSeries::default();
        let mut model = Model::default();
        for n in 0..5_000i64 {
            let r = lcg(&mut rng);
            // Mostly in order, some late, some duplicates, wraps, session and width changes.
            let ts = if r.is_multiple_of(7) {
                n * 100 - (r as i64 % 3_000)
            } else {
                n * 100
            };
            let seq = if r.is_multiple_of(11) {
                u64::MAX - r % 5
            } else {
                r % 50
            };
            let value = if r.is_multiple_of(13) {
                r
            } else {
                n as u64 / 3
            };
            let bits = if r.is_multiple_of(17) { 16 } else { 64 };
            let session = if r.is_multiple_of(19) { r % 3 } else { 0 };
            let s = CounterSample::new(ts, seq, value.into(), bits, session);
            assert_eq!(series.insert(s), model.insert(s), "insert {n}");
            if r.is_multiple_of(5) {
                assert_eq!(series.insert(s), Insert::Duplicate);
            }
            if n % 701 == 0 {
                let t = n * 100 - 20_000;
                series.prune(t);
                model.prune(t);
            }
            assert_eq!(series.len(), model.0.len());
            if n % 97 == 0 {
                let a = n * 100 - 30_000;
                assert_eq!(pairs(&series, a, a + 10_000), model.pairs(a, a + 10_000));
            }
        }
        assert_eq!(
            pairs(&series, Ms::MIN, Ms::MAX),
            model.pairs(Ms::MIN, Ms::MAX)
        );
    }

    #[test]
    fn extreme_values_round_trip() {
        let mut series = CounterSeries::default();
        let mut model = Model::default();
        for s in [
            CounterSample::new(0, u64::MAX, -1, 64, u64::MAX),
            CounterSample::new(0, 0, i128::from(u64::MAX), 8, 0),
            CounterSample::new(253_402_300_799_999, 0, 0, 1, 1),
            CounterSample::new(1, 5, 3, 32, 9),
        ] {
            assert_eq!(series.insert(s), model.insert(s));
        }
        assert_eq!(
            pairs(&series, Ms::MIN, Ms::MAX),
            model.pairs(Ms::MIN, Ms::MAX)
        );
    }
}
