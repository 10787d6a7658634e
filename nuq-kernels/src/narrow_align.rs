//! A fixed-point alignment of `u8` values computed exactly in 32-bit lanes.
//!
//! [`FixedPointMultiplier::apply`] is defined in 64 bits: `(b·M + 2^(S−1)) >> S`. For a
//! `u8` operand `b` the same value comes out of
//!
//! ```text
//! align(b) = (b·P + ((b·Q + R1) >> T1) + R2) >> T2
//! ```
//!
//! with every intermediate inside `i32`, for the constants [`NarrowAlign::of`] derives:
//! - `S ≤ 22`: `P = M >> S`, `Q = M − P·2^S ∈ [0, 2^S)`, `R1 = 2^(S−1)` (0 at `S = 0`),
//!   `T1 = S`, `R2 = T2 = 0` — the whole part of `M / 2^S` times `b`, plus the rounded
//!   product of the fractional part;
//! - `23 ≤ S ≤ 40`: `M = P·2^16 + Q` with `Q ∈ [−2^15, 2^15)`, `R1 = 0`, `T1 = 16`,
//!   `R2 = 2^(S−17)`, `T2 = S − 16` — the product's low 16 bits floored away first, which
//!   does not change `floor((b·M + 2^(S−1)) / 2^S)`;
//! - `S ≥ 41`: all zero (`|b·M| < 2^39` rounds to 0).
//!
//! The form is accepted only after checking it against the definition for all 256 values
//! of `b`, with every intermediate inside `i32`: a multiplier that needs more bits has no
//! narrow form (`None`), and its channel keeps the 64-bit path.

use nuq_core::FixedPointMultiplier;

/// Rows of constants of a narrow alignment: `P, Q, R1, T1, R2, T2`.
pub(crate) const NARROW_ROWS: usize = 6;

/// The 32-bit form of one channel's alignment of `u8` values (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NarrowAlign {
    /// `[P, Q, R1, T1, R2, T2]`.
    pub consts: [i32; NARROW_ROWS],
    /// `max |align(b)|` over `b ∈ 0..=255`.
    pub max_abs: i64,
}

impl NarrowAlign {
    /// The narrow form of `f` for `u8` operands, or `None` when an intermediate would
    /// leave `i32` (checked for every `b`).
    pub(crate) fn of(f: &FixedPointMultiplier) -> Option<NarrowAlign> {
        let (m, s) = (i64::from(f.multiplier()), i64::from(f.shift()));
        let consts: [i64; NARROW_ROWS] = if s <= 22 {
            let p = m >> s;
            let rd = if s == 0 { 0 } else { 1 << (s - 1) };
            [p, m - (p << s), rd, s, 0, 0]
        } else if s <= 40 {
            let p = (m + (1 << 15)) >> 16;
            [p, m - (p << 16), 0, 16, 1 << (s - 17), s - 16]
        } else {
            [0; NARROW_ROWS]
        };
        let mut narrow = [0i32; NARROW_ROWS];
        for (n, v) in narrow.iter_mut().zip(consts) {
            *n = i32::try_from(v).ok()?;
        }
        let consts = narrow;
        let mut max_abs = 0;
        for b in 0..=255 {
            let v = narrow_apply(&consts, b)?;
            if v != f.apply(b) {
                return None;
            }
            max_abs = max_abs.max(v.abs());
        }
        Some(NarrowAlign { consts, max_abs })
    }
}

/// `align(b)` by the narrow form, in 64 bits, or `None` when an intermediate leaves `i32`
/// or a shift leaves `0..32` (what the vector kernel's `i32` lanes would not hold).
fn narrow_apply(c: &[i32; NARROW_ROWS], b: i64) -> Option<i64> {
    let [p, q, r1, t1, r2, t2] = c.map(i64::from);
    let in32 = |v: i64| (i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(&v);
    let shift_ok = |t: i64| (0..32).contains(&t);
    if !shift_ok(t1) || !shift_ok(t2) {
        return None;
    }
    let bq = b * q;
    let low = bq + r1;
    let bp = b * p;
    let sum = bp + (low >> t1);
    let total = sum + r2;
    [bq, low, bp, sum, total, total >> t2]
        .iter()
        .all(|&v| in32(v))
        .then_some(total >> t2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Where a narrow form exists it is the definition for every `u8`, and it exists
        /// for every multiplier the model's folding produces for levels shortcuts (any
        /// multiplier of magnitude below 2^23 at any shift).
        #[test]
        fn narrow_form_is_the_definition(m in any::<i32>(), shift in 0u8..=62) {
            let f = FixedPointMultiplier::new(m, shift).unwrap();
            match NarrowAlign::of(&f) {
                Some(n) => {
                    for b in 0..=255i64 {
                        prop_assert_eq!(narrow_apply(&n.consts, b), Some(f.apply(b)));
                    }
                }
                None => prop_assert!(shift <= 22 && i64::from(m >> shift).abs() * 255 > 1 << 30,
                    "no narrow form for M = {m}, S = {shift}"),
            }
        }
    }

    #[test]
    fn every_shift_has_a_form_for_a_large_mantissa() {
        for shift in 9..=62 {
            for m in [i32::MAX, i32::MIN, (1 << 30) + 12345, -(1 << 30) - 777] {
                let f = FixedPointMultiplier::new(m, shift).unwrap();
                let n = NarrowAlign::of(&f).unwrap_or_else(|| panic!("M = {m}, S = {shift}"));
                let want = (0..=255).map(|b| f.apply(b).abs()).max().unwrap();
                assert_eq!(n.max_abs, want);
            }
        }
    }
}
