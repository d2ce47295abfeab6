//! Compact in-memory forms of what the OEE engine keeps for late data: counter samples as
//! delta-encoded blocks ([`CounterSeries`]), piecewise-constant inputs (states, cycle times,
//! fault codes and flags) as their changes with the repeats between them as varints
//! ([`StepSeries`]), and slice sums with only their non-zero fields ([`PackedSums`]). All
//! round-trip exactly; they exist because the revision horizon makes the engine hold millions
//! of samples and hundreds of thousands of slices (BENCHMARKS.md, run I), and a gateway that
//! re-publishes unchanged values 20 times a second as many repeats.

mod series;
mod steps;
mod sums;

pub(crate) use series::{CounterSeries, Insert};
pub(crate) use steps::{Gap, Pos, Step, StepSeries};
pub(crate) use sums::PackedSums;

/// Appends `v` as a LEB128 varint (7 bits a byte, low bits first).
fn put_varint(buf: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Reads a varint written by [`put_varint`] at `*pos`, advancing it. Only reads what this module
/// wrote, so a truncated buffer is a bug; it then yields what was read (never panics).
fn get_varint(buf: &[u8], pos: &mut usize) -> u128 {
    let mut v: u128 = 0;
    let mut shift = 0;
    while let Some(&b) = buf.get(*pos) {
        *pos += 1;
        if shift < 128 {
            v |= u128::from(b & 0x7f) << shift;
        }
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    v
}

/// Zigzag: small magnitudes of either sign become small unsigned numbers.
fn zigzag(v: i128) -> u128 {
    ((v << 1) ^ (v >> 127)) as u128
}

fn unzigzag(v: u128) -> i128 {
    ((v >> 1) as i128) ^ -((v & 1) as i128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_extremes() {
        let values = [
            0,
            1,
            -1,
            63,
            -64,
            64,
            i64::MAX as i128,
            i64::MIN as i128,
            i128::MAX,
        ];
        let mut buf = Vec::new();
        for v in values.iter().chain(&[i128::MIN]) {
            put_varint(&mut buf, zigzag(*v));
        }
        let mut pos = 0;
        for v in values.iter().chain(&[i128::MIN]) {
            assert_eq!(unzigzag(get_varint(&buf, &mut pos)), *v);
        }
        assert_eq!(pos, buf.len());
        assert_eq!(buf[0], 0, "zero is one byte");
    }
}
