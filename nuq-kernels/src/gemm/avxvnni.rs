//! AVX-VNNI path: the VEX-encoded, 256-bit `vpdpbusd` (u8 × i8 → i32, four products per
//! lane, summed without saturation — exact) for CPUs that have AVX-VNNI with or without
//! AVX-512 (Intel Alder Lake / Sapphire Rapids and later, AMD Zen 5).
//!
//! The same kernels are compiled twice (`vnni256_kernels!`): with the VEX `vpdpbusd` of
//! AVX-VNNI, and with the EVEX encoding of the same 256-bit instruction from AVX-512 VNNI +
//! VL. A CPU with AVX-VNNI runs the first; one with only AVX-512 VNNI (Cascade Lake, Ice
//! Lake, Zen 4) runs the second, so the path runs — and its tests run — on every VNNI CPU,
//! not only on the few without AVX-512 where it is the fastest path. Where AVX-512 VNNI is
//! there, the 512-bit path stays the automatic choice.
//!
//! It reads the packed weights exactly as the AVX-512 path does ([`crate::packed`]): a
//! 32-channel panel's group `g` is 128 bytes, four `ymm` vectors of 8 channels × 4
//! positions, so one 32-byte load is a `vpdpbusd` operand as it is.
//!
//! Register tile: 6 rows × 16 channels (half a panel). Per reduction group it takes two
//! weight vectors and one broadcast activation group (`vpbroadcastd` of the row's 4 bytes)
//! per row into 12 accumulators: 12 + 2 + 1 of the 16 `ymm` registers. Twelve independent
//! accumulator chains cover `vpdpbusd`'s latency × throughput (4–5 cycles × 2 per cycle),
//! which a 4 × 16 tile (8 chains) would not; a 4 × 32 tile would need 16 accumulators
//! alone. Both halves of a panel run back to back on the same rows, which are still in L1.
//! Tiles come in multiples of 8 rows ([`crate::archparam::ROW_ALIGN`]), so the last 7 or
//! 8 rows of a tile are split evenly (4 + 3, 4 + 4) rather than leaving a 1- or 2-row
//! block that could not hide the latency.
//!
//! Codebook weights are multiplied as the layer's int8 copy of them
//! ([`CodebookWeights::int8_weights`], made once on first use), on every tile. Decoding 4-
//! and 2-bit indices by `vpshufb` in registers (one decode per 12 `vpdpbusd`, the table
//! and mask taking registers beside the 12 accumulators) or per tile into int8 scratch both
//! cost more: on the Zen 4 (this path in its EVEX encoding, `NUQ_KERNEL=avxvnni
//! infer-report`), per-tile scratch decoding took 9–11 % of the samples of ResNet-18 and
//! VGG-Small, and in-register decoding of tiles of at most 6 rows left ResNet-18 at batch
//! 1 at 461–497 img/s where the copy reads 473–564 (batch 64 593–599 against 613–625).
//!
//! [`CodebookWeights::int8_weights`]: crate::packed::CodebookWeights::int8_weights

use super::{on_int8, GemmKernel, OutPtr, Problem};
use crate::archparam::prefetch_rows_min_bytes;
use crate::packed::PANEL;
use std::arch::x86_64::*;
use std::ops::Range;

/// Rows of the register tile.
const MR: usize = 6;
/// Channels of the register tile (half a panel).
const NR: usize = 16;

/// The AVX-VNNI kernel: 6 rows × 16 channels.
pub(super) struct AvxVnni;

impl GemmKernel for AvxVnni {
    const MR: usize = MR;
    const NR: usize = NR;

    unsafe fn tile(p: &Problem<'_>, rows: Range<usize>, panels: Range<usize>, out: &OutPtr) {
        // SAFETY: the caller owns the block and has checked the path's availability: AVX2
        // with AVX-VNNI (the VEX kernels), or else AVX-512 VNNI + VL (the EVEX ones).
        unsafe {
            if is_x86_feature_detected!("avxvnni") {
                vex::tile(p, rows, panels, out)
            } else {
                evex::tile(p, rows, panels, out)
            }
        }
    }
}

/// Rows of the next register block when `rem` rows are left: full tiles, except that the
/// last 7 or 8 rows split evenly so that no block has fewer than 3 rows (unless the whole
/// range does).
fn block_rows(rem: usize) -> usize {
    if rem > 8 {
        MR
    } else if rem > MR {
        rem.div_ceil(2)
    } else {
        rem
    }
}

/// The arguments of `kernel` (in both encodings): the problem, the first row, the panel's
/// int8 bytes, whether to prefetch the next row block, the output, the half's first column
/// of the problem and the columns to store (`1 ..= 16`).
type KernelArgs<'p, 'a> = (
    &'p Problem<'a>,
    usize,
    &'p [u8],
    bool,
    &'p OutPtr,
    usize,
    usize,
);

/// The kernels, compiled for one encoding of the 256-bit `vpdpbusd`: `$features` is the
/// `target_feature` list every function is compiled with and `$dpbusd` the intrinsic (the
/// same operation in both encodings, so the two instantiations compute the same integers).
macro_rules! vnni256_kernels {
    ($features:literal, $dpbusd:ident) => {
        /// Computes rows `rows` × the columns of `panels`.
        ///
        /// # Safety
        /// The CPU must support `$features`, and this call must own the output block it
        /// writes.
        #[target_feature(enable = $features)]
        pub(super) unsafe fn tile(
            p: &Problem<'_>,
            rows: Range<usize>,
            panels: Range<usize>,
            out: &OutPtr,
        ) {
            // Codebook weights: the layer's int8 copy.
            let (p, w) = on_int8(p);
            let p = &p;
            // Prefetch the next row block while one runs when the activations are likely
            // out of cache ([`prefetch_rows_min_bytes`]); gathered rows are not `lda`
            // apart: no prefetch.
            let prefetch = p.rows_at.is_none() && p.a.len() >= prefetch_rows_min_bytes();
            for panel in panels {
                // SAFETY: forwarded from the caller (int8 weights need no more than the
                // codebook ones they copy).
                unsafe { panel_rows(p, rows.clone(), panel, w.panel_bytes(panel), prefetch, out) }
            }
            if out.stream {
                // Order this tile's non-temporal stores before the tile is reported done.
                _mm_sfence();
            }
        }

        /// Rows `rows` (any count) × one panel whose int8 bytes are `w`, prefetching each next
        /// row block when `prefetch`.
        ///
        /// # Safety
        /// `$features` must be available, `w` must hold the panel's groups, and this call
        /// must own the output block it writes.
        #[target_feature(enable = $features)]
        unsafe fn panel_rows(
            p: &Problem<'_>,
            rows: Range<usize>,
            panel: usize,
            w: &[u8],
            prefetch: bool,
            out: &OutPtr,
        ) {
            let groups = p.w.k_padded() / 4;
            assert!(w.len() >= groups * 128, "panel holds its groups");
            let ncols = (p.w.n() - panel * PANEL).min(PANEL);
            let mut r = rows.start;
            while r < rows.end {
                let mr = block_rows(rows.end - r);
                for half in 0..PANEL / NR {
                    let c0 = half * NR;
                    if c0 >= ncols {
                        break;
                    }
                    let cols = (ncols - c0).min(NR);
                    // SAFETY: the rows `r..r+mr` of `p.a` hold `k_read` bytes each (`validate`, or
                    // `gemm_block_gather` for gathered rows), `w` holds the panel's groups (asserted
                    // above), and this tile owns the output block `(r..r+mr) × (panel columns)`,
                    // which lies inside the output; `cols` of the half's columns exist.
                    unsafe {
                        let args = (p, r, w, prefetch, out, panel * PANEL + c0, cols);
                        match (mr, half) {
                            (6, 0) => kernel::<6, 0>(args),
                            (5, 0) => kernel::<5, 0>(args),
                            (4, 0) => kernel::<4, 0>(args),
                            (3, 0) => kernel::<3, 0>(args),
                            (2, 0) => kernel::<2, 0>(args),
                            (_, 0) => kernel::<1, 0>(args),
                            (6, _) => kernel::<6, 1>(args),
                            (5, _) => kernel::<5, 1>(args),
                            (4, _) => kernel::<4, 1>(args),
                            (3, _) => kernel::<3, 1>(args),
                            (2, _) => kernel::<2, 1>(args),
                            (_, _) => kernel::<1, 1>(args),
                        }
                    }
                }
                r += mr;
            }
        }

        /// The two weight vectors (channels `16·HALF .. 16·HALF + 8` and `+ 8 .. + 16` of the
        /// panel) of group `g`: 32 bytes each, as the int8 layout holds them.
        ///
        /// # Safety
        /// `w` must point at the panel's int8 bytes, which hold group `g`.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn group_weights<const HALF: usize>(w: *const u8, g: usize) -> (__m256i, __m256i) {
            // SAFETY: the caller guarantees the bytes read lie inside the panel.
            unsafe {
                let at = w.add(g * 128 + HALF * 64);
                (
                    _mm256_loadu_si256(at.cast()),
                    _mm256_loadu_si256(at.add(32).cast()),
                )
            }
        }

        /// Multiply-accumulates one group: `acc[r] += a[r] (4 bytes, broadcast) · (w0, w1)`.
        #[target_feature(enable = $features)]
        #[inline]
        fn step<const R: usize>(
            acc: &mut [[__m256i; 2]; R],
            a: &[__m256i; R],
            w0: __m256i,
            w1: __m256i,
        ) {
            for (acc_r, &av) in acc.iter_mut().zip(a.iter()) {
                acc_r[0] = $dpbusd(acc_r[0], av, w0);
                acc_r[1] = $dpbusd(acc_r[1], av, w1);
            }
        }

        /// `R` rows × the 16 channels of half `HALF` of a panel over the reduction's live groups
        /// ([`Problem::live`]).
        ///
        /// # Safety
        /// `$features` must be available; rows `r0..r0+R` of `p.a` must be readable for
        /// `k_read` bytes (gathered rows: as `gemm_block_gather` checks), `w` must hold the
        /// panel's `kp / 4` groups of int8 weights, and this call must own rows `r0..r0+R` ×
        /// columns `col..col+cols` of `out`, which lie inside it.
        #[target_feature(enable = $features)]
        unsafe fn kernel<const R: usize, const HALF: usize>(args: KernelArgs<'_, '_>) {
            let (p, r0, w, prefetch, out, col, cols) = args;
            let stream = out.stream;
            let groups = p.w.k_padded() / 4;
            // Groups read whole: those inside the readable bytes (zero past `k`).
            let full = (p.k_read / 4).min(groups);
            let wp = w.as_ptr();
            // Gathered rows' offsets may wrap below `a` (only their live windows lie inside
            // it): formed with wrapping arithmetic, dereferenced only inside the window.
            let rows: [*const u8; R] = std::array::from_fn(|i| match p.rows_at {
                Some(at) => p.a.as_ptr().wrapping_add(at[r0 + i]),
                None => p.a[(r0 + i) * p.lda..].as_ptr(),
            });
            // The next row block's activations, a line per group, prefetched by the first
            // half's call while it runs (a hint only: addresses past the slice are never
            // dereferenced).
            let next = p.a.as_ptr().wrapping_add((r0 + R) * p.lda);
            let next_lines = if prefetch && HALF == 0 {
                (R * p.lda).div_ceil(64)
            } else {
                0
            };
            let mut acc = [[_mm256_setzero_si256(); 2]; R];
            let load_a = |g: usize, skip: usize| -> [__m256i; R] {
                std::array::from_fn(|i| {
                    // SAFETY: `g < full ≤ k_read / 4`, so bytes `4g .. 4g+4` of row `i` are
                    // readable (zero past `k`) — for gathered rows at `skip` past the row's
                    // start, `g` a live group (`gemm_block_gather` checks that every row's
                    // live window lies inside `a`); the 4-byte read is unaligned.
                    let word = unsafe {
                        rows[i]
                            .wrapping_add(4 * g + skip)
                            .cast::<i32>()
                            .read_unaligned()
                    };
                    _mm256_set1_epi32(word)
                })
            };
            // Pieces of `seg_groups` groups, `seg_skip` bytes apart (one piece for plain rows;
            // gathered rows come with `full == groups`), each over
            // its live groups only.
            for (live, skip) in p.live_pieces(full) {
                for g in live {
                    if g < next_lines {
                        _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(g * 64).cast());
                    }
                    // SAFETY: `g < groups`, inside the panel (caller).
                    let (w0, w1) = unsafe { group_weights::<HALF>(wp, g) };
                    step(&mut acc, &load_a(g, skip), w0, w1);
                }
            }
            // Plain rows end their one piece at `full`; gathered rows have no partial group.
            let mut g = full;
            // Groups that are partly or wholly past the readable bytes: activations zero-padded.
            while g < groups {
                // SAFETY: `g < groups`, inside the panel (caller).
                let (w0, w1) = unsafe { group_weights::<HALF>(wp, g) };
                let a: [__m256i; R] =
                    std::array::from_fn(|i| _mm256_set1_epi32(p.tail_group(r0 + i, g)));
                step(&mut acc, &a, w0, w1);
                g += 1;
            }
            for (i, &[v0, v1]) in acc.iter().enumerate() {
                // SAFETY: the caller owns row `r0 + i` for `cols` columns from `col`; whole
                // rows are stored directly (streamed only when the 16 columns are one aligned
                // 64-byte line, as the non-temporal stores require 32-byte alignment and the line
                // must be fully overwritten), partial ones through a local buffer.
                unsafe {
                    let dst = out.at(r0 + i, col);
                    if cols == NR {
                        if stream && (dst as usize).is_multiple_of(64) {
                            _mm256_stream_si256(dst.cast(), v0);
                            _mm256_stream_si256(dst.add(8).cast(), v1);
                        } else {
                            _mm256_storeu_si256(dst.cast(), v0);
                            _mm256_storeu_si256(dst.add(8).cast(), v1);
                        }
                    } else {
                        let mut buf = [0i32; NR];
                        _mm256_storeu_si256(buf.as_mut_ptr().cast(), v0);
                        _mm256_storeu_si256(buf.as_mut_ptr().add(8).cast(), v1);
                        std::ptr::copy_nonoverlapping(buf.as_ptr(), dst, cols);
                    }
                }
            }
        }
    };
}

/// VEX encoding (AVX-VNNI): the path's own CPUs.
mod vex {
    use super::*;
    vnni256_kernels!("avx2,avxvnni", _mm256_dpbusd_avx_epi32);
}

/// EVEX encoding (AVX-512 VNNI + VL) of the same 256-bit kernels, for CPUs without
/// AVX-VNNI.
mod evex {
    use super::*;
    vnni256_kernels!("avx2,avx512vnni,avx512vl", _mm256_dpbusd_epi32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_blocks_cover_without_tiny_tails() {
        for total in 1..=200 {
            let (mut r, mut blocks) = (0, Vec::new());
            while r < total {
                let mr = block_rows(total - r);
                assert!((1..=MR).contains(&mr));
                blocks.push(mr);
                r += mr;
            }
            assert_eq!(r, total);
            let min = blocks.iter().copied().min().unwrap();
            assert!(min >= total.min(3), "{total} rows: blocks {blocks:?}");
        }
    }
}
