//! Portable SIMD through `wide`: weights widened to `i16` (4 channels × 4 positions per
//! `i16x16`), activations zero-extended and repeated, `pmaddwd`-style `dot` into `i32x8`
//! holding two partial sums per channel. Exact: no intermediate narrower than `i32`
//! is summed.

use super::{tail_group, with_decoded_panel, OutPtr, Problem, Weights};
use crate::packed::{CodebookWeights, PANEL};
use std::ops::Range;
use wide::{i16x16, i32x8, i8x16};

/// Rows per register tile.
const MR: usize = 4;

pub(super) fn tile(p: &Problem<'_>, rows: Range<usize>, panels: Range<usize>, out: &OutPtr) {
    for panel in panels {
        match p.w {
            Weights::Int8(w) => panel_rows(p, rows.clone(), panel, w.panel_bytes(panel), out),
            Weights::Codebook(w) => {
                with_decoded_panel(w, panel, CodebookWeights::decode_panel, |bytes| {
                    panel_rows(p, rows.clone(), panel, bytes, out)
                })
            }
        }
    }
}

fn panel_rows(p: &Problem<'_>, rows: Range<usize>, panel: usize, w: &[u8], out: &OutPtr) {
    let n = p.w.n();
    let ncols = (n - panel * PANEL).min(PANEL);
    let comp = &p.w.col_sums()[panel * PANEL..panel * PANEL + PANEL];
    for half in 0..2 {
        let c0 = half * 16;
        if c0 >= ncols {
            break;
        }
        let mut r = rows.start;
        while r < rows.end {
            let mr = (rows.end - r).min(MR);
            let sums = block(p, r, mr, w, half);
            for (i, row_sums) in sums.iter().enumerate().take(mr) {
                let len = (ncols - c0).min(16);
                // SAFETY: this tile owns these rows and the columns of `panel`, inside
                // the output as checked by `validate`.
                let dst = unsafe { out.row(r + i, panel * PANEL + c0, len) };
                for (j, d) in dst.iter_mut().enumerate() {
                    let s = row_sums[j];
                    *d = if p.signed {
                        s.wrapping_sub(comp[c0 + j].wrapping_mul(128))
                    } else {
                        s
                    };
                }
            }
            r += mr;
        }
    }
}

/// Sums for up to `MR` rows starting at `r0` and the 16 channels of `half`.
fn block(p: &Problem<'_>, r0: usize, mr: usize, w: &[u8], half: usize) -> [[i32; 16]; MR] {
    let k = p.w.k();
    let groups = p.w.kp() / 4;
    let full = k / 4;
    let mut acc = [[i32x8::splat(0); 4]; MR];
    for g in 0..groups {
        let mut wv = [i16x16::splat(0); 4];
        for (q, v) in wv.iter_mut().enumerate() {
            let off = g * 128 + half * 64 + q * 16;
            let bytes: [u8; 16] = w[off..off + 16].try_into().expect("16 bytes");
            *v = i16x16::from(i8x16::new(bytes.map(|b| b as i8)));
        }
        for (i, acc_row) in acc.iter_mut().enumerate().take(mr) {
            let row = &p.a[(r0 + i) * p.lda..];
            let a4 = if g < full {
                let mut t: [u8; 4] = row[4 * g..4 * g + 4].try_into().expect("4 bytes");
                if p.signed {
                    t = t.map(|b| b ^ 0x80);
                }
                t
            } else {
                tail_group(row, k, g, p.signed)
            };
            let a16 = i16x16::new(std::array::from_fn(|i| i16::from(a4[i % 4])));
            for (q, v) in acc_row.iter_mut().enumerate() {
                *v += a16.dot(wv[q]);
            }
        }
    }
    let mut sums = [[0i32; 16]; MR];
    for (s, acc_row) in sums.iter_mut().zip(acc.iter()) {
        for (q, v) in acc_row.iter().enumerate() {
            let l = v.to_array();
            for c in 0..4 {
                s[q * 4 + c] = l[2 * c].wrapping_add(l[2 * c + 1]);
            }
        }
    }
    sums
}
