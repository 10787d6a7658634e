//! Channel-parallel threshold counting for the AVX-512 and AVX2 requantization kernels.
//!
//! Lane `l` of a 16-lane `i32` vector belongs to channel `c0 + l`; the table holds row `t`
//! of every channel at `table[t · stride + c]`, each channel's rows **ascending** in `t`.
//! The code of `x` is `#{t : T[t] ≤ x}`, which for ascending rows is the position where `x`
//! would be inserted after equal values: found by a binary search in `b` steps, each a blend
//! tree picking every lane's middle threshold from the bits decided so far, then one
//! compare. For 4-bit codes that is 4 compares and 11 blends instead of 15 compares and 15
//! masked adds. (Code bits are decided most significant first: bit 3 compares with row 7,
//! bit 2 with row 3 or 11, and so on.)
//!
//! The code bits are added as bytes in an `xmm` under the compare masks, and levels of at
//! most 16 entries are then one `vpshufb` away: a 16-lane `i32` code vector would need a
//! lane-crossing `vpermd` and a 512-bit `vpmovdb` narrowing, which on Zen 4 cost more than
//! the search (a 3→128 RGB convolution ran 13 % faster, a 64→64 one 1.5 %).

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
        let count = (1usize << bits.clamp(1, SEARCH_MAX_BITS)) - 1;
        // Each row written once (not zeroed, then loaded).
        let rows = std::array::from_fn(|t| {
            if t < count {
                // SAFETY: forwarded from the caller (row `t < 2^bits − 1`).
                unsafe { _mm512_loadu_si512(table.add(t * stride).cast()) }
            } else {
                _mm512_setzero_si512()
            }
        });
        Self { rows, bits }
    }

    /// `#{t : T[t][lane] ≤ x[lane]}` over the loaded (ascending) rows, as 16 bytes (lane `l`
    /// in byte `l`) formed in an `xmm` from the compare masks: no 512-bit narrowing or
    /// lane-crossing shuffle follows.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    pub(crate) fn search_bytes(&self, x: __m512i) -> __m128i {
        let t = |i: usize| self.rows[i];
        match self.bits {
            1 => code_bytes_with::<1>(x, t),
            2 => code_bytes_with::<2>(x, t),
            3 => code_bytes_with::<3>(x, t),
            _ => code_bytes_with::<4>(x, t),
        }
    }
}

/// The codes of `x` as bytes (see [`bit_masks_with`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
fn code_bytes_with<const BITS: usize>(x: __m512i, t: impl Fn(usize) -> __m512i) -> __m128i {
    let m = bit_masks_with::<BITS>(x, t);
    let mut code = _mm_setzero_si128();
    for (j, &mj) in m.iter().enumerate().take(BITS) {
        code = masked_add_bytes(code, mj, _mm_set1_epi8(1 << j));
    }
    code
}

/// The code-bit masks of `#{t < 2^BITS − 1 : T[t][lane] ≤ x[lane]}` for ascending rows, row
/// `t` given by `t(t)` (`[j]` is code bit `j`): written out so that every candidate stays
/// in a register.
#[target_feature(enable = "avx512f")]
#[inline]
fn bit_masks_with<const BITS: usize>(x: __m512i, t: impl Fn(usize) -> __m512i) -> [__mmask16; 4] {
    let ge = |v: __m512i| _mm512_cmpge_epi32_mask(x, v);
    let pick = |m: __mmask16, lo: __m512i, hi: __m512i| _mm512_mask_blend_epi32(m, lo, hi);
    match BITS {
        1 => [ge(t(0)), 0, 0, 0],
        2 => {
            let m1 = ge(t(1));
            let m0 = ge(pick(m1, t(0), t(2)));
            [m0, m1, 0, 0]
        }
        3 => {
            let m2 = ge(t(3));
            let m1 = ge(pick(m2, t(1), t(5)));
            let (c0, c1) = (pick(m2, t(0), t(4)), pick(m2, t(2), t(6)));
            let m0 = ge(pick(m1, c0, c1));
            [m0, m1, m2, 0]
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
            [m0, m1, m2, m3]
        }
    }
}

/// `code + inc` in the byte lanes of `m`, `code` elsewhere, as one masked `vpaddb`. Inline
/// assembly: for the 32-bit codes this replaced, LLVM rewrote a masked add of a constant
/// into an all-ones select, a shift and an or (three instructions instead of one).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
fn masked_add_bytes(code: __m128i, m: __mmask16, inc: __m128i) -> __m128i {
    let mut out = code;
    // SAFETY: `vpaddb` with a merge mask reads and writes registers only (AVX-512 BW/VL
    // are enabled for this function).
    unsafe {
        std::arch::asm!(
            "vpaddb {o:x}{{{m}}}, {o:x}, {i:x}",
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
    // SAFETY: forwarded from the caller.
    unsafe { store_bytes(dst, k, _mm512_cvtepi32_epi8(v)) }
}

/// Stores the bytes of `v` selected by `k` at `dst` (byte `l` at `dst + l`): one plain
/// 16-byte store when `k` is full, else a byte-masked one.
///
/// # Safety
/// AVX-512 F/BW/VL must be available, and `dst + l` must be writable for every lane `l` in
/// `k` (all 16 when `k` is full).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
pub(crate) unsafe fn store_bytes(dst: *mut u8, k: __mmask16, v: __m128i) {
    // SAFETY: forwarded from the caller; the masked store touches only the lanes of `k`.
    unsafe {
        if k == 0xFFFF {
            _mm_storeu_si128(dst.cast(), v);
        } else {
            _mm_mask_storeu_epi8(dst.cast(), k, v);
        }
    }
}

/// A level table of at most 16 entries in an `xmm` (entry `i` in byte `i`, zero past the
/// table), for a `vpshufb` lookup of codes below 16; `None` for longer tables.
#[inline]
pub(crate) fn level_table16(levels: &[u8]) -> Option<__m128i> {
    (levels.len() <= 16).then(|| {
        let mut t = [0u8; 16];
        t[..levels.len()].copy_from_slice(levels);
        // SAFETY: 16 readable bytes; SSE2 is part of x86-64.
        unsafe { _mm_loadu_si128(t.as_ptr().cast()) }
    })
}

/// The levels of 16 byte codes (each below 16) through a [`level_table16`] table.
#[target_feature(enable = "ssse3")]
#[inline]
pub(crate) fn lookup_levels16(table: __m128i, codes: __m128i) -> __m128i {
    _mm_shuffle_epi8(table, codes)
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

/// The low bytes of 8 `i32` lanes, each in `0 ..= 255` (codes of at most 8 bits), in the
/// low 8 bytes of an `xmm`: two saturating packs, no lane-crossing shuffle of the `ymm`.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn narrow8_avx2(v: __m256i) -> __m128i {
    let words = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    _mm_packus_epi16(words, words)
}

/// The first `lanes` (`1 ..= 8`) `i32` at `src`, zero in the other lanes (a masked load:
/// nothing past them is read).
///
/// # Safety
/// AVX2 must be available and `src` readable for `lanes` `i32`.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) unsafe fn load_lanes8(src: *const i32, lanes: usize) -> __m256i {
    // SAFETY: forwarded from the caller; the masked load touches only the first `lanes`.
    unsafe {
        if lanes >= 8 {
            _mm256_loadu_si256(src.cast())
        } else {
            let live = _mm256_cmpgt_epi32(
                _mm256_set1_epi32(lanes as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            );
            _mm256_maskload_epi32(src, live)
        }
    }
}

/// Stores the first `lanes` (`1 ..= 8`) bytes of `v` at `dst`: one 8-byte store when all 8
/// are, else through a local buffer.
///
/// # Safety
/// AVX2 must be available and `dst` writable for `lanes` bytes.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) unsafe fn store_bytes8(dst: *mut u8, lanes: usize, v: __m128i) {
    // SAFETY: forwarded from the caller.
    unsafe {
        if lanes >= 8 {
            _mm_storel_epi64(dst.cast(), v);
        } else {
            let mut bytes = [0u8; 16];
            _mm_storeu_si128(bytes.as_mut_ptr().cast(), v);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, lanes);
        }
    }
}

/// Stores the levels of the first `lanes` (`1 ..= 8`) of 8 codes (`i32` lanes, each at
/// most `levels.len() − 1`) at `dst`: narrowed in registers and looked up by one `vpshufb`
/// in `lut` (the [`level_table16`] of `levels`, when there are at most 16), else through
/// `levels` in memory.
///
/// # Safety
/// AVX2 must be available and `dst` writable for `lanes` bytes.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) unsafe fn store_levels8(
    dst: *mut u8,
    lanes: usize,
    codes: __m256i,
    lut: Option<__m128i>,
    levels: &[u8],
) {
    let codes = narrow8_avx2(codes);
    // SAFETY: forwarded from the caller.
    unsafe {
        match lut {
            Some(lut) => store_bytes8(dst, lanes, lookup_levels16(lut, codes)),
            None => {
                store_bytes8(dst, lanes, codes);
                for o in std::slice::from_raw_parts_mut(dst, lanes) {
                    *o = levels[usize::from(*o)];
                }
            }
        }
    }
}
