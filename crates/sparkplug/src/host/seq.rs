//! Sequence numbers (0–255, wrapping), the per-node reorder buffer and the memory of the seq
//! positions passed.
//!
//! A seq `d` steps ahead of the expected one (mod 256) with `1 <= d <= 127` is *ahead*: a
//! message went missing or is overtaking another. `d >= 128` is *behind*: a late message, a
//! duplicate, or a message after 128 or more lost ones (seq cannot tell them apart; the
//! [`SeqWindow`] can). The buffer never holds two messages with the same seq, so it holds at
//! most 127.

/// How a received seq relates to the expected one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SeqCheck {
    InOrder,
    /// Steps ahead of the expected seq (1..=127).
    Ahead(u8),
    Behind,
}

pub(crate) fn check(expected: u8, seq: u8) -> SeqCheck {
    match seq.wrapping_sub(expected) {
        0 => SeqCheck::InOrder,
        d @ 1..=127 => SeqCheck::Ahead(d),
        _ => SeqCheck::Behind,
    }
}

/// What a message whose seq is behind the expected one is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Behind {
    /// The missing message of a gap that was given up.
    Late,
    /// A copy of a message already received (or a message older than the current NBIRTH).
    Duplicate,
    /// Newer than everything applied: 128 or more messages were lost before it.
    New,
}

/// What the host remembers of the seq positions the expected seq has passed in the current
/// session: which were given up, and the newest payload timestamp applied. Updated per applied
/// message with a bit operation and a comparison.
#[derive(Clone, Debug, Default)]
pub(crate) struct SeqWindow {
    /// One bit per seq: set when the expected seq last passed that position without its message
    /// (a gap given up), cleared when its message was applied or arrived late. Only positions
    /// behind the expected one are ever read, and those were passed at most 128 steps ago, so
    /// each bit describes the current lap.
    skipped: [u64; 4],
    /// The newest payload timestamp of the messages applied in this session (NBIRTH included).
    newest: Option<u64>,
}

impl SeqWindow {
    /// A new session (NBIRTH with this payload timestamp): nothing before it counts.
    pub(crate) fn reset(&mut self, birth_ts: Option<u64>) {
        *self = SeqWindow {
            skipped: [0; 4],
            newest: birth_ts,
        };
    }

    /// The expected seq moves from `expected` past `seq`, whose message (payload timestamp `ts`)
    /// is applied now; the positions in between are given up.
    pub(crate) fn pass(&mut self, expected: u8, seq: u8, ts: Option<u64>) {
        let mut p = expected;
        while p != seq {
            self.mark(p, true);
            p = p.wrapping_add(1);
        }
        self.mark(seq, false);
        if let Some(t) = ts {
            self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
        }
    }

    /// A message with a seq behind the expected one and payload timestamp `ts`. A timestamp
    /// newer than every applied one means new data after a loss (an edge node's clock does not
    /// run backwards within a session); otherwise a given-up position means late, and anything
    /// else a duplicate. Without timestamps to compare, a position that was not given up is
    /// taken as a loss: QoS 0, which Sparkplug uses for data, never duplicates, and a wrong
    /// guess costs a rebirth, not data.
    pub(crate) fn classify(&self, seq: u8, ts: Option<u64>) -> Behind {
        match (ts, self.newest) {
            (Some(t), Some(n)) if t > n => Behind::New,
            _ if self.is_skipped(seq) => Behind::Late,
            (Some(_), Some(_)) => Behind::Duplicate,
            _ => Behind::New,
        }
    }

    /// The late message of a given-up position arrived: a second copy is a duplicate.
    pub(crate) fn arrived_late(&mut self, seq: u8) {
        self.mark(seq, false);
    }

    fn is_skipped(&self, seq: u8) -> bool {
        self.skipped[usize::from(seq >> 6)] & (1 << (seq & 63)) != 0
    }

    fn mark(&mut self, seq: u8, skipped: bool) {
        let word = &mut self.skipped[usize::from(seq >> 6)];
        let bit = 1u64 << (seq & 63);
        if skipped {
            *word |= bit;
        } else {
            *word &= !bit;
        }
    }
}

/// Messages whose seq is ahead of the expected one, with the deadline of the open gap.
#[derive(Debug)]
pub(crate) struct ReorderBuffer<M> {
    items: Vec<(u8, M)>,
    /// When the open gap is given up (`None` while the buffer is empty).
    pub(crate) deadline: Option<u64>,
}

impl<M> Default for ReorderBuffer<M> {
    fn default() -> Self {
        ReorderBuffer {
            items: Vec::new(),
            deadline: None,
        }
    }
}

impl<M> ReorderBuffer<M> {
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn contains(&self, seq: u8) -> bool {
        self.items.iter().any(|(s, _)| *s == seq)
    }

    /// Adds a message; the caller has checked capacity and duplicates.
    pub(crate) fn push(&mut self, seq: u8, msg: M) {
        self.items.push((seq, msg));
    }

    /// Removes and returns the message with this seq.
    pub(crate) fn take(&mut self, seq: u8) -> Option<M> {
        let i = self.items.iter().position(|(s, _)| *s == seq)?;
        Some(self.items.swap_remove(i).1)
    }

    /// Removes everything, in seq order counted from `expected`.
    pub(crate) fn drain_in_order(&mut self, expected: u8) -> Vec<(u8, M)> {
        let mut items = std::mem::take(&mut self.items);
        items.sort_by_key(|(s, _)| s.wrapping_sub(expected));
        self.deadline = None;
        items
    }

    /// Drops everything; returns how many messages were dropped.
    pub(crate) fn clear(&mut self) -> usize {
        self.deadline = None;
        std::mem::take(&mut self.items).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_check_wraps_at_256() {
        assert_eq!(check(5, 5), SeqCheck::InOrder);
        assert_eq!(check(255, 0), SeqCheck::Ahead(1));
        assert_eq!(check(250, 3), SeqCheck::Ahead(9));
        assert_eq!(check(5, 4), SeqCheck::Behind);
        assert_eq!(check(0, 255), SeqCheck::Behind);
        assert_eq!(check(0, 127), SeqCheck::Ahead(127));
        assert_eq!(check(0, 128), SeqCheck::Behind);
    }

    #[test]
    fn window_tells_late_duplicate_and_new_apart() {
        let mut w = SeqWindow::default();
        w.reset(Some(100));
        // Birth at 250: 251 applied, 252–254 given up, 255 applied, 0–2 given up, 3 applied.
        w.pass(251, 251, Some(101));
        w.pass(252, 255, Some(105));
        w.pass(0, 3, Some(109));
        for s in [252, 253, 254, 0, 1, 2] {
            assert_eq!(w.classify(s, Some(104)), Behind::Late, "{s}");
        }
        for s in [251, 255, 3, 200] {
            assert_eq!(w.classify(s, Some(101)), Behind::Duplicate, "{s}");
        }
        // Newer than everything applied: new, whatever the position.
        assert_eq!(w.classify(252, Some(110)), Behind::New);
        assert_eq!(w.classify(251, Some(110)), Behind::New);
        // Equal to the newest is not newer.
        assert_eq!(w.classify(3, Some(109)), Behind::Duplicate);
        w.arrived_late(253);
        assert_eq!(w.classify(253, Some(104)), Behind::Duplicate);
        // Without a timestamp only a given-up position is late.
        assert_eq!(w.classify(254, None), Behind::Late);
        assert_eq!(w.classify(255, None), Behind::New);
        // A new session forgets the old one's given-up positions.
        w.reset(Some(200));
        assert_eq!(w.classify(254, Some(104)), Behind::Duplicate);
        assert_eq!(w.classify(254, Some(201)), Behind::New);
    }

    #[test]
    fn window_marks_a_pass_of_255_positions() {
        let mut w = SeqWindow::default();
        w.reset(Some(1));
        w.pass(10, 9, Some(2));
        assert_eq!(w.skipped.iter().map(|x| x.count_ones()).sum::<u32>(), 255);
        assert_eq!(w.classify(9, Some(2)), Behind::Duplicate);
        assert_eq!(w.classify(8, Some(2)), Behind::Late);
    }

    #[test]
    fn drain_orders_by_distance_across_the_wrap() {
        let mut b = ReorderBuffer::default();
        for s in [2u8, 255, 0, 1] {
            b.push(s, s);
        }
        b.deadline = Some(10);
        let order: Vec<u8> = b.drain_in_order(254).into_iter().map(|(s, _)| s).collect();
        assert_eq!(order, vec![255, 0, 1, 2]);
        assert!(b.is_empty());
        assert_eq!(b.deadline, None);
    }

    #[test]
    fn take_and_clear() {
        let mut b = ReorderBuffer::default();
        b.push(7, "a");
        b.push(9, "b");
        assert!(b.contains(9));
        assert_eq!(b.take(7), Some("a"));
        assert_eq!(b.take(7), None);
        assert_eq!(b.len(), 1);
        assert_eq!(b.clear(), 1);
    }
}
