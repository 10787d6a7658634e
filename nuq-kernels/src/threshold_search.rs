//! Channel-parallel threshold counting for the AVX-512 requantization kernels.
//!
//! Lane `l` of a 16-lane `i32` vector belongs to channel `c0 + l`; the table holds row `t`
//! of every channel at `table[t · stride + c]`, each channel's rows **ascending** in `t`.
//! The code of `x` is `#{t : T[t] ≤ x}`, which for ascending rows is the position where `x`
//! would be inserted after equal values: found by a binary search in `b` steps, each a blend
//! tree picking every lane's middle threshold from the bits decided so far, then one
//! compare. For 4-bit codes that is 4 compares and 11 blends instead of 15 compares and 15
//! masked adds. (Code bits are decided most significant first: bit 3 compares with row 7,
//! bit 2 with row 3 or 11, and so on.)

use std::arch::x86_64::*;

pub(crate) use crate::archparam::SEARCH_MAX_BITS;

/// The rows of one 16-channel block of an ascending table, loaded once for a whole loop of
/// searches over the block's rows of accumulators: the loads then leave the loop (the
/// compiler cannot move them itself past the stores of codes, which might alias the table).
#[derive(Clone, Copy)]
pub(crate) struct SearchRows {
    rows: [__m512i; 15],
    bits: u8,
}

impl SearchRows {
    /// Loads rows `0 .. 2^bits − 1` (the others stay zero and are never read).
    ///
    /// # Safety
    /// AVX-512 F must be available, `bits ∈ 1..=SEARCH_MAX_BITS`, and `table` must be
    /// readable for 16 `i32` at `t · stride` for every `t < 2^bits − 1`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) unsafe fn load(table: *const i32, stride: usize, bits: u8) -> Self {
        let mut rows = [_mm512_setzero_si512(); 15];
        let count = (1usize << bits.clamp(1, SEARCH_MAX_BITS)) - 1;
        for (t, r) in rows.iter_mut().enumerate().take(count) {
            // SAFETY: forwarded from the caller (row `t < 2^bits − 1`).
            *r = unsafe { _mm512_loadu_si512(table.add(t * stride).cast()) };
        }
        Self { rows, bits }
    }

    /// `#{t : T[t][lane] ≤ x[lane]}` over the loaded (ascending) rows.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) fn search(&self, x: __m512i) -> __m512i {
        let t = |i: usize| self.rows[i];
        match self.bits {
            1 => search_with::<1>(x, t),
            2 => search_with::<2>(x, t),
            3 => search_with::<3>(x, t),
            _ => search_with::<4>(x, t),
        }
    }
}

/// `#{t < 2^BITS − 1 : T[t][lane] ≤ x[lane]}` for ascending rows, row `t` given by
/// `t(t)`: written out so that every candidate stays in a register (`m_j` is the mask of
/// code bit `j`).
#[target_feature(enable = "avx512f")]
#[inline]
fn search_with<const BITS: usize>(x: __m512i, t: impl Fn(usize) -> __m512i) -> __m512i {
    let ge = |v: __m512i| _mm512_cmpge_epi32_mask(x, v);
    let pick = |m: __mmask16, lo: __m512i, hi: __m512i| _mm512_mask_blend_epi32(m, lo, hi);
    let bit = |code: __m512i, m: __mmask16, v: i32| masked_add(code, m, _mm512_set1_epi32(v));
    let zero = _mm512_setzero_si512();
    match BITS {
        1 => bit(zero, ge(t(0)), 1),
        2 => {
            let m1 = ge(t(1));
            let m0 = ge(pick(m1, t(0), t(2)));
            bit(bit(zero, m1, 2), m0, 1)
        }
        3 => {
            let m2 = ge(t(3));
            let m1 = ge(pick(m2, t(1), t(5)));
            let (c0, c1) = (pick(m2, t(0), t(4)), pick(m2, t(2), t(6)));
            let m0 = ge(pick(m1, c0, c1));
            bit(bit(bit(zero, m2, 4), m1, 2), m0, 1)
        }
        _ => {
            let m3 = ge(t(7));
            let m2 = ge(pick(m3, t(3), t(11)));
            let (a, b) = (pick(m3, t(1), t(9)), pick(m3, t(5), t(13)));
            let m1 = ge(pick(m2, a, b));
            let c0 = pick(m3, t(0), t(8));
            let c1 = pick(m3, t(2), t(10));
            let c2 = pick(m3, t(4), t(12));
            let c3 = pick(m3, t(6), t(14));
            let (d0, d1) = (pick(m2, c0, c2), pick(m2, c1, c3));
            let m0 = ge(pick(m1, d0, d1));
            bit(bit(bit(bit(zero, m3, 8), m2, 4), m1, 2), m0, 1)
        }
    }
}

/// `code + inc` in the lanes of `m`, `code` elsewhere, as one masked `vpaddd`. Written as
/// inline assembly because LLVM otherwise rewrites a masked add of a constant into an
/// all-ones select, a shift and an or (three instructions instead of one) in these loops.
#[target_feature(enable = "avx512f")]
#[inline]
fn masked_add(code: __m512i, m: __mmask16, inc: __m512i) -> __m512i {
    let mut out = code;
    // SAFETY: `vpaddd` with a merge mask reads and writes registers only (AVX-512 F is
    // enabled for this function).
    unsafe {
        std::arch::asm!(
            "vpaddd {o}{{{m}}}, {o}, {i}",
            o = inout(zmm_reg) out,
            m = in(kreg) m,
            i = in(zmm_reg) inc,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    out
}

/// Stores the low bytes of the lanes of `v` selected by `k` at `dst` (lane `l` at `dst + l`):
/// narrowed in a register, then one plain (or byte-masked) 16-byte store, instead of the
/// memory form of `vpmovdb`.
///
/// # Safety
/// AVX-512 F/BW/VL must be available, and `dst + l` must be writable for every lane `l` in
/// `k` (all 16 when `k` is full).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
pub(crate) unsafe fn store_low_bytes(dst: *mut u8, k: __mmask16, v: __m512i) {
    let bytes = _mm512_cvtepi32_epi8(v);
    // SAFETY: forwarded from the caller; the masked store touches only the lanes of `k`.
    unsafe {
        if k == 0xFFFF {
            _mm_storeu_si128(dst.cast(), bytes);
        } else {
            _mm_mask_storeu_epi8(dst.cast(), k, bytes);
        }
    }
}

/// `#{t < count : T[t][lane] ≤ x[lane]}` for 8 `i32` lanes, counting every row (AVX2 has no
/// mask registers for the search): `count` minus the rows above `x`. Row `t` of the 8
/// lanes is read at `table + t · stride`.
///
/// # Safety
/// AVX2 must be available and `table + t · stride` readable for 8 `i32` for every
/// `t < count`.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) unsafe fn count_reached_avx2(
    x: __m256i,
    table: *const i32,
    stride: usize,
    count: usize,
) -> __m256i {
    let mut above = _mm256_setzero_si256();
    for t in 0..count {
        // SAFETY: forwarded from the caller (`t < count`).
        let tv = unsafe { _mm256_loadu_si256(table.add(t * stride).cast()) };
        above = _mm256_add_epi32(above, _mm256_cmpgt_epi32(tv, x));
    }
    _mm256_add_epi32(_mm256_set1_epi32(count as i32), above)
}
