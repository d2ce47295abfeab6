//! Slice sums with only their non-zero fields: a bit mask, then each such field as a zigzag
//! varint. A one-minute slice has about ten non-zero fields, so it takes ~30 bytes on the heap
//! instead of the 224 of [`Sums`].

use super::{get_varint, put_varint, unzigzag, zigzag};
use crate::kpi::Sums;

const FIELDS: usize = 25;

/// [`Sums`], packed. Equal sums pack to equal bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PackedSums(Box<[u8]>);

impl PackedSums {
    pub(crate) fn pack(s: &Sums) -> Self {
        let fields = to_fields(s);
        let mut mask: u32 = 0;
        for (i, f) in fields.iter().enumerate() {
            if *f != 0 {
                mask |= 1 << i;
            }
        }
        let mut buf = Vec::with_capacity(4 + 3 * mask.count_ones() as usize);
        put_varint(&mut buf, u128::from(mask));
        for f in fields.iter().filter(|f| **f != 0) {
            put_varint(&mut buf, zigzag(*f));
        }
        PackedSums(buf.into_boxed_slice())
    }

    pub(crate) fn unpack(&self) -> Sums {
        let mut pos = 0;
        let mask = get_varint(&self.0, &mut pos);
        let mut fields = [0i128; FIELDS];
        for (i, f) in fields.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                *f = unzigzag(get_varint(&self.0, &mut pos));
            }
        }
        from_fields(&fields)
    }
}

/// Every field, in declaration order. The destructuring has no `..`: a new field of [`Sums`]
/// does not compile until it is packed too.
fn to_fields(s: &Sums) -> [i128; FIELDS] {
    let Sums {
        at_ms,
        ppt_ms,
        run_ms,
        micro_stop_ms,
        setup_ms,
        unplanned_ms,
        planned_stop_ms,
        not_scheduled_ms,
        unknown_ms,
        total,
        good,
        reject,
        ideal_ns,
        ideal_good_ns,
        ideal_reject_ns,
        total_samples,
        good_samples,
        failures,
        closed_failures,
        open_failures,
        ttr_ms,
        counter_resets,
        counter_rollovers,
        counter_quarantined,
        gap_attributed,
    } = *s;
    [
        at_ms.into(),
        ppt_ms.into(),
        run_ms.into(),
        micro_stop_ms.into(),
        setup_ms.into(),
        unplanned_ms.into(),
        planned_stop_ms.into(),
        not_scheduled_ms.into(),
        unknown_ms.into(),
        total.into(),
        good.into(),
        reject.into(),
        ideal_ns,
        ideal_good_ns,
        ideal_reject_ns,
        total_samples.into(),
        good_samples.into(),
        failures.into(),
        closed_failures.into(),
        open_failures.into(),
        ttr_ms.into(),
        counter_resets.into(),
        counter_rollovers.into(),
        counter_quarantined.into(),
        gap_attributed.into(),
    ]
}

/// The inverse of [`to_fields`]; the i64 fields came from i64 values, so the casts are exact.
fn from_fields(f: &[i128; FIELDS]) -> Sums {
    let i = |k: usize| f[k] as i64;
    Sums {
        at_ms: i(0),
        ppt_ms: i(1),
        run_ms: i(2),
        micro_stop_ms: i(3),
        setup_ms: i(4),
        unplanned_ms: i(5),
        planned_stop_ms: i(6),
        not_scheduled_ms: i(7),
        unknown_ms: i(8),
        total: i(9),
        good: i(10),
        reject: i(11),
        ideal_ns: f[12],
        ideal_good_ns: f[13],
        ideal_reject_ns: f[14],
        total_samples: i(15),
        good_samples: i(16),
        failures: i(17),
        closed_failures: i(18),
        open_failures: i(19),
        ttr_ms: i(20),
        counter_resets: i(21),
        counter_rollovers: i(22),
        counter_quarantined: i(23),
        gap_attributed: i(24),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_round_trips() {
        let mut f = [0i128; FIELDS];
        for (k, v) in f.iter_mut().enumerate() {
            // Distinct values, both signs, small and at the type's limits.
            *v = match k % 4 {
                0 => k as i128 + 1,
                1 => -(k as i128) * 1_000_003,
                2 => i64::MAX.into(),
                _ => i64::MIN.into(),
            };
        }
        f[12] = i128::MAX;
        f[13] = i128::MIN;
        let s = from_fields(&f);
        assert_eq!(to_fields(&s), f);
        assert_eq!(PackedSums::pack(&s).unpack(), s);
        assert_eq!(PackedSums::pack(&Sums::default()).unpack(), Sums::default());
    }

    #[test]
    fn a_typical_slice_is_small() {
        let s = Sums {
            at_ms: 60_000,
            ppt_ms: 60_000,
            run_ms: 60_000,
            total: 30,
            good: 29,
            reject: 1,
            ideal_ns: 30 * 2_000_000_000,
            ideal_good_ns: 29 * 2_000_000_000,
            ideal_reject_ns: 2_000_000_000,
            total_samples: 30,
            good_samples: 30,
            ..Sums::default()
        };
        let p = PackedSums::pack(&s);
        assert!(p.0.len() < 48, "{} bytes", p.0.len());
        assert_eq!(p.unpack(), s);
    }
}
