//! The AVX-512 register tiles of the direct `f32` convolution: `P` rows × `NV` vectors of 16
//! output lanes in `P · NV ≤ 24` accumulators, one broadcast per row and one load per
//! vector for each step of the reduction.

use std::arch::x86_64::*;

use super::{BLOCK, TILE_ROWS as P};

/// One register tile of the forward pass: output rows `out[0..np]` (each `NV · 16` lanes)
/// `(+)= Σ_t Σ_c a[t][p][c] · w[t · cin + c][..]`, where `a[t][p]` is `*taps.add(t * stride +
/// p)` (a pixel's `cin` input channels, or a zero row) and `w` is a filter block
/// (`[k][BLOCK]`).
///
/// # Safety
/// AVX-512F is available; for every `t < tap_count` and `p < P`, `*taps.add(t * stride + p)`
/// points to `cin` readable `f32`; `w` to `tap_count · cin` rows of `BLOCK` readable `f32`;
/// `out[p]` for `p < np ≤ P` to `NV · 16` writable `f32` that alias none of the inputs.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn forward_tile<const NV: usize>(
    taps: *const *const f32,
    stride: usize,
    tap_count: usize,
    cin: usize,
    w: *const f32,
    out: &[*mut f32; P],
    np: usize,
    accumulate: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; P];
    let mut wq = w;
    for t in 0..tap_count {
        // SAFETY: `t < tap_count`, `p < P`: inside the table (the caller's contract).
        let a: [*const f32; P] = std::array::from_fn(|p| unsafe { *taps.add(t * stride + p) });
        for c in 0..cin {
            // SAFETY: row `t · cin + c` of the block holds `BLOCK ≥ NV · 16` values.
            let wv: [__m512; NV] =
                std::array::from_fn(|v| unsafe { _mm512_loadu_ps(wq.add(16 * v)) });
            for (p, row) in acc.iter_mut().enumerate() {
                // SAFETY: `a[p]` points to `cin > c` values.
                let x = _mm512_set1_ps(unsafe { *a[p].add(c) });
                for (r, wv) in row.iter_mut().zip(&wv) {
                    *r = _mm512_fmadd_ps(x, *wv, *r);
                }
            }
            // SAFETY: at most one past the block's last row.
            wq = unsafe { wq.add(BLOCK) };
        }
    }
    for (row, &o) in acc.iter().zip(out).take(np) {
        for (v, r) in row.iter().enumerate() {
            // SAFETY: `out[p]` holds `NV · 16` writable values.
            unsafe {
                let o = o.add(16 * v);
                let r = if accumulate {
                    _mm512_add_ps(_mm512_loadu_ps(o), *r)
                } else {
                    *r
                };
                _mm512_storeu_ps(o, r);
            }
        }
    }
}

/// One register tile of the weight gradient: `dwt[p][..] += Σ_r a[r][p] · dy[r][..]` for
/// `p < Q` (`Q` consecutive reduction indices: one tap, channels `c .. c + Q`), where
/// `a[r]` is `*rows.add(r)` (a pixel's input channels, or a zero row) read from `c` on, and
/// `dy[r]` the output gradient's row `r` at `dy.add(r * dy_stride)` (`NV · 16` lanes).
///
/// # Safety
/// AVX-512F is available; `*rows.add(r)` for `r < count` points to `c + Q` readable `f32`;
/// `dy.add(r * dy_stride)` to `NV · 16` readable `f32`; `dwt[p]` to `NV · 16` writable `f32`
/// that alias none of the inputs.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn weight_grad_tile<const Q: usize, const NV: usize>(
    rows: *const *const f32,
    count: usize,
    c: usize,
    dy: *const f32,
    dy_stride: usize,
    dwt: &[*mut f32; Q],
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; Q];
    for r in 0..count {
        // SAFETY: `r < count` (the caller's contract).
        let a = unsafe { (*rows.add(r)).add(c) };
        // SAFETY: row `r` of the output gradient holds `NV · 16` values.
        let g: [__m512; NV] =
            std::array::from_fn(|v| unsafe { _mm512_loadu_ps(dy.add(r * dy_stride + 16 * v)) });
        for (p, row) in acc.iter_mut().enumerate() {
            // SAFETY: `a` points to `Q > p` values.
            let x = _mm512_set1_ps(unsafe { *a.add(p) });
            for (s, g) in row.iter_mut().zip(&g) {
                *s = _mm512_fmadd_ps(x, *g, *s);
            }
        }
    }
    for (row, &o) in acc.iter().zip(dwt) {
        for (v, s) in row.iter().enumerate() {
            // SAFETY: `dwt[p]` holds `NV · 16` writable values.
            unsafe {
                let o = o.add(16 * v);
                _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), *s));
            }
        }
    }
}
