//! Residual join straight to activation levels: a shifted accumulator plus a fixed-point
//! aligned shortcut, requantized by 64-bit per-channel thresholds.
//!
//! For element `(row, c)` with main branch `a` (an `i32` accumulator) and shortcut `b` (an
//! `i32` accumulator or `u8` activation levels):
//!
//! ```text
//! s    = (a << a_shift) + align_c(b)          align_c = FixedPointMultiplier::apply
//! code = #{t : s ≥ T[c][t]}   (rising channel)      ((v·M_c + 2^(S_c−1)) >> S_c)
//!        #{t : s ≤ T[c][t]}   (falling channel)
//! out  = levels[code]
//! ```
//!
//! all in exact 64-bit arithmetic: with `|a|, |b|, |M| ≤ 2^31`, `a_shift ≤ 30` and
//! `S ≤ 62` no intermediate exceeds `2^62 + 2^61`, so nothing can wrap. The threshold order
//! within a channel does not matter (the code counts them).
//!
//! The AVX-512 path runs 8 channels per vector (`vpmuldq` for the exact 32×32→64 product,
//! `vpsravq` for the per-channel rounding shift) and maps falling channels to rising ones
//! with `x ↦ !x`, which reverses the order of `i64` without overflow; the other paths use
//! the scalar definition.
//!
//! Inside a fused convolution the bound on `|a|` is known. A 16-channel block of a levels
//! shortcut whose sums that bound proves to lie strictly inside `i32`, with every channel's
//! alignment exact in 32-bit lanes (`narrow_align`), runs 16 channels per vector in `i32`:
//! `vpmulld` twice and two variable shifts for the alignment, one compare-and-blend search
//! for the code. The result is the same integer.

use crate::archparam::RESIDUAL_TASK_ELEMENTS;
use crate::error::{check_eq, check_len};
use crate::narrow_align::{NarrowAlign, NARROW_ROWS};
use crate::threshold_search::{
    count_reached_avx2, level_table16, lookup_levels16, store_bytes, store_levels8,
    store_low_bytes, SearchRows, SEARCH_MAX_BITS,
};
use crate::{KernelError, KernelPath};
use nuq_core::{FixedPointMultiplier, MacThresholds};
use rayon::prelude::*;

/// Channels the per-channel tables are padded to (one 16-lane `i32` vector, two 8-lane
/// `i64` vectors).
const LANES: usize = 16;

/// The shortcut branch of a residual join.
#[derive(Debug, Clone, Copy)]
pub enum Shortcut<'a> {
    /// Accumulators (a projection shortcut), `[rows][channels]`.
    Int32(&'a [i32]),
    /// Activation levels (an identity shortcut), `[rows][channels]`.
    Levels(&'a [u8]),
}

impl<'a> Shortcut<'a> {
    /// Elements.
    pub(crate) fn len(&self) -> usize {
        match self {
            Shortcut::Int32(v) => v.len(),
            Shortcut::Levels(v) => v.len(),
        }
    }

    /// The first `len` elements.
    pub(crate) fn prefix(self, len: usize) -> Shortcut<'a> {
        match self {
            Shortcut::Int32(v) => Shortcut::Int32(&v[..len]),
            Shortcut::Levels(v) => Shortcut::Levels(&v[..len]),
        }
    }

    /// The elements from `at` on.
    pub(crate) fn from(self, at: usize) -> Shortcut<'a> {
        match self {
            Shortcut::Int32(v) => Shortcut::Int32(&v[at..]),
            Shortcut::Levels(v) => Shortcut::Levels(&v[at..]),
        }
    }
}

/// The inputs of a block of a residual join ([`ResidualThresholds::block`]).
#[derive(Debug, Clone)]
pub(crate) struct Block<'a> {
    /// Main-branch accumulators, `a[r·lda + j]` for channel `chans.start + j`.
    pub a: &'a [i32],
    /// Per-channel bias added to `a` first (`bias[c]` for channel `c`), as the convolution's
    /// epilogue would: [`KernelError::BiasOverflow`] when a sum leaves `i32`.
    pub bias: Option<&'a [i32]>,
    /// A bound on `|a|` before the bias (the producing GEMM's), when known: blocks whose
    /// sums it proves to lie inside `i32` run in 32-bit arithmetic.
    pub bound: Option<i64>,
    /// Row stride of `a`.
    pub lda: usize,
    /// Shortcut, `b[r·ldb + c]` for channel `c`.
    pub b: Shortcut<'a>,
    /// Row stride of `b`.
    pub ldb: usize,
    /// Rows.
    pub rows: usize,
    /// Channels.
    pub chans: std::ops::Range<usize>,
}

/// Per-channel alignment and thresholds of a residual join (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidualThresholds {
    a_shift: u8,
    /// The alignment as given (the scalar definition).
    align: Vec<FixedPointMultiplier>,
    multiplier: Vec<i64>,
    shift: Vec<i64>,
    round: Vec<i64>,
    /// The table as given (the scalar definition).
    mac: MacThresholds,
    /// `[t][cp]` thresholds in the rising domain (`!T` for falling channels), each
    /// channel's column sorted ascending (the count does not depend on the order).
    table: Vec<i64>,
    /// `table` clamped to the `i32` range, for sums known to lie strictly inside it.
    table32: Vec<i32>,
    /// Per channel `0` (rising) or `−1` (falling), padded to `cp`.
    flip: Vec<i64>,
    /// `flip` as `i32`.
    flip32: Vec<i32>,
    /// Per channel, the alignment of a `u8` shortcut in 32-bit arithmetic ([`NarrowAlign`]),
    /// as six rows `[P, Q, R1, T1, R2, T2][cp]` (zeros where a channel has none).
    narrow: Vec<i32>,
    /// Per channel (padded to `cp`): `max |align(b)|` over `b ∈ 0..=255` where the
    /// channel has a 32-bit form, else `None`.
    narrow_max: Vec<Option<i64>>,
    levels: Vec<u8>,
    cp: usize,
}

impl ResidualThresholds {
    /// `align[c]` aligns the shortcut of channel `c`; `mac` requantizes the sum and `levels`
    /// (`2^bits` entries) gives the output level of each code.
    ///
    /// # Errors
    /// [`KernelError::Unsupported`] for `a_shift > 30`; [`KernelError::ShapeMismatch`] for
    /// wrong lengths.
    pub fn new(
        a_shift: u8,
        align: &[FixedPointMultiplier],
        mac: &MacThresholds,
        levels: &[u8],
    ) -> Result<Self, KernelError> {
        let (channels, count) = (mac.channels(), mac.per_channel());
        if a_shift > 30 {
            return Err(KernelError::Unsupported {
                what: "main-branch shift",
                value: i64::from(a_shift),
                allowed: "0 ..= 30",
            });
        }
        check_eq("alignment factors (one per channel)", channels, align.len())?;
        check_eq("level table (2^bits entries)", count + 1, levels.len())?;
        let cp = channels.div_ceil(LANES) * LANES;
        let pad = |v: Vec<i64>| {
            let mut v = v;
            v.resize(cp, 0);
            v
        };
        let flip = pad(mac
            .directions()
            .iter()
            .map(|d| -i64::from(d.is_falling()))
            .collect());
        let mut table = vec![i64::MAX; count * cp];
        let mut column = Vec::with_capacity(count);
        for c in 0..channels {
            column.clear();
            column.extend(mac.row(c).iter().map(|&t| i64::from(t) ^ flip[c]));
            column.sort_unstable();
            for (t, &v) in column.iter().enumerate() {
                table[t * cp + c] = v;
            }
        }
        let mut narrow = vec![0i32; NARROW_ROWS * cp];
        let mut narrow_max = vec![Some(0); cp];
        for (c, f) in align.iter().enumerate() {
            narrow_max[c] = NarrowAlign::of(f).map(|n| {
                for (row, v) in n.consts.iter().enumerate() {
                    narrow[row * cp + c] = *v;
                }
                n.max_abs
            });
        }
        let table32 = table
            .iter()
            .map(|&t| t.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
            .collect();
        Ok(Self {
            a_shift,
            multiplier: pad(align.iter().map(|f| i64::from(f.multiplier())).collect()),
            shift: pad(align.iter().map(|f| i64::from(f.shift())).collect()),
            round: pad(align
                .iter()
                .map(|f| match f.shift() {
                    0 => 0,
                    s => 1i64 << (s - 1),
                })
                .collect()),
            align: align.to_vec(),
            mac: mac.clone(),
            table,
            table32,
            flip32: flip.iter().map(|&f| f as i32).collect(),
            flip,
            narrow,
            narrow_max,
            levels: levels.to_vec(),
            cp,
        })
    }

    /// Channels.
    pub fn channels(&self) -> usize {
        self.mac.channels()
    }

    /// The scalar definition for one element of channel `c`: the output level.
    ///
    /// # Panics
    /// When `c ≥ channels`.
    pub fn level_one(&self, c: usize, a: i32, b: i32) -> u8 {
        let s = (i64::from(a) << self.a_shift) + self.align[c].apply(i64::from(b));
        self.levels[usize::from(self.mac.code(c, s))]
    }

    /// Joins `a` and `b` (`[rows][channels]` each) into levels in `out`; rows are spread
    /// over the current rayon pool.
    ///
    /// # Errors
    /// [`KernelError::PathUnavailable`]; [`KernelError::ShapeMismatch`] when `a` is not
    /// whole rows or `b` differs in length; [`KernelError::SliceTooShort`] for a short
    /// `out`.
    pub fn apply(
        &self,
        path: KernelPath,
        a: &[i32],
        b: Shortcut<'_>,
        out: &mut [u8],
    ) -> Result<(), KernelError> {
        path.ensure_available()?;
        let ch = self.mac.channels();
        if !a.len().is_multiple_of(ch) {
            return Err(KernelError::ShapeMismatch {
                what: "residual accumulator length (whole rows of channels)",
                expected: a.len().div_ceil(ch) * ch,
                found: a.len(),
            });
        }
        check_eq("residual shortcut length", a.len(), b.len())?;
        check_len("residual output", a.len(), out.len())?;
        let rows_per_task = (RESIDUAL_TASK_ELEMENTS / ch).max(1);
        let chunk = rows_per_task * ch;
        a.par_chunks(chunk)
            .zip(out[..a.len()].par_chunks_mut(chunk))
            .enumerate()
            .for_each(|(i, (a, o))| {
                let b = b.from(i * chunk);
                let rows = a.len() / ch;
                let block = Block {
                    a,
                    bias: None,
                    bound: None,
                    lda: ch,
                    b,
                    ldb: ch,
                    rows,
                    chans: 0..ch,
                };
                self.block_unchecked(path, &block, o, ch)
                    .expect("no bias, so no bias overflow");
            });
        Ok(())
    }

    /// Joins a block of `rows` rows × channels `chans`: main branch `a[r·lda + j]`, shortcut
    /// `b[r·ldb + c]` and output `out[r·ldo + j]` for channel `c = chans.start + j`, on the
    /// calling thread (the fused convolution's tiles call it on their own block).
    ///
    /// # Errors
    /// [`KernelError::PathUnavailable`]; [`KernelError::ShapeMismatch`] for channels past
    /// the table or strides narrower than the block; [`KernelError::SliceTooShort`] for a
    /// short slice.
    pub(crate) fn block(
        &self,
        path: KernelPath,
        block: &Block<'_>,
        out: &mut [u8],
        ldo: usize,
    ) -> Result<(), KernelError> {
        path.ensure_available()?;
        let Block {
            a,
            bias,
            bound: _,
            lda,
            b,
            ldb,
            rows,
            ref chans,
        } = *block;
        let width = chans.len();
        if chans.end > self.mac.channels() || width > lda || width > ldo || chans.end > ldb {
            return Err(KernelError::ShapeMismatch {
                what: "residual block channels (within the table and every stride)",
                expected: self.mac.channels().min(lda).min(ldo),
                found: chans.end,
            });
        }
        if rows == 0 || width == 0 {
            return Ok(());
        }
        check_len(
            "residual block accumulators",
            (rows - 1) * lda + width,
            a.len(),
        )?;
        check_len(
            "residual block shortcut",
            (rows - 1) * ldb + chans.end,
            b.len(),
        )?;
        check_len("residual block output", (rows - 1) * ldo + width, out.len())?;
        if let Some(bias) = bias {
            check_len("residual block bias", chans.end, bias.len())?;
        }
        self.block_unchecked(path, block, out, ldo)
    }

    /// [`ResidualThresholds::block`] with the lengths checked by the caller.
    fn block_unchecked(
        &self,
        path: KernelPath,
        block: &Block<'_>,
        out: &mut [u8],
        ldo: usize,
    ) -> Result<(), KernelError> {
        match path {
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512Vnni | KernelPath::Avx512VnniNoVbmi | KernelPath::Amx => {
                // SAFETY: the caller confirmed AVX-512 F/BW/VL and checked the lengths.
                let overflow = unsafe { self.block_avx512(block, out, ldo) };
                if overflow {
                    return Err(KernelError::BiasOverflow);
                }
            }
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 | KernelPath::AvxVnni => {
                // Whole 8-channel groups of a levels shortcut whose sums fit `i32` in 32-bit
                // lanes; the others by the definition. Without a bound on the main branch
                // (a join on its own, not fused into its convolution), the block's own
                // largest magnitude is one: a pass over `a` instead of the scalar join.
                let chans = block.chans.clone();
                let bound = block.bound.or_else(|| Some(max_abs(block)));
                let mut c0 = chans.start;
                while c0 < chans.end {
                    let lanes = (chans.end - c0).min(8);
                    let bias = block.bias;
                    match block.b {
                        Shortcut::Int32(v)
                            if lanes == 8 && self.main_fits(c0, 8, bias, bound, (1 << 30) - 1) =>
                        {
                            let j = c0 - chans.start;
                            // SAFETY: as for the levels shortcut below; `main_fits` holds with
                            // the limit `2^30 − 1`.
                            unsafe {
                                self.join_rows_wide_avx2(
                                    c0,
                                    block.a[j..].as_ptr(),
                                    block.lda,
                                    v[c0..].as_ptr(),
                                    block.ldb,
                                    block.rows,
                                    block.bias,
                                    out[j..].as_mut_ptr(),
                                    ldo,
                                )
                            };
                        }
                        Shortcut::Levels(v)
                            if lanes == 8 && self.narrow_fits(c0, 8, bias, bound) =>
                        {
                            let j = c0 - chans.start;
                            // SAFETY: AVX2 is available on these paths; `block` checked that
                            // every row holds these 8 lanes of `a`, `b` and `out` (and the
                            // bias covers them), and `narrow_fits` holds.
                            unsafe {
                                self.join_rows_narrow_avx2(
                                    c0,
                                    block.a[j..].as_ptr(),
                                    block.lda,
                                    v[c0..].as_ptr(),
                                    block.ldb,
                                    block.rows,
                                    block.bias,
                                    out[j..].as_mut_ptr(),
                                    ldo,
                                )
                            };
                        }
                        _ => self.block_scalar::<true>(block, c0..c0 + lanes, out, ldo)?,
                    }
                    c0 += lanes;
                }
            }
            _ => self.block_scalar::<false>(block, block.chans.clone(), out, ldo)?,
        }
        Ok(())
    }

    /// Channels `chans` (within the block's) of `block` in scalar code: by the definition
    /// ([`ResidualThresholds::level_one`]), or, with `COUNTED`, counting the sum against the
    /// flipped, sorted table (the same code, without a branch per threshold).
    fn block_scalar<const COUNTED: bool>(
        &self,
        block: &Block<'_>,
        chans: std::ops::Range<usize>,
        out: &mut [u8],
        ldo: usize,
    ) -> Result<(), KernelError> {
        let Block {
            a,
            bias,
            lda,
            b,
            ldb,
            rows,
            ..
        } = *block;
        let first = block.chans.start;
        for r in 0..rows {
            for c in chans.clone() {
                let j = c - first;
                let y = match b {
                    Shortcut::Int32(v) => v[r * ldb + c],
                    Shortcut::Levels(v) => i32::from(v[r * ldb + c]),
                };
                let x = a[r * lda + j];
                let x = match bias {
                    Some(bias) => x.checked_add(bias[c]).ok_or(KernelError::BiasOverflow)?,
                    None => x,
                };
                out[r * ldo + j] = if COUNTED {
                    let sum = (i64::from(x) << self.a_shift) + self.align[c].apply(i64::from(y));
                    let flipped = sum ^ self.flip[c];
                    let code = (0..self.mac.per_channel())
                        .filter(|&t| self.table[t * self.cp + c] <= flipped)
                        .count();
                    self.levels[code]
                } else {
                    self.level_one(c, x, y)
                };
            }
        }
        Ok(())
    }

    /// The rows of 8 channels from `c0` of a join with a `u8` levels shortcut, in 32-bit AVX2
    /// lanes (as [`ResidualThresholds::join_rows_narrow_avx512`], the code counted against
    /// every threshold row): `a`, `b` and `out` point at those channels in row 0.
    ///
    /// # Safety
    /// AVX2 must be available; every row `r < rows` must hold the 8 channels at
    /// `a + r·lda`, `b + r·ldb` and `out + r·ldo`, the bias (if any) must cover them, and
    /// `narrow_fits(c0, 8, bias, bound)` must hold for the bound on `a`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn join_rows_narrow_avx2(
        &self,
        c0: usize,
        a: *const i32,
        lda: usize,
        b: *const u8,
        ldb: usize,
        rows: usize,
        bias: Option<&[i32]>,
        out: *mut u8,
        ldo: usize,
    ) {
        use std::arch::x86_64::*;
        let cp = self.cp;
        // SAFETY: the six rows, the flips and the table rows are padded to `cp`, a multiple
        // of 16 above `c0 + 8`; the caller's bias covers the 8 channels.
        let (consts, flip, biasv) = unsafe {
            (
                std::array::from_fn::<__m256i, NARROW_ROWS, _>(|row| {
                    _mm256_loadu_si256(self.narrow.as_ptr().add(row * cp + c0).cast())
                }),
                _mm256_loadu_si256(self.flip32.as_ptr().add(c0).cast()),
                bias.map_or(_mm256_setzero_si256(), |v| {
                    _mm256_loadu_si256(v.as_ptr().add(c0).cast())
                }),
            )
        };
        let [p, q, r1, t1, r2, t2] = consts;
        let shift = _mm_cvtsi32_si128(i32::from(self.a_shift));
        let count = self.mac.per_channel();
        let table = self.table32.as_ptr().wrapping_add(c0);
        let lut = level_table16(&self.levels);
        for r in 0..rows {
            // SAFETY: row `r` holds the 8 channels (caller); the table rows are padded.
            unsafe {
                let av = _mm256_add_epi32(_mm256_loadu_si256(a.add(r * lda).cast()), biasv);
                let bv = _mm256_cvtepu8_epi32(_mm_loadl_epi64(b.add(r * ldb).cast()));
                let low = _mm256_srav_epi32(_mm256_add_epi32(_mm256_mullo_epi32(bv, q), r1), t1);
                let total = _mm256_add_epi32(_mm256_add_epi32(_mm256_mullo_epi32(bv, p), low), r2);
                let sum =
                    _mm256_add_epi32(_mm256_sll_epi32(av, shift), _mm256_srav_epi32(total, t2));
                let x = _mm256_xor_si256(sum, flip);
                let codes = count_reached_avx2(x, table, cp, count);
                store_levels8(out.add(r * ldo), 8, codes, lut, &self.levels);
            }
        }
    }

    /// The rows of 8 channels from `c0` of a join with an `i32` accumulator shortcut on
    /// AVX2: each shortcut's alignment exact in 64-bit scalar code, the rest in 32-bit lanes
    /// (`a + bias`, shifted, plus the alignment, flipped and counted against the `i32`
    /// table). A row with an alignment of magnitude `2^30` or more is joined by the scalar
    /// count instead.
    ///
    /// # Safety
    /// As [`ResidualThresholds::join_rows_narrow_avx2`], with `main_fits(c0, 8, bias,
    /// bound, 2^30 − 1)` in place of `narrow_fits`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn join_rows_wide_avx2(
        &self,
        c0: usize,
        a: *const i32,
        lda: usize,
        b: *const i32,
        ldb: usize,
        rows: usize,
        bias: Option<&[i32]>,
        out: *mut u8,
        ldo: usize,
    ) {
        use std::arch::x86_64::*;
        let cp = self.cp;
        // SAFETY: the flips are padded to `cp`, a multiple of 16 above `c0 + 8`; the
        // caller's bias covers the 8 channels.
        let (flip, biasv) = unsafe {
            (
                _mm256_loadu_si256(self.flip32.as_ptr().add(c0).cast()),
                bias.map_or(_mm256_setzero_si256(), |v| {
                    _mm256_loadu_si256(v.as_ptr().add(c0).cast())
                }),
            )
        };
        let shift = _mm_cvtsi32_si128(i32::from(self.a_shift));
        let count = self.mac.per_channel();
        let table = self.table32.as_ptr().wrapping_add(c0);
        let lut = level_table16(&self.levels);
        let align = &self.align[c0..c0 + 8];
        let mut aligned = [0i32; 8];
        for r in 0..rows {
            // SAFETY: row `r` holds the 8 channels (caller).
            let shortcut = unsafe { std::slice::from_raw_parts(b.add(r * ldb), 8) };
            let mut fits = true;
            for ((v, f), &y) in aligned.iter_mut().zip(align).zip(shortcut) {
                let t = f.apply(i64::from(y));
                fits &= t.abs() < 1 << 30;
                *v = t as i32;
            }
            if !fits {
                for i in 0..8 {
                    // SAFETY: row `r` holds the 8 channels (caller); `main_fits` bounds
                    // `a + bias` inside `i32`.
                    let (x, o) = unsafe { (*a.add(r * lda + i), &mut *out.add(r * ldo + i)) };
                    let x = x + bias.map_or(0, |v| v[c0 + i]);
                    *o = self.level_one(c0 + i, x, shortcut[i]);
                }
                continue;
            }
            // SAFETY: row `r` holds the 8 channels (caller); the table rows are padded.
            unsafe {
                let av = _mm256_add_epi32(_mm256_loadu_si256(a.add(r * lda).cast()), biasv);
                let sum = _mm256_add_epi32(
                    _mm256_sll_epi32(av, shift),
                    _mm256_loadu_si256(aligned.as_ptr().cast()),
                );
                let x = _mm256_xor_si256(sum, flip);
                let codes = count_reached_avx2(x, table, cp, count);
                store_levels8(out.add(r * ldo), 8, codes, lut, &self.levels);
            }
        }
    }

    /// # Safety
    /// AVX-512 F/BW/VL must be available; the block's slices and `out` hold its rows at
    /// their strides ([`ResidualThresholds::block`] checks).
    ///
    /// Sixteen channels per step: the sums are formed as two 8-lane `i64` vectors; when all
    /// of them lie in `(i32::MIN, i32::MAX)` (the usual case) they are narrowed and counted
    /// against the `i32`-clamped table, which is exact there (a threshold clamped down to
    /// `i32::MIN` is reached, one clamped up to `i32::MAX` is not, as for the originals),
    /// with a binary search for codes of up to 4 bits; otherwise both halves are counted in
    /// 64 bits.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn block_avx512(&self, block: &Block<'_>, out: &mut [u8], ldo: usize) -> bool {
        use std::arch::x86_64::*;
        let Block {
            a,
            bias,
            bound,
            lda,
            b,
            ldb,
            rows,
            ref chans,
        } = *block;
        let small16 = level_table16(&self.levels);
        let small: Option<__m512i> = (self.levels.len() <= 16).then(|| {
            let t: [i32; 16] =
                std::array::from_fn(|i| i32::from(self.levels.get(i).copied().unwrap_or(0)));
            // SAFETY: 64 readable bytes.
            unsafe { _mm512_loadu_si512(t.as_ptr().cast()) }
        });
        // The alignment of the 8 channels from `c`: multiplier, shift, rounding, flip.
        // SAFETY: the per-channel tables are padded to a multiple of 16 channels and every
        // call below passes a channel `c` of the block (a multiple of 8 below the padding).
        let align8 = |c: usize| unsafe {
            [
                _mm512_loadu_si512(self.multiplier.as_ptr().add(c).cast()),
                _mm512_loadu_si512(self.shift.as_ptr().add(c).cast()),
                _mm512_loadu_si512(self.round.as_ptr().add(c).cast()),
                _mm512_loadu_si512(self.flip.as_ptr().add(c).cast()),
            ]
        };
        // The bias of the 8 channels from `c` (zeros without one), as `i64`.
        let bias8 = |c: usize, k: __mmask8| match bias {
            // SAFETY: `block` checked that the bias covers the block's channels; the masked
            // load touches only the block's lanes.
            Some(v) => unsafe {
                _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(k, v.as_ptr().add(c)))
            },
            None => _mm512_setzero_si512(),
        };
        let mut overflow: __mmask8 = 0;
        // Channels outer, rows inner: each 16-channel block's tables are loaded once.
        for c0 in chans.clone().step_by(LANES) {
            let lanes = (chans.end - c0).min(LANES);
            let k: __mmask16 = if lanes == LANES {
                0xFFFF
            } else {
                (1u16 << lanes) - 1
            };
            let t32 = self.table32.as_ptr();
            // SAFETY: `table32` columns are ascending and padded to 16 channels.
            let search = (self.mac.bits() <= SEARCH_MAX_BITS)
                .then(|| unsafe { SearchRows::load(t32.add(c0), self.cp, self.mac.bits()) });
            let (k_lo, k_hi) = (k as __mmask8, (k >> 8) as __mmask8);
            let lanes_of = JoinLanes {
                c0,
                k,
                align: [align8(c0), align8(c0 + 8)],
                bias: [bias8(c0, k_lo), bias8(c0 + 8, k_hi)],
                search,
                small,
                small16,
            };
            let j = c0 - chans.start;
            if let (Shortcut::Levels(v), Some(search), Some(lut)) = (b, &lanes_of.search, small16) {
                if self.narrow_fits(c0, lanes, bias, bound) {
                    // SAFETY: as below; `narrow_fits` proved every sum of the block's rows
                    // inside `(i32::MIN, i32::MAX)`.
                    unsafe {
                        self.join_rows_narrow_avx512(
                            &lanes_of,
                            search,
                            lut,
                            a.as_ptr().add(j),
                            lda,
                            v.as_ptr().add(c0),
                            ldb,
                            rows,
                            out.as_mut_ptr().add(j),
                            ldo,
                        )
                    };
                    continue;
                }
            }
            // SAFETY: row `r` of the block reads `a[r·lda + j ..][..lanes]`, `b[r·ldb + c0
            // ..][..lanes]` and writes `out[r·ldo + j ..][..lanes]`, all inside the slices
            // (`block` checked their lengths); the kernel's loads and stores are masked to
            // the block's lanes.
            overflow |= unsafe {
                match b {
                    Shortcut::Int32(v) => self.join_rows_avx512::<false>(
                        &lanes_of,
                        a.as_ptr().add(j),
                        lda,
                        v.as_ptr().add(c0).cast(),
                        ldb,
                        rows,
                        out.as_mut_ptr().add(j),
                        ldo,
                    ),
                    Shortcut::Levels(v) => self.join_rows_avx512::<true>(
                        &lanes_of,
                        a.as_ptr().add(j),
                        lda,
                        v.as_ptr().add(c0),
                        ldb,
                        rows,
                        out.as_mut_ptr().add(j),
                        ldo,
                    ),
                }
            };
        }
        overflow != 0
    }

    /// The rows of one 16-channel block of a join (see [`ResidualThresholds::block_avx512`]),
    /// the shortcut `i32` accumulators or, with `LEVELS`, `u8` levels: `a`, `b` and `out`
    /// point at the block's first channel in row 0, rows `lda`, `ldb`, `ldo` elements apart.
    /// Returns the lanes where `a + bias` left `i32`.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL must be available, and every row `r < rows` must hold the block's
    /// `lanes` elements at `a + r·lda`, `b + r·ldb` (elements of the shortcut's type) and
    /// `out + r·ldo`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn join_rows_avx512<const LEVELS: bool>(
        &self,
        l: &JoinLanes,
        a: *const i32,
        lda: usize,
        b: *const u8,
        ldb: usize,
        rows: usize,
        out: *mut u8,
        ldo: usize,
    ) -> u8 {
        use std::arch::x86_64::*;
        let count = self.mac.per_channel();
        let a_shift = _mm512_set1_epi64(i64::from(self.a_shift));
        let lo_bound = _mm512_set1_epi64(i64::from(i32::MIN) + 1);
        let hi_bound = _mm512_set1_epi64(i64::from(i32::MAX) - 1);
        let i32_min = _mm512_set1_epi64(i64::from(i32::MIN));
        let i32_max = _mm512_set1_epi64(i64::from(i32::MAX));
        let (k_lo, k_hi) = (l.k as __mmask8, (l.k >> 8) as __mmask8);
        let lanes = l.k.count_ones() as usize;
        let mut overflow: __mmask8 = 0;
        // The flipped sum of 8 channels (`half` 0 or 1) of the row at `ar` / `br`.
        // SAFETY: the caller's rows hold these lanes; the loads are masked to them.
        let mut sum8 = |ar: *const i32, br: *const u8, half: usize, k: __mmask8| unsafe {
            let av = _mm512_add_epi64(
                _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(k, ar.add(8 * half))),
                l.bias[half],
            );
            overflow |= _mm512_cmplt_epi64_mask(av, i32_min) | _mm512_cmpgt_epi64_mask(av, i32_max);
            let bv = if LEVELS {
                _mm512_cvtepu8_epi64(_mm_maskz_loadu_epi8(u16::from(k), br.add(8 * half).cast()))
            } else {
                _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(k, br.cast::<i32>().add(8 * half)))
            };
            let [m, s, rd, flip] = l.align[half];
            // `vpmuldq`: the exact product of the low signed 32 bits of each lane.
            let p = _mm512_srav_epi64(_mm512_add_epi64(_mm512_mul_epi32(bv, m), rd), s);
            let sum = _mm512_add_epi64(_mm512_sllv_epi64(av, a_shift), p);
            _mm512_xor_si512(sum, flip)
        };
        // 64-bit count of 8 channels from `c`, as 8 `i32` codes.
        // SAFETY: table rows are padded to 16-channel multiples.
        let count8 = |x: __m512i, c: usize| unsafe {
            let mut n = _mm512_setzero_si512();
            for t in 0..count {
                let tv = _mm512_loadu_si512(self.table.as_ptr().add(t * self.cp + c).cast());
                let reached = _mm512_cmpge_epi64_mask(x, tv);
                n = _mm512_mask_add_epi64(n, reached, n, _mm512_set1_epi64(1));
            }
            _mm512_cvtepi64_epi32(n)
        };
        let b_elem = if LEVELS { 1 } else { 4 };
        for r in 0..rows {
            // SAFETY: row `r` is inside the caller's rows.
            let (ar, br, or) =
                unsafe { (a.add(r * lda), b.add(r * ldb * b_elem), out.add(r * ldo)) };
            let x_lo = sum8(ar, br, 0, k_lo);
            let x_hi = sum8(ar, br, 1, k_hi);
            let inside = |x: __m512i| {
                _mm512_cmpge_epi64_mask(x, lo_bound) & _mm512_cmple_epi64_mask(x, hi_bound)
            };
            let codes = if inside(x_lo) & inside(x_hi) == 0xFF {
                let x = _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(_mm512_cvtepi64_epi32(x_lo)),
                    _mm512_cvtepi64_epi32(x_hi),
                );
                if let (Some(search), Some(lut)) = (&l.search, l.small16) {
                    // Codes formed as bytes and looked up with `vpshufb`.
                    let v = lookup_levels16(lut, search.search_bytes(x));
                    // SAFETY: the mask limits the store to the row's lanes.
                    unsafe { store_bytes(or, l.k, v) };
                    continue;
                }
                // Codes of more than `SEARCH_MAX_BITS` bits: counted.
                let t32 = self.table32.as_ptr();
                let mut n = _mm512_setzero_si512();
                for t in 0..count {
                    // SAFETY: rows are padded to 16-channel multiples.
                    let tv = unsafe { _mm512_loadu_si512(t32.add(t * self.cp + l.c0).cast()) };
                    n = _mm512_mask_add_epi32(
                        n,
                        _mm512_cmpge_epi32_mask(x, tv),
                        n,
                        _mm512_set1_epi32(1),
                    );
                }
                n
            } else {
                _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(count8(x_lo, l.c0)),
                    count8(x_hi, l.c0 + 8),
                )
            };
            let v = match l.small {
                Some(lut) => _mm512_permutexvar_epi32(codes, lut),
                None => codes,
            };
            // SAFETY: the mask limits the store to the row's lanes.
            unsafe { store_low_bytes(or, l.k, v) };
            if l.small.is_none() {
                for i in 0..lanes {
                    // SAFETY: lane `i` of the row was just written.
                    unsafe {
                        let o = or.add(i);
                        *o = self.levels[usize::from(*o)];
                    }
                }
            }
        }
        overflow
    }
}

/// The largest `|a|` of the block's main branch (its rows × channels, lengths checked by
/// the caller).
fn max_abs(block: &Block<'_>) -> i64 {
    let width = block.chans.len();
    (0..block.rows)
        .map(|r| {
            block.a[r * block.lda..r * block.lda + width]
                .iter()
                .fold(0u32, |m, &v| m.max(v.unsigned_abs()))
        })
        .max()
        .map_or(0, i64::from)
}

impl ResidualThresholds {
    /// Whether every sum `((a + bias) << a_shift) + align(b)` of channels `c0 .. c0 + lanes`
    /// lies strictly inside `i32` for `|a| ≤ bound` and any `u8` shortcut, with each
    /// channel's alignment in its narrow form: then `a + bias`, the shift and the sum can
    /// all be formed in 32 bits, and the `i32`-clamped table counts them exactly.
    fn narrow_fits(
        &self,
        c0: usize,
        lanes: usize,
        bias: Option<&[i32]>,
        bound: Option<i64>,
    ) -> bool {
        let limit = i64::from(i32::MAX) - 1;
        (c0..c0 + lanes).all(
            |c| match (self.narrow_max[c], self.main_shifted(c, bias, bound)) {
                (Some(align_max), Some(main)) => main + align_max <= limit,
                _ => false,
            },
        )
    }

    /// Whether `(|a| + |bias|) << a_shift ≤ limit` for channels `c0 .. c0 + lanes` and
    /// `|a| ≤ bound`: then `a + bias` and its shift fit `i32` with room for a shortcut term
    /// of magnitude below `i32::MAX − limit`.
    fn main_fits(
        &self,
        c0: usize,
        lanes: usize,
        bias: Option<&[i32]>,
        bound: Option<i64>,
        limit: i64,
    ) -> bool {
        (c0..c0 + lanes).all(|c| {
            self.main_shifted(c, bias, bound)
                .is_some_and(|m| m <= limit)
        })
    }

    /// `(bound + |bias[c]|) << a_shift`, the largest magnitude of channel `c`'s shifted main
    /// branch, when it stays within `i32` (else, or without a bound, `None`).
    fn main_shifted(&self, c: usize, bias: Option<&[i32]>, bound: Option<i64>) -> Option<i64> {
        let b = bias.map_or(0, |v| i64::from(v[c]).abs());
        let a = bound?.checked_add(b)?;
        (a <= i64::from(i32::MAX) >> self.a_shift).then(|| a << self.a_shift)
    }

    /// The rows of one 16-channel block of a join with a `u8` levels shortcut, every sum
    /// formed in 32-bit lanes (see [`ResidualThresholds::narrow_fits`], which the caller
    /// checked, and `narrow_align`): `a + bias`, shifted, plus the narrow alignment of `b`,
    /// flipped for falling channels, searched in the `i32` table and looked up in the
    /// level table `lut`.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL must be available; every row `r < rows` must hold the block's lanes
    /// at `a + r·lda`, `b + r·ldb` and `out + r·ldo`; `narrow_fits` must hold for the block,
    /// its bias and the bound on `a`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn join_rows_narrow_avx512(
        &self,
        l: &JoinLanes,
        search: &SearchRows,
        lut: std::arch::x86_64::__m128i,
        a: *const i32,
        lda: usize,
        b: *const u8,
        ldb: usize,
        rows: usize,
        out: *mut u8,
        ldo: usize,
    ) {
        use std::arch::x86_64::*;
        let k = l.k;
        let cp = self.cp;
        // SAFETY: each of the six rows and the flips are padded to `cp`, a multiple of 16
        // above `c0`.
        let [p, q, r1, t1, r2, t2] = std::array::from_fn(|row| unsafe {
            _mm512_loadu_si512(self.narrow.as_ptr().add(row * cp + l.c0).cast())
        });
        // The bias (zero past the block's lanes) and the flips, as 16 `i32`.
        let bias = _mm512_inserti64x4::<1>(
            _mm512_castsi256_si512(_mm512_cvtepi64_epi32(l.bias[0])),
            _mm512_cvtepi64_epi32(l.bias[1]),
        );
        let flip = _mm512_inserti64x4::<1>(
            _mm512_castsi256_si512(_mm512_cvtepi64_epi32(l.align[0][3])),
            _mm512_cvtepi64_epi32(l.align[1][3]),
        );
        let shift = _mm_cvtsi32_si128(i32::from(self.a_shift));
        for r in 0..rows {
            // SAFETY: row `r` is inside the caller's rows; loads and the store are masked
            // to the block's lanes.
            unsafe {
                let av = _mm512_add_epi32(_mm512_maskz_loadu_epi32(k, a.add(r * lda)), bias);
                let bv = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, b.add(r * ldb).cast()));
                let low = _mm512_srav_epi32(_mm512_add_epi32(_mm512_mullo_epi32(bv, q), r1), t1);
                let total = _mm512_add_epi32(_mm512_add_epi32(_mm512_mullo_epi32(bv, p), low), r2);
                let sum =
                    _mm512_add_epi32(_mm512_sll_epi32(av, shift), _mm512_srav_epi32(total, t2));
                let codes = search.search_bytes(_mm512_xor_si512(sum, flip));
                store_bytes(out.add(r * ldo), k, lookup_levels16(lut, codes));
            }
        }
    }
}

/// What the rows of one 16-channel block of an AVX-512 join share, loaded once.
#[cfg(target_arch = "x86_64")]
struct JoinLanes {
    /// The block's first channel.
    c0: usize,
    /// Its lanes.
    k: std::arch::x86_64::__mmask16,
    /// Per half (8 channels): multiplier, shift, rounding, flip.
    align: [[std::arch::x86_64::__m512i; 4]; 2],
    /// Per half, the bias as `i64` (zeros without one).
    bias: [std::arch::x86_64::__m512i; 2],
    /// The `i32` table rows for codes of up to 4 bits.
    search: Option<SearchRows>,
    /// The level table in a register when it has at most 16 entries.
    small: Option<std::arch::x86_64::__m512i>,
    /// The same table as bytes, for codes formed as bytes.
    small16: Option<std::arch::x86_64::__m128i>,
}
