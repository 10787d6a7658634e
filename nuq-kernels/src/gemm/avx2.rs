//! AVX2 path. Exact: weights are sign-extended to `i16` (`vpmovsxbw`, 4 channels × 4
//! positions per register), activations are widened to `i16` once per 6-row block, and
//! products are summed by `vpmaddwd`, whose pair sums cannot overflow `i32`.
//! (`vpmaddubsw` would be twice as wide but saturates its `i16` pair sums once both
//! operands span the full 8-bit range.) Register tile: 6 rows × 8 channels — 12
//! accumulators, 2 weight registers and one broadcast activation quadruple (`vpbroadcastq`
//! from the widened rows) out of 16. A tile runs row blocks outer: each block's rows are
//! widened once and meet every panel of the tile while they are in L1 (widened once per
//! panel, the copies took 7–12 % of the path's samples; on the Zen 4, `NUQ_KERNEL=avx2`,
//! 2026-12-07, every layer of ResNet-18 and VGG-Small ran 3–6 % faster, the RGB layers
//! 13 %). Codebook weights are multiplied as the layer's int8
//! copy of them (`CodebookWeights::int8_weights`, made once on first use), as on the
//! AVX-VNNI path: decoding 4-bit indices with `vpshufb` in registers, and other widths
//! into int8 scratch per tile, left the 4-bit models 9–18 % slower on this path
//! (`NUQ_KERNEL=avx2 infer-report --quick` on the Zen 4, 2026-12-07: ResNet-18 batch 1
//! 181–193 → 204–211 img/s, batch 64 189–203 → 228–240, VGG-Small 192–198 → 223–228).

use super::{on_int8, GemmKernel, OutPtr, Problem};
use crate::packed::PANEL;
use std::arch::x86_64::*;
use std::cell::RefCell;
use std::ops::Range;

/// Rows per register tile.
const MR: usize = 6;

thread_local! {
    /// Per-thread scratch for one row block's activations widened to `i16`.
    static WIDE_ROWS: RefCell<Vec<i16>> = const { RefCell::new(Vec::new()) };
}

/// The AVX2 kernel: 6 rows × 8 channels.
pub(super) struct Avx2;

impl GemmKernel for Avx2 {
    const MR: usize = MR;
    const NR: usize = 8;

    unsafe fn tile(p: &Problem<'_>, rows: Range<usize>, panels: Range<usize>, out: &OutPtr) {
        // SAFETY: forwarded from the caller (AVX2 available, the block owned).
        unsafe { tile(p, rows, panels, out) }
    }
}

/// Computes rows `rows` × the columns of `panels`: row blocks outer, each block's rows
/// widened to `i16` once and multiplied by every panel while they are in L1.
///
/// # Safety
/// The CPU must support AVX2, and this call must own the output block it writes.
#[target_feature(enable = "avx2")]
unsafe fn tile(p: &Problem<'_>, rows: Range<usize>, panels: Range<usize>, out: &OutPtr) {
    // Codebook weights: the layer's int8 copy.
    let (p, w) = on_int8(p);
    let kp = p.w.k_padded();
    WIDE_ROWS.with(|cell| {
        let mut wide = cell.borrow_mut();
        if wide.len() < MR * kp {
            wide.resize(MR * kp, 0);
        }
        let mut r = rows.start;
        while r < rows.end {
            let mr = (rows.end - r).min(MR);
            p.widen_rows(r, kp, &mut wide[..mr * kp]);
            for panel in panels.clone() {
                // SAFETY: forwarded from the caller (int8 weights need no more than the
                // codebook ones they copy); `wide` holds the block's `mr` rows.
                unsafe { panel_block(&p, &wide, r, mr, panel, w.panel_bytes(panel), out) }
            }
            r += mr;
        }
    });
}

/// Rows `r .. r + mr` (widened in `wide`, `kp` values each) × one panel whose int8 bytes
/// are `w`.
///
/// # Safety
/// AVX2 must be available and this call must own the output block it writes.
#[target_feature(enable = "avx2")]
unsafe fn panel_block(
    p: &Problem<'_>,
    wide: &[i16],
    r: usize,
    mr: usize,
    panel: usize,
    w: &[u8],
    out: &OutPtr,
) {
    let kp = p.w.k_padded();
    let groups = kp / 4;
    assert!(w.len() >= groups * 128, "panel holds its groups");
    let ncols = (p.w.n() - panel * PANEL).min(PANEL);
    for quarter in 0..4 {
        let c0 = quarter * 8;
        if c0 >= ncols {
            break;
        }
        let mut sums = [[0i32; 8]; MR];
        // SAFETY: AVX2 is enabled; `wide` holds `mr` rows of `kp` values and `w` holds the
        // panel's groups (asserted above).
        unsafe {
            match mr {
                6 => block::<6>(wide, kp, w, quarter, &mut sums),
                5 => block::<5>(wide, kp, w, quarter, &mut sums),
                4 => block::<4>(wide, kp, w, quarter, &mut sums),
                3 => block::<3>(wide, kp, w, quarter, &mut sums),
                2 => block::<2>(wide, kp, w, quarter, &mut sums),
                _ => block::<1>(wide, kp, w, quarter, &mut sums),
            }
        }
        let len = (ncols - c0).min(8);
        for (i, s) in sums.iter().enumerate().take(mr) {
            // SAFETY: this tile owns these rows and this panel's columns.
            let dst = unsafe { out.row(r + i, panel * PANEL + c0, len) };
            dst.copy_from_slice(&s[..len]);
        }
    }
}

/// Weights of group `g`, half `half`, chunk `q` (4 channels × 4 positions) as `i16`.
///
/// # Safety
/// `w` must hold the panel's int8 groups, group `g` included.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn weights(w: *const u8, g: usize, half: usize, q: usize) -> __m256i {
    // SAFETY: group `g` of the panel is inside `w` (caller); unaligned 16-byte load.
    let v = unsafe { _mm_loadu_si128(w.add(g * 128 + half * 64 + q * 16).cast()) };
    _mm256_cvtepi8_epi16(v)
}

/// `R` widened rows × the 8 channels of `quarter` over all `kp / 4` groups.
///
/// # Safety
/// AVX2 must be available, `wide` must hold `R` rows of `kp` values, and `w` the panel's
/// int8 groups.
#[target_feature(enable = "avx2")]
unsafe fn block<const R: usize>(
    wide: &[i16],
    kp: usize,
    w: &[u8],
    quarter: usize,
    sums: &mut [[i32; 8]; MR],
) {
    assert!(wide.len() >= R * kp, "widened rows");
    let groups = kp / 4;
    let (half, q0) = (quarter / 2, (quarter % 2) * 2);
    let a = wide.as_ptr();
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    for g in 0..groups {
        // SAFETY: `g < groups`, inside the panel (caller).
        let (w0, w1) = unsafe {
            (
                weights(w.as_ptr(), g, half, q0),
                weights(w.as_ptr(), g, half, q0 + 1),
            )
        };
        for (i, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: row `i < R` holds `kp ≥ 4g + 4` values (asserted above).
            let quad = unsafe { a.add(i * kp + 4 * g).cast::<i64>().read_unaligned() };
            let av = _mm256_set1_epi64x(quad);
            acc_r[0] = _mm256_add_epi32(acc_r[0], _mm256_madd_epi16(av, w0));
            acc_r[1] = _mm256_add_epi32(acc_r[1], _mm256_madd_epi16(av, w1));
        }
    }
    for (s, acc_r) in sums.iter_mut().zip(acc.iter()) {
        // Each accumulator holds (channel, pair) partial sums for 4 channels; `hadd`
        // folds pairs, the permute restores channel order.
        let v = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(acc_r[0], acc_r[1]));
        // SAFETY: `s` holds 8 i32.
        unsafe { _mm256_storeu_si256(s.as_mut_ptr().cast(), v) };
    }
}
