//! Scalar reference: the plain definition `C[r][ch] = Σ_k a[r][k] · w[ch][k]`, reading the
//! weights through their logical accessors (so the packed layouts are checked too).

use super::{GemmKernel, OutPtr, Problem};
use crate::packed::PANEL;
use std::ops::Range;

/// The scalar reference: one output at a time.
pub(super) struct Scalar;

impl GemmKernel for Scalar {
    const MR: usize = 1;
    const NR: usize = 1;

    unsafe fn tile(p: &Problem<'_>, rows: Range<usize>, panels: Range<usize>, out: &OutPtr) {
        let (n, k) = (p.w.n(), p.w.k());
        let c0 = panels.start * PANEL;
        let c1 = (panels.end * PANEL).min(n);
        // The tile's weights, unpacked once: row `ch − c0` holds `w[ch][0..k]`.
        let w: Vec<i32> = (c0..c1)
            .flat_map(|ch| (0..k).map(move |kk| i32::from(p.w.level(ch, kk))))
            .collect();
        let mut a = vec![0i32; k];
        for r in rows {
            for (dst, &v) in a.iter_mut().zip(&p.a[r * p.lda..r * p.lda + k]) {
                *dst = i32::from(v);
            }
            // SAFETY: this tile owns rows `rows` × columns `c0..c1` of the output, which
            // `validate` checked lie inside it.
            let dst = unsafe { out.row(r, c0, c1 - c0) };
            for (d, wrow) in dst.iter_mut().zip(w.chunks_exact(k)) {
                // `check_bound` guarantees the exact sum fits in i32, so the wrapping
                // operations never wrap; they only let the compiler vectorise the loop.
                *d = a
                    .iter()
                    .zip(wrow)
                    .fold(0i32, |s, (&x, &y)| s.wrapping_add(x.wrapping_mul(y)));
            }
        }
    }
}
