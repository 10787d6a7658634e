//! The `i32` accumulator bound.
//!
//! A dot product of length `K` with `|w| ≤ W` and `|a| ≤ A` is bounded by `K·W·A`, and so
//! is every partial sum a kernel forms on the way (each is a sub-sum of the same terms).
//! When `K·W·A ≤ i32::MAX` no path can overflow; otherwise the kernels return
//! [`KernelError::AccumulatorOverflow`] rather than wrapped numbers.

use crate::KernelError;

/// `Ok(())` when `k · max_w · max_a ≤ i32::MAX`.
///
/// # Errors
/// [`KernelError::AccumulatorOverflow`] otherwise.
pub fn check_accumulator_bound(k: usize, max_w: u32, max_a: u32) -> Result<(), KernelError> {
    let bound = k as u128 * u128::from(max_w) * u128::from(max_a);
    if bound > i32::MAX as u128 {
        Err(KernelError::AccumulatorOverflow {
            k,
            max_w,
            max_a,
            bound,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_edges() {
        // 65793 · 128 · 255 = 2_147_483_520 ≤ 2^31 − 1; one more row overflows.
        assert!(check_accumulator_bound(65_793, 128, 255).is_ok());
        assert!(matches!(
            check_accumulator_bound(65_794, 128, 255),
            Err(KernelError::AccumulatorOverflow { k: 65_794, .. })
        ));
        assert!(check_accumulator_bound(usize::MAX, 0, 255).is_ok());
    }
}
