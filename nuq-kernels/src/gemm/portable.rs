//! Portable SIMD through `wide` (SSE2 on baseline x86-64, NEON on aarch64): activations
//! widened to `i16` once per 2-row block, weights sign-extended to `i16x16` (4 channels ×
//! 4 positions), and `pmaddwd`-style `dot` into `i32x8` holding two partial sums per
//! channel. Exact: no intermediate narrower than `i32` is summed. Register tile: 2 rows ×
//! 8 channels, which fits the 16 vector registers of SSE2 (each `wide` 256-bit type is
//! two of them).

use super::{with_decoded_panel, GemmKernel, OutPtr, Problem, Weights};
use crate::packed::{CodebookWeights, PANEL};
use std::cell::RefCell;
use std::ops::Range;
use wide::{i16x16, i32x8, i64x4, i8x16};

/// Rows per register tile.
const MR: usize = 2;

thread_local! {
    /// Per-thread scratch for one row block's activations widened to `i16`.
    static WIDE_ROWS: RefCell<Vec<i16>> = const { RefCell::new(Vec::new()) };
    /// Per-thread scratch for one panel's weights widened to `i16`.
    static WIDE_PANEL: RefCell<Vec<i16x16>> = const { RefCell::new(Vec::new()) };
}

/// The `wide` kernel: 2 rows × 8 channels.
pub(super) struct Portable;

impl GemmKernel for Portable {
    const MR: usize = MR;
    const NR: usize = 8;

    unsafe fn tile(p: &Problem<'_>, rows: Range<usize>, panels: Range<usize>, out: &OutPtr) {
        tile(p, rows, panels, out);
    }
}

fn tile(p: &Problem<'_>, rows: Range<usize>, panels: Range<usize>, out: &OutPtr) {
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
    let kp = p.w.k_padded();
    let ncols = (p.w.n() - panel * PANEL).min(PANEL);
    WIDE_PANEL.with(|panel_cell| {
        WIDE_ROWS.with(|cell| {
            // The panel's weights as i16x16 chunks: chunk `q` of group `g` (channels 4q..4q+4).
            let mut chunks = panel_cell.borrow_mut();
            chunks.clear();
            chunks.extend(w[..kp * PANEL].chunks_exact(16).map(|c| {
                let bytes: [u8; 16] = c.try_into().expect("16 bytes");
                i16x16::from(i8x16::new(bytes.map(|b| b as i8)))
            }));
            let mut wide = cell.borrow_mut();
            if wide.len() < MR * kp {
                wide.resize(MR * kp, 0);
            }
            let mut r = rows.start;
            while r < rows.end {
                let mr = (rows.end - r).min(MR);
                p.widen_rows(r, kp, &mut wide[..mr * kp]);
                for quarter in 0..4 {
                    let c0 = quarter * 8;
                    if c0 >= ncols {
                        break;
                    }
                    let sums = block(&wide[..MR * kp], kp, mr, &chunks, quarter);
                    let len = (ncols - c0).min(8);
                    for (i, s) in sums.iter().enumerate().take(mr) {
                        // SAFETY: this tile owns these rows and the columns of `panel`, inside
                        // the output as checked by `validate`.
                        let dst = unsafe { out.row(r + i, panel * PANEL + c0, len) };
                        dst.copy_from_slice(&s[..len]);
                    }
                }
                r += mr;
            }
        })
    });
}

/// Sums for up to `MR` widened rows and the 8 channels of `quarter`.
fn block(wide: &[i16], kp: usize, mr: usize, chunks: &[i16x16], quarter: usize) -> [[i32; 8]; MR] {
    let (half, q0) = (quarter / 2, (quarter % 2) * 2);
    let mut acc = [[i32x8::splat(0); 2]; MR];
    for (g, group) in chunks.chunks_exact(8).enumerate() {
        let (w0, w1) = (group[half * 4 + q0], group[half * 4 + q0 + 1]);
        for (i, acc_r) in acc.iter_mut().enumerate().take(mr) {
            // The 4 values read as one i64 in memory order (so any endianness keeps
            // their lane order), repeated over the 16 lanes.
            let quad: i64 = bytemuck::pod_read_unaligned(bytemuck::cast_slice(
                &wide[i * kp + 4 * g..i * kp + 4 * g + 4],
            ));
            let av: i16x16 = bytemuck::cast(i64x4::splat(quad));
            acc_r[0] += av.dot(w0);
            acc_r[1] += av.dot(w1);
        }
    }
    let mut sums = [[0i32; 8]; MR];
    for (s, acc_r) in sums.iter_mut().zip(acc.iter()) {
        for (c, v) in acc_r.iter().enumerate() {
            let l = v.to_array();
            for j in 0..4 {
                s[c * 4 + j] = l[2 * j].wrapping_add(l[2 * j + 1]);
            }
        }
    }
    sums
}
