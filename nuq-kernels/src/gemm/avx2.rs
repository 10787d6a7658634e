//! AVX2 path. Exact: weights are sign-extended to `i16` (`vpmovsxbw`, 4 channels × 4
//! positions per register), activations zero-extended (`vpmovzxbw` of a broadcast group)
//! and multiplied with `vpmaddwd`, whose pair sums cannot overflow `i32`. (`vpmaddubsw`
//! would be twice as wide but saturates its `i16` pair sums once both operands span the
//! full 8-bit range.) Register tile: 2 rows × 16 channels (8 accumulators). Per-tensor
//! 4-bit codebook weights are decoded in registers with `vpshufb`; other codebook formats
//! are decoded into an int8 scratch panel first.

use super::{tail_group, with_decoded_panel, OutPtr, Problem, Weights};
use crate::packed::{CodebookScope, CodebookWeights, PANEL};
use std::arch::x86_64::*;
use std::ops::Range;

const INT8: u8 = 0;
const CB4: u8 = 1;

/// Computes rows `rows` × the columns of `panels`.
///
/// # Safety
/// The CPU must support AVX2, and this call must own the output block it writes.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn tile(p: &Problem<'_>, rows: Range<usize>, panels: Range<usize>, out: &OutPtr) {
    for panel in panels {
        match p.w {
            Weights::Int8(w) => {
                // SAFETY: forwarded from the caller.
                unsafe {
                    panel_rows::<INT8>(p, rows.clone(), panel, w.panel_bytes(panel), &[0; 16], out)
                }
            }
            Weights::Codebook(w) if w.bits() == 4 && w.scope() == CodebookScope::PerTensor => {
                let lut: [u8; 16] = w.lut64()[..16].try_into().expect("16 levels");
                // SAFETY: forwarded from the caller.
                unsafe {
                    panel_rows::<CB4>(p, rows.clone(), panel, w.panel_bytes(panel), &lut, out)
                }
            }
            Weights::Codebook(w) => {
                with_decoded_panel(w, panel, CodebookWeights::decode_panel, |bytes| {
                    // SAFETY: forwarded from the caller.
                    unsafe { panel_rows::<INT8>(p, rows.clone(), panel, bytes, &[0; 16], out) }
                })
            }
        }
    }
}

#[target_feature(enable = "avx2")]
unsafe fn panel_rows<const KIND: u8>(
    p: &Problem<'_>,
    rows: Range<usize>,
    panel: usize,
    w: &[u8],
    lut: &[u8; 16],
    out: &OutPtr,
) {
    let ncols = (p.w.n() - panel * PANEL).min(PANEL);
    let comp = &p.w.col_sums()[panel * PANEL..panel * PANEL + PANEL];
    for half in 0..2 {
        let c0 = half * 16;
        if c0 >= ncols {
            break;
        }
        let mut r = rows.start;
        while r < rows.end {
            let mr = (rows.end - r).min(2);
            let mut sums = [[0i32; 16]; 2];
            // SAFETY: AVX2 is enabled; `block` reads `w` and rows `r..r+mr` of `p.a`
            // within the bounds `validate` checked.
            unsafe {
                if mr == 2 {
                    block::<2, KIND>(p, r, w, lut, half, &mut sums);
                } else {
                    block::<1, KIND>(p, r, w, lut, half, &mut sums);
                }
            }
            let len = (ncols - c0).min(16);
            for (i, s) in sums.iter().enumerate().take(mr) {
                // SAFETY: this tile owns these rows and this panel's columns.
                let dst = unsafe { out.row(r + i, panel * PANEL + c0, len) };
                for (j, d) in dst.iter_mut().enumerate() {
                    *d = if p.signed {
                        s[j].wrapping_sub(comp[c0 + j].wrapping_mul(128))
                    } else {
                        s[j]
                    };
                }
            }
            r += mr;
        }
    }
}

/// Weights of group `g`, half `half`, chunk `q` (4 channels × 4 positions) as `i16`.
///
/// # Safety
/// `w` must hold the panel's groups in `KIND`'s layout, group `g` included.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn weights<const KIND: u8>(
    w: *const u8,
    lutv: __m128i,
    g: usize,
    half: usize,
    q: usize,
) -> __m256i {
    if KIND == INT8 {
        // SAFETY: group `g` of the panel is inside `w` (caller); unaligned 16-byte load.
        let v = unsafe { _mm_loadu_si128(w.add(g * 128 + half * 64 + q * 16).cast()) };
        _mm256_cvtepi8_epi16(v)
    } else {
        // SAFETY: as above, in the 4-bit layout (64 bytes per group).
        let packed = unsafe { _mm_loadu_si128(w.add(g * 64 + q * 16).cast()) };
        let nib = if half == 0 {
            packed
        } else {
            _mm_srli_epi16::<4>(packed)
        };
        let idx = _mm_and_si128(nib, _mm_set1_epi8(0x0F));
        _mm256_cvtepi8_epi16(_mm_shuffle_epi8(lutv, idx))
    }
}

#[target_feature(enable = "avx2")]
unsafe fn block<const MR: usize, const KIND: u8>(
    p: &Problem<'_>,
    r0: usize,
    w: &[u8],
    lut: &[u8; 16],
    half: usize,
    sums: &mut [[i32; 16]; 2],
) {
    let k = p.w.k();
    let groups = p.w.kp() / 4;
    let full = k / 4;
    // SAFETY: `lut` is 16 readable bytes.
    let lutv = unsafe { _mm_loadu_si128(lut.as_ptr().cast()) };
    let flip = if p.signed { 0x8080_8080u32 as i32 } else { 0 };
    let group_bytes = if KIND == INT8 { 128 } else { 64 };
    assert!(w.len() >= groups * group_bytes, "panel holds its groups");
    let rows: [&[u8]; MR] = std::array::from_fn(|i| &p.a[(r0 + i) * p.lda..][..k]);
    let mut acc = [[_mm256_setzero_si256(); 4]; MR];
    let step = |acc: &mut [[__m256i; 4]; MR], wv: &[__m256i; 4], words: [i32; MR]| {
        for (acc_row, word) in acc.iter_mut().zip(words) {
            let a16 = _mm256_cvtepu8_epi16(_mm_set1_epi32(word));
            for (v, wq) in acc_row.iter_mut().zip(wv.iter()) {
                *v = _mm256_add_epi32(*v, _mm256_madd_epi16(a16, *wq));
            }
        }
    };
    for g in 0..full {
        // SAFETY: `g < groups`, inside the panel (asserted above).
        let wv: [__m256i; 4] =
            std::array::from_fn(|q| unsafe { weights::<KIND>(w.as_ptr(), lutv, g, half, q) });
        let words: [i32; MR] = std::array::from_fn(|i| {
            // SAFETY: `4g + 4 ≤ k` and each row slice holds `k` bytes; unaligned read.
            let word = unsafe { rows[i].as_ptr().add(4 * g).cast::<i32>().read_unaligned() };
            word ^ flip
        });
        step(&mut acc, &wv, words);
    }
    for g in full..groups {
        // SAFETY: as above.
        let wv: [__m256i; 4] =
            std::array::from_fn(|q| unsafe { weights::<KIND>(w.as_ptr(), lutv, g, half, q) });
        let words: [i32; MR] =
            std::array::from_fn(|i| i32::from_le_bytes(tail_group(rows[i], k, g, p.signed)));
        step(&mut acc, &wv, words);
    }
    for (s, acc_row) in sums.iter_mut().zip(acc.iter()) {
        // Each accumulator holds (channel, pair) partial sums for 4 channels; `hadd`
        // folds pairs, the permute restores channel order.
        let lo =
            _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(acc_row[0], acc_row[1]));
        let hi =
            _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(acc_row[2], acc_row[3]));
        // SAFETY: `s` holds 16 i32; two unaligned 8-lane stores fill it.
        unsafe {
            _mm256_storeu_si256(s.as_mut_ptr().cast(), lo);
            _mm256_storeu_si256(s.as_mut_ptr().add(8).cast(), hi);
        }
    }
}
