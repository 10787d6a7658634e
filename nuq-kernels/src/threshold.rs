//! Threshold requantization (the paper's MAC thresholds; FINN's `MultiThreshold`).
//!
//! The table is `nuq-core`'s [`MacThresholds`]: each channel `c` has `2^b − 1` thresholds,
//! ascending, and a [`Direction`](nuq_core::Direction); the output index of a rising channel
//! is `#{t : acc ≥ T[c][t]}`, of a falling one (negative folded scale) `#{t : acc ≤ T[c][t]}`,
//! a `b`-bit index in `0 ..= 2^b − 1`.
//!
//! The SIMD paths work channel-parallel: thresholds are stored transposed (`[t][c]`, padded
//! to 16 channels) and falling channels are mapped to rising ones with `x ↦ !x`
//! (`!x = −x − 1` reverses the order of `i32` without overflow), so every lane runs the same
//! compare-and-count loop.

#[cfg(target_arch = "x86_64")]
use crate::error::{check_eq, check_len, check_min};
use crate::threshold_search::{
    count_reached_avx2, level_table16, load_lanes8, lookup_levels16, store_bytes, store_levels8,
    store_low_bytes, SearchRows, SEARCH_MAX_BITS,
};
use crate::{KernelError, KernelPath};
use nuq_core::MacThresholds;

/// Lanes the transposed table is padded to.
const PAD: usize = 16;

/// A [`MacThresholds`] table compiled for the SIMD paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds {
    /// The table as given (the scalar definition).
    mac: MacThresholds,
    /// `[t][cp]` thresholds in the rising domain (`!T` for falling channels), each column
    /// ascending.
    table: Vec<i32>,
    /// Per channel `0` (rising) or `-1` (falling), padded to `cp`.
    flip: Vec<i32>,
    cp: usize,
}

/// A block of [`Thresholds::apply_levels_block`], checked: `rows` rows of `width` channels
/// from `c0` (a multiple of 16) in `acc` and `out` at their strides.
#[cfg(target_arch = "x86_64")]
struct LevelsBlock<'a> {
    acc: &'a [i32],
    lda: usize,
    rows: usize,
    c0: usize,
    width: usize,
    levels: &'a [u8],
    out: &'a mut [u8],
    ldo: usize,
}

impl Thresholds {
    /// Compiles `mac` (already checked: shape and order are `MacThresholds`' invariants).
    ///
    /// ```
    /// use nuq_core::{Direction, MacThresholds};
    /// use nuq_kernels::{threshold::Thresholds, KernelPath};
    /// let mac = MacThresholds::new(1, vec![0, 0], vec![Direction::Rising, Direction::Falling])?;
    /// let t = Thresholds::new(&mac);
    /// let mut levels = [0u8; 4];
    /// let path = KernelPath::best_available();
    /// t.apply_levels_block(path, &[-1, -1, 1, 1], 2, 2, 0, 2, &[5, 9], &mut levels, 2).unwrap();
    /// assert_eq!(levels, [5, 9, 9, 5]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn new(mac: &MacThresholds) -> Self {
        let (channels, count) = (mac.channels(), mac.per_channel());
        let cp = channels.div_ceil(PAD) * PAD;
        let mut table = vec![i32::MAX; count * cp];
        let mut flip = vec![0; cp];
        for c in 0..channels {
            let row = mac.row(c);
            // `!x` reverses the order of i32: a falling channel's ascending row, flipped and
            // read backwards, is ascending.
            if mac.directions()[c].is_falling() {
                flip[c] = -1;
                for (t, &v) in row.iter().rev().enumerate() {
                    table[t * cp + c] = !v;
                }
            } else {
                for (t, &v) in row.iter().enumerate() {
                    table[t * cp + c] = v;
                }
            }
        }
        Thresholds {
            mac: mac.clone(),
            table,
            flip,
            cp,
        }
    }

    /// Channels.
    pub fn channels(&self) -> usize {
        self.mac.channels()
    }

    /// Output bits.
    pub fn bits(&self) -> u8 {
        self.mac.bits()
    }

    /// Per channel `0` (rising) or `-1` (falling): `x ↦ x ^ flip` maps each channel's
    /// accumulators to an order in which its codes do not decrease.
    pub(crate) fn flips(&self) -> &[i32] {
        &self.flip[..self.channels()]
    }

    /// The scalar definition for one accumulator of channel `c`.
    ///
    /// # Panics
    /// When `c ≥ channels`.
    pub fn quantize_one(&self, c: usize, acc: i32) -> u8 {
        self.mac.code(c, i64::from(acc))
    }

    /// Codes of channels `c0 .. c0 + width` (`acc[j]` is channel `c0 + j`) into
    /// `out[..width]`; `c0` is a multiple of 16.
    fn row_codes(&self, path: KernelPath, acc: &[i32], c0: usize, width: usize, out: &mut [u8]) {
        match path {
            KernelPath::Scalar => {
                for (j, (&a, o)) in acc[..width].iter().zip(out.iter_mut()).enumerate() {
                    *o = self.quantize_one(c0 + j, a);
                }
            }
            KernelPath::Portable => self.row_portable(acc, c0, width, out),
            // Blocks whole on x86; elsewhere `ensure_available` rejects these paths.
            KernelPath::Avx2
            | KernelPath::AvxVnni
            | KernelPath::Avx512Vnni
            | KernelPath::Avx512VnniNoVbmi
            | KernelPath::Amx => {
                unreachable!("apply_levels_block runs x86 blocks whole")
            }
        }
    }

    /// Requantizes a block of accumulator rows straight to activation levels, on the
    /// calling thread: row `r < rows` of `acc` (stride `lda`) holds channels
    /// `c0 .. c0 + width` (column `j` is channel `c0 + j`), and `out[r·ldo + j]` receives
    /// `levels[code]`, the level of the code [`Thresholds::quantize_one`] gives. This is the
    /// epilogue of a convolution tile; `levels` has `2^bits` entries.
    ///
    /// # Errors
    /// [`KernelError::PathUnavailable`]; [`KernelError::Unsupported`] for `c0` not a
    /// multiple of 16; [`KernelError::ShapeMismatch`] for a channel range past the table, a
    /// level table of the wrong length or strides narrower than `width`;
    /// [`KernelError::SliceTooShort`] for short slices.
    #[allow(clippy::too_many_arguments)]
    pub fn apply_levels_block(
        &self,
        path: KernelPath,
        acc: &[i32],
        lda: usize,
        rows: usize,
        c0: usize,
        width: usize,
        levels: &[u8],
        out: &mut [u8],
        ldo: usize,
    ) -> Result<(), KernelError> {
        path.ensure_available()?;
        if !c0.is_multiple_of(PAD) {
            return Err(KernelError::Unsupported {
                what: "first channel of a threshold block",
                value: c0 as i64,
                allowed: "a multiple of 16",
            });
        }
        if c0 + width > self.mac.channels() {
            return Err(KernelError::ShapeMismatch {
                what: "threshold block channels (c0 + width ≤ channels)",
                expected: self.mac.channels(),
                found: c0 + width,
            });
        }
        let bits = self.mac.bits();
        check_eq("level table length (2^bits)", 1 << bits, levels.len())?;
        check_min("block row strides (≥ width)", width, lda.min(ldo))?;
        if rows == 0 || width == 0 {
            return Ok(());
        }
        let (acc_len, out_len) = ((rows - 1) * lda + width, (rows - 1) * ldo + width);
        check_len("threshold block accumulators", acc_len, acc.len())?;
        check_len("threshold block output", out_len, out.len())?;
        #[cfg(target_arch = "x86_64")]
        let block = LevelsBlock {
            acc,
            lda,
            rows,
            c0,
            width,
            levels,
            out,
            ldo,
        };
        #[cfg(target_arch = "x86_64")]
        if path.is_avx512() {
            // SAFETY: `ensure_available` confirmed AVX-512; the slices hold `rows` rows of
            // `width` at their strides, `c0` is a multiple of 16 and `levels` has 2^bits
            // entries (all checked above).
            unsafe { self.block_avx512(block) };
            return Ok(());
        }
        #[cfg(target_arch = "x86_64")]
        if matches!(path, KernelPath::Avx2 | KernelPath::AvxVnni) {
            // SAFETY: `ensure_available` confirmed AVX2 (which AVX-VNNI CPUs have); the rest
            // as above.
            unsafe { self.block_avx2(block) };
            return Ok(());
        }
        for r in 0..rows {
            let a = &acc[r * lda..r * lda + width];
            let o = &mut out[r * ldo..r * ldo + width];
            self.row_codes(path, a, c0, width, o);
            for v in o.iter_mut() {
                *v = levels[usize::from(*v)];
            }
        }
        Ok(())
    }

    fn row_portable(&self, acc: &[i32], base: usize, width: usize, out: &mut [u8]) {
        use wide::i32x8;
        let count = self.mac.per_channel();
        for j0 in (0..width).step_by(8) {
            let c0 = base + j0;
            let lanes = (width - j0).min(8);
            let mut x = [0i32; 8];
            x[..lanes].copy_from_slice(&acc[j0..j0 + lanes]);
            let flip: [i32; 8] = self.flip[c0..c0 + 8].try_into().expect("padded");
            let x = i32x8::new(x) ^ i32x8::new(flip);
            // Σ_t (T > x) as −1 per lane; result = count − #(T > x).
            let mut below = i32x8::splat(0);
            for t in 0..count {
                let tv: [i32; 8] = self.table[t * self.cp + c0..][..8]
                    .try_into()
                    .expect("padded");
                below += i32x8::new(tv).simd_gt(x);
            }
            let n = (i32x8::splat(count as i32) + below).to_array();
            for (o, v) in out[j0..j0 + lanes].iter_mut().zip(n) {
                *o = v as u8;
            }
        }
    }

    /// [`Thresholds::block_avx512`] on AVX2 (8 channels a vector): channel blocks outer,
    /// every row counted against the block's table rows (no mask registers for the
    /// search), the codes narrowed in registers and, for at most 16 levels, looked up by one
    /// `vpshufb`; the last block's missing channels masked on load and left unstored.
    ///
    /// # Safety
    /// AVX2 must be available; as [`Thresholds::block_avx512`] otherwise.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn block_avx2(&self, block: LevelsBlock<'_>) {
        use std::arch::x86_64::*;
        let LevelsBlock {
            acc,
            lda,
            rows,
            c0: base,
            width,
            levels,
            out,
            ldo,
        } = block;
        let count = self.mac.per_channel();
        let lut = level_table16(levels);
        for j0 in (0..width).step_by(8) {
            let c0 = base + j0;
            let lanes = (width - j0).min(8);
            // SAFETY: `flip` and every table row are padded to a multiple of 16 channels
            // and `c0` is a multiple of 8 below `channels`, so 8 lanes from `c0` are in
            // bounds.
            let flip = unsafe { _mm256_loadu_si256(self.flip.as_ptr().add(c0).cast()) };
            let table = self.table.as_ptr().wrapping_add(c0);
            for r in 0..rows {
                // SAFETY: row `r` of `acc` and `out` holds `lanes` elements from column
                // `j0` (the caller's checked lengths), the only ones loaded and stored; the
                // table rows as above.
                unsafe {
                    let x = load_lanes8(acc.as_ptr().add(r * lda + j0), lanes);
                    let n = count_reached_avx2(_mm256_xor_si256(x, flip), table, self.cp, count);
                    let dst = out.as_mut_ptr().add(r * ldo + j0);
                    store_levels8(dst, lanes, n, lut, levels);
                }
            }
        }
    }

    /// Levels of the codes of channels `base .. base + width` for
    /// `rows` rows (`acc` row stride `lda`, `out` row stride `ldo`), channel blocks outer so
    /// that a block's table rows stay in L1 across the rows.
    ///
    /// # Safety
    /// AVX-512 F must be available; `base` is a multiple of 16, `base + width ≤ channels`,
    /// `acc` and `out` hold `rows` rows of `width` elements at their strides and `levels`
    /// `2^bits` entries.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn block_avx512(&self, block: LevelsBlock<'_>) {
        use std::arch::x86_64::*;
        let LevelsBlock {
            acc,
            lda,
            rows,
            c0: base,
            width,
            levels,
            out,
            ldo,
        } = block;
        let count = self.mac.per_channel();
        let one = _mm512_set1_epi32(1);
        let bits = self.mac.bits();
        // Codes of up to `SEARCH_MAX_BITS` (4) bits are searched and their (at most 16)
        // levels looked up in a register; longer codes are counted, their levels looked up
        // after the store.
        let search_lut = level_table16(levels).filter(|_| bits <= SEARCH_MAX_BITS);
        for j0 in (0..width).step_by(16) {
            let c0 = base + j0;
            let lanes = (width - j0).min(16);
            let k: __mmask16 = if lanes == 16 {
                0xFFFF
            } else {
                (1u16 << lanes) - 1
            };
            // SAFETY: 16 lanes from `c0`, padded to a 16-channel multiple.
            let flip = unsafe { _mm512_loadu_si512(self.flip.as_ptr().add(c0).cast()) };
            let table = self.table.as_ptr().wrapping_add(c0);
            if let Some(lut) = search_lut {
                // SAFETY: the table rows are padded to 16-channel multiples and `c0` is a
                // multiple of 16 below `channels`.
                let search = unsafe { SearchRows::load(table, self.cp, bits) };
                for r in 0..rows {
                    // SAFETY: as below. Every table row is ascending in the flipped domain
                    // (validated order, `i32::MAX` padding).
                    unsafe {
                        let src = acc.as_ptr().add(r * lda + j0);
                        let x = _mm512_xor_si512(_mm512_maskz_loadu_epi32(k, src), flip);
                        let v = lookup_levels16(lut, search.search_bytes(x));
                        store_bytes(out.as_mut_ptr().add(r * ldo + j0), k, v);
                    }
                }
                continue;
            }
            for r in 0..rows {
                // SAFETY: masked loads/stores touch lanes `j0 .. j0 + lanes` of row `r` of
                // `acc`/`out`; the table rows are padded to 16-channel multiples and `c0` is
                // a multiple of 16 below `channels`.
                unsafe {
                    let src = acc.as_ptr().add(r * lda + j0);
                    let x = _mm512_xor_si512(_mm512_maskz_loadu_epi32(k, src), flip);
                    let mut n = _mm512_setzero_si512();
                    for t in 0..count {
                        let tv = _mm512_loadu_si512(table.add(t * self.cp).cast());
                        let reached = _mm512_cmpge_epi32_mask(x, tv);
                        n = _mm512_mask_add_epi32(n, reached, n, one);
                    }
                    store_low_bytes(out.as_mut_ptr().add(r * ldo + j0), k, n);
                }
                for o in &mut out[r * ldo + j0..r * ldo + j0 + lanes] {
                    *o = levels[usize::from(*o)];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nuq_core::Direction;

    #[test]
    fn counts_reached_thresholds_both_directions() {
        let mac = MacThresholds::new(
            2,
            vec![-5, 0, 5, -5, 0, 5],
            vec![Direction::Rising, Direction::Falling],
        )
        .unwrap();
        let t = Thresholds::new(&mac);
        let acc = [-6, -6, -5, -5, 0, 0, 4, 4, 5, 5, 100, 100];
        let mut out = [0u8; 12];
        for path in KernelPath::available() {
            t.apply_levels_block(path, &acc, 2, 6, 0, 2, &[0, 1, 2, 3], &mut out, 2)
                .unwrap();
            assert_eq!(out, [0, 3, 1, 3, 2, 2, 2, 1, 3, 1, 3, 0], "{path}");
        }
    }
}
