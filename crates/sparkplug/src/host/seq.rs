//! Sequence numbers (0–255, wrapping) and the per-node reorder buffer.
//!
//! A seq `d` steps ahead of the expected one (mod 256) with `1 <= d <= 127` is *ahead*: a
//! message went missing or is overtaking another. `d >= 128` is *behind*: a late or duplicated
//! message. The buffer never holds two messages with the same seq, so it holds at most 127.

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
