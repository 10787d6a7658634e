//! A bounds-checked wrapper around the `gemm` crate's strided `f32` matrix product.

use gemm::Parallelism;

/// A strided read-only matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// A row-major view with row stride `rs`.
    pub fn rows(data: &'a [f32], rs: usize) -> Self {
        Self { data, rs, cs: 1 }
    }

    /// The transpose of a row-major matrix whose row stride is `rs`.
    pub fn transposed(data: &'a [f32], rs: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: rs,
        }
    }

    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst[m×n] = (accumulate ? dst : 0) + lhs[m×k] · rhs[k×n]`, `dst` row-major with row stride
/// `dst_rs`.
///
/// Panics when a view is too short for the requested shape (an internal invariant: callers
/// size their buffers from validated shapes).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: View<'_>,
    rhs: View<'_>,
    parallelism: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        (m - 1) * dst_rs + n <= dst.len(),
        "matmul: destination too short"
    );
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst[i * dst_rs..i * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    assert!(lhs.fits(m, k), "matmul: left operand too short");
    assert!(rhs.fits(k, n), "matmul: right operand too short");
    // SAFETY: the assertions above guarantee every index the product touches,
    // `(i, j) -> i * rs + j * cs` for i < rows and j < cols, lies inside the corresponding slice;
    // `dst` is borrowed mutably and cannot alias `lhs` or `rhs` (shared borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Parallelism for a GEMM that runs alone (not inside a per-group rayon task).
pub(crate) fn whole_pool() -> Parallelism {
    let t = rayon::current_num_threads();
    if t > 1 {
        Parallelism::Rayon(t)
    } else {
        Parallelism::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: View<'_>, b: View<'_>) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    s += a.data[i * a.rs + p * a.cs] as f64 * b.data[p * b.rs + j * b.cs] as f64;
                }
                out[i * n + j] = s as f32;
            }
        }
        out
    }

    #[test]
    fn strided_products_match_naive() {
        let (m, n, k) = (7, 5, 9);
        let a: Vec<f32> = (0..m * k).map(|v| (v as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|v| (v as f32 * 0.11).cos()).collect();
        for (av, bv) in [
            (View::rows(&a, k), View::rows(&b, n)),
            (View::transposed(&a, m), View::transposed(&b, k)),
        ] {
            let want = naive(m, n, k, av, bv);
            let mut got = vec![1.0; m * n];
            matmul(m, n, k, &mut got, n, false, av, bv, Parallelism::None);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4);
            }
            matmul(m, n, k, &mut got, n, true, av, bv, whole_pool());
            for (g, w) in got.iter().zip(&want) {
                assert!((g - 2.0 * w).abs() < 1e-4);
            }
        }
    }
}
