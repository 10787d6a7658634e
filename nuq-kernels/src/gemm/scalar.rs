//! Scalar reference: the plain definition, read through the weights' logical accessors.

use super::{OutPtr, Problem};
use crate::packed::PANEL;
use std::ops::Range;

pub(super) fn tile(p: &Problem<'_>, rows: Range<usize>, panels: Range<usize>, out: &OutPtr) {
    let (n, k) = (p.w.n(), p.w.k());
    let c0 = panels.start * PANEL;
    let c1 = (panels.end * PANEL).min(n);
    for r in rows {
        let a = &p.a[r * p.lda..r * p.lda + k];
        // SAFETY: this tile owns rows `rows` × columns `c0..c1` of the output, which
        // `validate` checked lie inside it.
        let dst = unsafe { out.row(r, c0, c1 - c0) };
        for (ch, d) in (c0..c1).zip(dst.iter_mut()) {
            let mut sum = 0i32;
            for (kk, &v) in a.iter().enumerate() {
                let av = if p.signed {
                    i32::from(v as i8)
                } else {
                    i32::from(v)
                };
                sum += av * i32::from(p.w.level(ch, kk));
            }
            *d = sum;
        }
    }
}
