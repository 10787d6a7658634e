//! AVX-512 VNNI path: `vpdpbusd` (u8 × i8 → i32, four products per lane) on an 8-row ×
//! 32-column register tile — 16 independent `zmm` accumulators, enough to hide the
//! 4-cycle latency — fed by one broadcast activation group per row and two 64-byte weight
//! vectors per reduction group.
//!
//! Codebook weights are decoded in registers: 4-bit with one `vpermb` per weight vector
//! (the 64-byte table repeats the 16 levels four times, so the high index bits left over
//! after a 4-bit shift do not matter), 2-bit likewise from a 16-fold repeated table, 3-bit
//! with a bit-plane merge before the `vpermb` (see `cb3_block`). One decode serves all 8
//! rows of the tile (8 `vpdpbusd`), which keeps the shuffle port far from the
//! multiplier's. Tall 3-bit tiles decode each panel once into int8 scratch instead and run
//! the int8 kernel.
//!
//! Short reductions (at most [`SMALL_K_GROUPS`] 4-byte groups, int8 or 4-bit: an RGB
//! layer) keep a panel's decoded weights in registers and stream the tile's rows past them
//! four at a time (`small_k_rows`), instead of paying an 8-row call's setup and stores per
//! handful of multiply-adds.
//!
//! CPUs without VBMI (Intel Cascade Lake / Cooper Lake: [`KernelPath::Avx512VnniNoVbmi`])
//! run the same kernels with the 2- and 4-bit lookups done by `vpshufb`, which reads a
//! 16-byte table per 128-bit lane — the 64-byte tables repeat every 16 bytes already — on
//! the index's low 4 bits (one `vpand` clears the rest), and 3-bit panels decoded once
//! into int8. So that one compiled copy serves both CPUs, the functions here enable no
//! VBMI: `vpermb` is emitted by inline assembly ([`vpermb`]), reached only by the VBMI
//! kinds, which only [`Avx512<true>`] selects.
//!
//! [`KernelPath::Avx512VnniNoVbmi`]: crate::KernelPath::Avx512VnniNoVbmi

#[cfg(test)]
use super::Live;
use super::{on_int8, with_decoded_panel, GemmKernel, OutPtr, Problem, Weights};
use crate::archparam::{
    rows_outer_max_weight_bytes, CB3_SCRATCH_MIN_ROWS, SMALL_K_GROUPS, WEIGHT_PREFETCH_GROUPS,
};
use crate::packed::{CodebookWeights, PANEL};
use crate::Tuning;
use std::arch::asm;
use std::arch::x86_64::*;
use std::ops::Range;

/// Stores the rows of accumulators `$acc` (`[[__m512i; 2]; R]`, `$ncols` ≤ 32 columns) at
/// the row pointers `$c` (`[*mut i32; R]`), streaming whole 64-byte aligned rows when
/// `$stream` says so, each plus the columns' bias when `$bias` (the first column's) is not
/// null.
/// A macro: the kernels keep their accumulators in registers only if the stores are
/// inlined, which a `#[target_feature]` function cannot be forced to be.
///
/// Safety (of the expansion's `unsafe` blocks): every row pointer of `$c` must be writable
/// for `$ncols` columns, and `$bias` null or readable for `$ncols` columns.
macro_rules! store_rows {
    ($acc:expr, $c:expr, $ncols:expr, $stream:expr, $bias:expr) => {{
        let (ncols, stream): (usize, bool) = ($ncols, $stream);
        let bias: *const i32 = $bias;
        let m0: __mmask16 = if ncols >= 16 {
            0xFFFF
        } else {
            (1u16 << ncols) - 1
        };
        let m1: __mmask16 = if ncols >= 32 {
            0xFFFF
        } else if ncols > 16 {
            (1u16 << (ncols - 16)) - 1
        } else {
            0
        };
        let (b0, b1) = if bias.is_null() {
            (_mm512_setzero_si512(), _mm512_setzero_si512())
        } else {
            // SAFETY: a non-null bias holds the panel's `ncols` columns; the loads are
            // masked to them.
            unsafe {
                (
                    _mm512_maskz_loadu_epi32(m0, bias),
                    _mm512_maskz_loadu_epi32(m1, bias.wrapping_add(16)),
                )
            }
        };
        for (acc_r, &dst) in $acc.iter().zip($c.iter()) {
            let [mut v0, mut v1] = *acc_r;
            if !bias.is_null() {
                v0 = _mm512_add_epi32(v0, b0);
                v1 = _mm512_add_epi32(v1, b1);
            }
            // SAFETY: the caller guarantees every row pointer is writable for `ncols`
            // columns; the masks limit the stores to those columns, and the streaming stores
            // are used only when all 32 columns are written and `dst` is 64-byte aligned (as
            // they require).
            unsafe {
                if stream && ncols == PANEL && (dst as usize).is_multiple_of(64) {
                    _mm512_stream_si512(dst.cast(), v0);
                    _mm512_stream_si512(dst.add(16).cast(), v1);
                } else {
                    _mm512_mask_storeu_epi32(dst, m0, v0);
                    _mm512_mask_storeu_epi32(dst.add(16), m1, v1);
                }
            }
        }
    }};
}

/// Weight layouts and decodes of the kernels (`KIND`): int8 levels, and codebook indices
/// looked up by `vpermb` (VBMI) or by `vpshufb` (`_SHUFFLE`).
const INT8: u8 = 0;
const CB4: u8 = 1;
const CB2: u8 = 2;
const CB3: u8 = 3;
const CB4_SHUFFLE: u8 = 4;
const CB2_SHUFFLE: u8 = 5;

/// Register tile rows.
const MR: usize = 8;

/// The AVX-512 VNNI kernel: 8 rows × 32 channels; codebooks decoded by `vpermb` where
/// `VBMI`, by `vpshufb` otherwise.
pub(super) struct Avx512<const VBMI: bool>;

impl<const VBMI: bool> GemmKernel for Avx512<VBMI> {
    const MR: usize = MR;
    const NR: usize = PANEL;

    unsafe fn tile(p: &Problem<'_>, rows: Range<usize>, panels: Range<usize>, out: &OutPtr) {
        // SAFETY: forwarded from the caller (AVX-512 F/BW/VL/VNNI available, VBMI too where
        // `VBMI`, the block owned).
        unsafe { tile::<VBMI>(p, rows, panels, out) }
    }
}

/// `vpermb`: byte `i` of the result is byte `idx[i] & 63` of `table`. Inline assembly, so
/// that the kernels around it need not enable VBMI (see the module notes).
///
/// # Safety
/// The CPU must support AVX-512 VBMI.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn vpermb(idx: __m512i, table: __m512i) -> __m512i {
    let out: __m512i;
    // SAFETY: the caller guarantees VBMI; the instruction reads and writes registers only.
    unsafe {
        asm!(
            "vpermb {out}, {idx}, {table}",
            out = lateout(zmm_reg) out,
            idx = in(zmm_reg) idx,
            table = in(zmm_reg) table,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    out
}

/// Bytes of the codebook table `lut` (repeating every 16 bytes) at the indices of `idx`
/// (index bits above the codebook's are ignored): `vpermb` for the VBMI kinds, `vpshufb`
/// on the low 4 index bits for the `_SHUFFLE` kinds.
///
/// # Safety
/// For a VBMI kind the CPU must support AVX-512 VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn lookup<const KIND: u8>(idx: __m512i, lut: __m512i) -> __m512i {
    if KIND == CB4_SHUFFLE || KIND == CB2_SHUFFLE {
        _mm512_shuffle_epi8(lut, _mm512_and_si512(idx, _mm512_set1_epi8(0x0F)))
    } else {
        // SAFETY: forwarded from the caller.
        unsafe { vpermb(idx, lut) }
    }
}

/// Computes rows `rows` × the columns of `panels`.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI, and VBMI where `VBMI`, and this call must own
/// the output block it writes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<const VBMI: bool>(
    p: &Problem<'_>,
    rows: Range<usize>,
    panels: Range<usize>,
    out: &OutPtr,
) {
    // SAFETY: forwarded from the caller.
    unsafe { tile_choosing::<VBMI>(p, rows, panels, out, Tuning::current().cb4_int8_min_rows) }
}

/// [`tile`], with 4-bit tiles of at least `int8_copy_rows` rows (if any; the
/// [`Tuning::cb4_int8_min_rows`]) on the layer's int8 copy: the same integers either way.
///
/// # Safety
/// As [`tile`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_choosing<const VBMI: bool>(
    p: &Problem<'_>,
    rows: Range<usize>,
    panels: Range<usize>,
    out: &OutPtr,
    int8_copy_rows: Option<usize>,
) {
    if let Weights::Codebook(w) = p.w {
        if w.bits() == 4 && int8_copy_rows.is_some_and(|min| rows.len() >= min) {
            let (q, _) = on_int8(p);
            // SAFETY: forwarded from the caller; int8 weights need no more than 4-bit ones.
            unsafe { tile_on::<VBMI>(&q, rows, panels, out) };
            return;
        }
    }
    // SAFETY: forwarded from the caller.
    unsafe { tile_on::<VBMI>(p, rows, panels, out) }
}

/// [`tile`] on the weights as `p` has them.
///
/// # Safety
/// As [`tile`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_on<const VBMI: bool>(
    p: &Problem<'_>,
    rows: Range<usize>,
    panels: Range<usize>,
    out: &OutPtr,
) {
    let kind = match p.w {
        Weights::Int8(_) => Some(INT8),
        Weights::Codebook(w) if w.bits() == 4 => Some(if VBMI { CB4 } else { CB4_SHUFFLE }),
        Weights::Codebook(w) if w.bits() == 2 => Some(if VBMI { CB2 } else { CB2_SHUFFLE }),
        // The 3-bit merge costs about a fifth of the multiplier's throughput, so tall tiles
        // decode each panel once into scratch instead (and every tile without VBMI, which
        // the merge's byte spread needs).
        Weights::Codebook(w) if VBMI && w.bits() == 3 && rows.len() < CB3_SCRATCH_MIN_ROWS => {
            Some(CB3)
        }
        // Tall 3-bit tiles, and all 3-bit tiles without VBMI (codebooks have 2, 3 or 4
        // bits).
        Weights::Codebook(_) => None,
    };
    let panel_src = |panel: usize| -> &[u8] {
        match p.w {
            Weights::Int8(w) => w.panel_bytes(panel),
            Weights::Codebook(w) => w.panel_bytes(panel),
        }
    };
    let lut: &[u8; 64] = match p.w {
        Weights::Codebook(w) => w.lut64(),
        Weights::Int8(_) => &[0; 64],
    };
    // Rows outer (each 8-row activation block stays in L1 while it meets every panel of the
    // tile) when the tile's weights fit in L2; panels outer otherwise.
    let tile_weight_bytes = panels.len() * panel_src(panels.start).len();
    let groups = p.w.k_padded() / 4;
    // (Whole rows only: the short kernel reads every group of a row.)
    let small_k = (1..=SMALL_K_GROUPS).contains(&groups) && p.whole_rows();
    match kind {
        Some(kind @ (INT8 | CB4 | CB4_SHUFFLE)) if small_k => {
            for panel in panels {
                // SAFETY: forwarded from the caller; `small_k` checked the reduction.
                unsafe {
                    small_k_dispatch(
                        kind,
                        groups,
                        p,
                        rows.clone(),
                        panel,
                        panel_src(panel),
                        lut,
                        out,
                    )
                }
            }
        }
        Some(kind) if tile_weight_bytes <= rows_outer_max_weight_bytes() => {
            let mut r = rows.start;
            while r < rows.end {
                let block = r..(r + MR).min(rows.end);
                // The tile's first row block reads its weights (which fit in L2) for the
                // others.
                let fetch_w = r == rows.start;
                for panel in panels.clone() {
                    // SAFETY: forwarded from the caller.
                    unsafe {
                        dispatch_kind(
                            kind,
                            p,
                            block.clone(),
                            panel,
                            panel_src(panel),
                            fetch_w,
                            lut,
                            out,
                        )
                    }
                }
                r = block.end;
            }
        }
        Some(kind) => {
            for panel in panels {
                // SAFETY: forwarded from the caller.
                unsafe {
                    dispatch_kind(
                        kind,
                        p,
                        rows.clone(),
                        panel,
                        panel_src(panel),
                        true,
                        lut,
                        out,
                    )
                }
            }
        }
        None => {
            let Weights::Codebook(w) = p.w else {
                unreachable!("only 3-bit codebooks are decoded to scratch")
            };
            for panel in panels {
                let decode = |w: &CodebookWeights, panel: usize, out: &mut [u8]| {
                    if VBMI {
                        // SAFETY: AVX-512 and VBMI availability are forwarded from the
                        // caller, `w` is 3-bit (above) and `out` holds the panel's
                        // `32 · kp` bytes.
                        unsafe { decode_cb3_panel(w, panel, out) }
                    } else {
                        w.decode_panel(panel, out)
                    }
                };
                with_decoded_panel(w, panel, decode, |bytes| {
                    // SAFETY: forwarded from the caller.
                    // (Decoded just now: the weights are in cache.)
                    unsafe {
                        panel_rows::<INT8>(p, rows.clone(), panel, bytes, false, &[0; 64], out)
                    }
                });
            }
        }
    }
    if out.stream {
        // Order this tile's non-temporal stores before the tile is reported done.
        _mm_sfence();
    }
}

/// Decodes a 3-bit codebook panel into the int8 panel layout (as
/// [`CodebookWeights::decode_panel`], except that padding channels decode to level 0, not to
/// zero: they are never stored): index vectors as in the register kernel, then one `vpermb`
/// per vector.
///
/// # Safety
/// AVX-512 F/BW/VNNI/VBMI must be available, `w` must be 3-bit and `out` must hold `32 · kp`
/// bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn decode_cb3_panel(w: &CodebookWeights, panel: usize, out: &mut [u8]) {
    let src = w.panel_bytes(panel);
    let groups = w.k_padded() / 4;
    assert!(out.len() >= groups * 128, "scratch holds the panel");
    assert!(
        src.len() >= groups.div_ceil(2) * 96,
        "panel holds its group pairs"
    );
    // SAFETY: the table is 64 readable bytes.
    let lut = unsafe { _mm512_loadu_si512(w.lut64().as_ptr().cast()) };
    let dst = out.as_mut_ptr();
    for q in 0..groups.div_ceil(2) {
        // SAFETY: the assertions bound the block load; stores stay below group `groups`,
        // inside `out`.
        unsafe {
            for (r, &v) in cb3_indices(src.as_ptr().add(q * 96)).iter().enumerate() {
                let g = 2 * q + r / 2;
                if g < groups {
                    let d = vpermb(v, lut);
                    _mm512_storeu_si512(dst.add(g * 128 + (r % 2) * 64).cast(), d);
                }
            }
        }
    }
}

const _: () = assert!(
    SMALL_K_GROUPS <= 9,
    "small_k_dispatch has arms up to 9 groups"
);

/// [`small_k_rows`] for `groups` (1 ..= [`SMALL_K_GROUPS`]) groups of int8 or 4-bit weights.
///
/// # Safety
/// As [`small_k_rows`] with `G = groups`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn small_k_dispatch(
    kind: u8,
    groups: usize,
    p: &Problem<'_>,
    rows: Range<usize>,
    panel: usize,
    w: &[u8],
    lut: &[u8; 64],
    out: &OutPtr,
) {
    macro_rules! run {
        ($kind:expr) => {
            // SAFETY: forwarded from the caller.
            unsafe {
                match groups {
                    1 => small_k_rows::<$kind, 1>(p, rows, panel, w, lut, out),
                    2 => small_k_rows::<$kind, 2>(p, rows, panel, w, lut, out),
                    3 => small_k_rows::<$kind, 3>(p, rows, panel, w, lut, out),
                    4 => small_k_rows::<$kind, 4>(p, rows, panel, w, lut, out),
                    5 => small_k_rows::<$kind, 5>(p, rows, panel, w, lut, out),
                    6 => small_k_rows::<$kind, 6>(p, rows, panel, w, lut, out),
                    7 => small_k_rows::<$kind, 7>(p, rows, panel, w, lut, out),
                    8 => small_k_rows::<$kind, 8>(p, rows, panel, w, lut, out),
                    _ => small_k_rows::<$kind, 9>(p, rows, panel, w, lut, out),
                }
            }
        };
    }
    match kind {
        INT8 => run!(INT8),
        CB4 => run!(CB4),
        _ => run!(CB4_SHUFFLE),
    }
}

/// # Safety
/// As [`panel_rows`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dispatch_kind(
    kind: u8,
    p: &Problem<'_>,
    rows: Range<usize>,
    panel: usize,
    w: &[u8],
    fetch_w: bool,
    lut: &[u8; 64],
    out: &OutPtr,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match kind {
            INT8 => panel_rows::<INT8>(p, rows, panel, w, fetch_w, lut, out),
            CB4 => panel_rows::<CB4>(p, rows, panel, w, fetch_w, lut, out),
            CB2 => panel_rows::<CB2>(p, rows, panel, w, fetch_w, lut, out),
            CB3 => panel_rows::<CB3>(p, rows, panel, w, fetch_w, lut, out),
            CB4_SHUFFLE => panel_rows::<CB4_SHUFFLE>(p, rows, panel, w, fetch_w, lut, out),
            _ => panel_rows::<CB2_SHUFFLE>(p, rows, panel, w, fetch_w, lut, out),
        }
    }
}

/// Rows `rows` (any count) × one panel, in register tiles of up to [`MR`] rows; where
/// `fetch_w` (the panel's weights are likely out of cache), the first register tile
/// prefetches them ahead of its reduction ([`WEIGHT_PREFETCH_GROUPS`]).
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI must be available (and VBMI for a VBMI kind: `CB4`, `CB2`, `CB3`),
/// `w` must be the panel's bytes in `KIND`'s layout, and this call must own the output
/// block it writes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn panel_rows<const KIND: u8>(
    p: &Problem<'_>,
    rows: Range<usize>,
    panel: usize,
    w: &[u8],
    fetch_w: bool,
    lut: &[u8; 64],
    out: &OutPtr,
) {
    let ncols = (p.w.n() - panel * PANEL).min(PANEL);
    let mut r = rows.start;
    while r < rows.end {
        let mr = (rows.end - r).min(MR);
        // Later register tiles find the weights the first one read in cache.
        let fetch = fetch_w && r == rows.start;
        // SAFETY: the rows `r..r+mr` of `p.a` hold `k` bytes each at stride `lda`
        // (`validate`), `w` holds this panel's `kp` groups, and this tile owns the output
        // block `(r..r+mr) × (panel columns)`, which lies inside the output.
        unsafe {
            let col = panel * PANEL;
            match mr {
                8 => kernel::<8, KIND>(p, r, w, fetch, lut, out, col, ncols),
                7 => kernel::<7, KIND>(p, r, w, fetch, lut, out, col, ncols),
                6 => kernel::<6, KIND>(p, r, w, fetch, lut, out, col, ncols),
                5 => kernel::<5, KIND>(p, r, w, fetch, lut, out, col, ncols),
                4 => kernel::<4, KIND>(p, r, w, fetch, lut, out, col, ncols),
                3 => kernel::<3, KIND>(p, r, w, fetch, lut, out, col, ncols),
                2 => kernel::<2, KIND>(p, r, w, fetch, lut, out, col, ncols),
                _ => kernel::<1, KIND>(p, r, w, fetch, lut, out, col, ncols),
            }
        }
        r += mr;
    }
}

/// The two weight vectors (channels 0..16 and 16..32 of the panel) of group `g`.
///
/// # Safety
/// `w` must point at the panel's packed bytes, which hold group `g`, and the CPU must
/// support VBMI for a VBMI kind.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn group_weights<const KIND: u8>(
    w: *const u8,
    lut: __m512i,
    g: usize,
) -> (__m512i, __m512i) {
    // SAFETY: the caller guarantees the bytes read lie inside the panel.
    unsafe {
        match KIND {
            INT8 => (
                _mm512_loadu_si512(w.add(g * 128).cast()),
                _mm512_loadu_si512(w.add(g * 128 + 64).cast()),
            ),
            CB4 | CB4_SHUFFLE => {
                let packed = _mm512_loadu_si512(w.add(g * 64).cast());
                (
                    lookup::<KIND>(packed, lut),
                    lookup::<KIND>(_mm512_srli_epi16::<4>(packed), lut),
                )
            }
            CB3 => {
                let d = cb3_block(w.add((g / 2) * 96), lut);
                if g.is_multiple_of(2) {
                    (d[0], d[1])
                } else {
                    (d[2], d[3])
                }
            }
            _ => {
                let packed = _mm512_loadu_si512(w.add((g / 2) * 64).cast());
                let base = if g.is_multiple_of(2) {
                    packed
                } else {
                    _mm512_srli_epi16::<4>(packed)
                };
                (
                    lookup::<KIND>(base, lut),
                    lookup::<KIND>(_mm512_srli_epi16::<2>(base), lut),
                )
            }
        }
    }
}

/// Index vectors `(g, half) = (0,0), (0,1), (1,0), (1,1)` of one 3-bit group-pair block
/// (64-byte 2-bit plane + 32-byte high-bit plane; low 3 bits valid). The high bit of lane
/// byte `b`, element `r`, is bit `4·(b % 2) + r` of plane byte `b / 2`: a `vpermb` spreads
/// the plane so byte `b` holds plane byte `b / 2`, odd bytes are shifted down by 4, and
/// per element one shift moves bit `r` to bit 2 where a bit-select (`vpternlogd`) merges it
/// with the two low index bits.
///
/// # Safety
/// The CPU must support AVX-512 VBMI, and `blk` must point at 96 readable bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn cb3_indices(blk: *const u8) -> [__m512i; 4] {
    // SAFETY: the caller guarantees 96 readable bytes at `blk`.
    let (low2, plane) = unsafe {
        (
            _mm512_loadu_si512(blk.cast()),
            _mm512_castsi256_si512(_mm256_loadu_si256(blk.add(64).cast())),
        )
    };
    let spread_bytes: [u8; 64] = std::array::from_fn(|b| (b / 2) as u8);
    // SAFETY: 64 readable bytes.
    let spread = unsafe { _mm512_loadu_si512(spread_bytes.as_ptr().cast()) };
    // SAFETY: the caller guarantees VBMI.
    let y = unsafe { vpermb(spread, plane) };
    let odd: __mmask64 = 0xAAAA_AAAA_AAAA_AAAA;
    let y = _mm512_mask_blend_epi8(odd, y, _mm512_srli_epi16::<4>(y));
    let two_bits = _mm512_set1_epi8(0x03);
    // (two_bits & lo) | (!two_bits & hi)
    let merge = |lo: __m512i, hi: __m512i| _mm512_ternarylogic_epi32::<0xCA>(two_bits, lo, hi);
    [
        merge(low2, _mm512_slli_epi16::<2>(y)),
        merge(_mm512_srli_epi16::<2>(low2), _mm512_slli_epi16::<1>(y)),
        merge(_mm512_srli_epi16::<4>(low2), y),
        merge(_mm512_srli_epi16::<6>(low2), _mm512_srli_epi16::<1>(y)),
    ]
}

/// Decodes a 3-bit group-pair block through the per-tensor table (which repeats the 8
/// levels, so index bits 3..5 do not matter).
///
/// # Safety
/// The CPU must support AVX-512 VBMI, and `blk` must point at 96 readable bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn cb3_block(blk: *const u8, lut: __m512i) -> [__m512i; 4] {
    // SAFETY: forwarded from the caller (VBMI for both).
    unsafe { cb3_indices(blk).map(|idx| vpermb(idx, lut)) }
}

/// Multiply-accumulates one group: `acc[r] += a[r] (4 bytes, broadcast) · (w0, w1)`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn step<const R: usize>(acc: &mut [[__m512i; 2]; R], a: &[__m512i; R], w0: __m512i, w1: __m512i) {
    for (acc_r, &av) in acc.iter_mut().zip(a.iter()) {
        acc_r[0] = _mm512_dpbusd_epi32(acc_r[0], av, w0);
        acc_r[1] = _mm512_dpbusd_epi32(acc_r[1], av, w1);
    }
}

/// `R` rows × 32 columns (from column `col` of the problem) over the reduction's live
/// groups ([`Problem::live`]).
///
/// # Safety
/// The CPU must support the instructions of `KIND` (as [`panel_rows`]),
/// rows `r0..r0+R` of `p.a` must be readable for `k` bytes, `w` must hold the panel's
/// `kp / 4` groups in `KIND`'s layout, and this call must own rows `r0..r0+R` × columns
/// `col..col+ncols` of `out`, which lie inside it.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn kernel<const R: usize, const KIND: u8>(
    p: &Problem<'_>,
    r0: usize,
    w: &[u8],
    fetch_w: bool,
    lut: &[u8; 64],
    out: &OutPtr,
    col: usize,
    ncols: usize,
) {
    let (stream, bias) = (out.stream, out.bias_at(col));
    // The output rows' pointers (formed again for the stores, so that they do not take
    // registers through the reduction).
    // SAFETY: the caller owns these rows of the output, inside it.
    let rows_out = || -> [*mut i32; R] { std::array::from_fn(|i| unsafe { out.at(r0 + i, col) }) };
    let groups = p.w.k_padded() / 4;
    // Groups read whole: those inside the readable bytes (zero past `k`).
    let full = (p.k_read / 4).min(groups);
    let wp = w.as_ptr();
    // Bytes per group in the int8 and 4-bit layouts (the only kinds that prefetch).
    let group_bytes = if KIND == INT8 { 128 } else { 64 };
    // SAFETY: `lut` is 64 readable bytes.
    let lutv = unsafe { _mm512_loadu_si512(lut.as_ptr().cast()) };
    // Gathered rows' offsets may wrap below `a` (only their live windows lie inside it):
    // formed with wrapping arithmetic, dereferenced only inside the live window.
    let rows: [*const u8; R] = std::array::from_fn(|i| match p.rows_at {
        Some(at) => p.a.as_ptr().wrapping_add(at[r0 + i]),
        None => p.a[(r0 + i) * p.lda..].as_ptr(),
    });
    // The next row block's activations, prefetched a line per group while this one runs
    // (a hint only: addresses past the slice are never dereferenced). Gathered rows are
    // not `lda` apart: no prefetch.
    let next = p.a.as_ptr().wrapping_add((r0 + R) * p.lda);
    let next_lines = if p.rows_at.is_some() {
        0
    } else {
        (R * p.lda).div_ceil(64)
    };
    if !bias.is_null() {
        // A biased output is usually a layer's tensor itself (row tiles; column tiles store
        // into scratch, where the fetch finds the lines in cache), likely out of cache: its
        // lines are fetched while the reduction runs (ResNet-18's 1×1 projections, one
        // thread, 4 images: 101–105 → 82–86 µs for 64→128). A hint: nothing is
        // dereferenced.
        for row in rows_out() {
            _mm_prefetch::<_MM_HINT_T0>(row.cast());
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(16).cast());
        }
    }
    let mut acc = [[_mm512_setzero_si512(); 2]; R];
    let load_a = |g: usize, skip: usize| -> [__m512i; R] {
        std::array::from_fn(|i| {
            // SAFETY: `g < full ≤ k_read / 4`, so bytes `4g .. 4g+4` of row `i` are
            // readable (zero past `k`) — for gathered rows at `skip` past the row's start,
            // `g` a live group (`gemm_block_gather` checks that every row's live window
            // lies inside `a`); the 4-byte read is unaligned.
            let word = unsafe {
                rows[i]
                    .wrapping_add(4 * g + skip)
                    .cast::<i32>()
                    .read_unaligned()
            };
            _mm512_set1_epi32(word)
        })
    };
    let mut g = 0;
    if KIND == CB3 {
        while g + 2 <= full {
            if g < next_lines {
                _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(g * 64).cast());
                _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(g * 64 + 64).cast());
            }
            // SAFETY: groups `g`, `g+1 < groups` lie inside the panel (96 bytes per pair).
            let d = unsafe { cb3_block(wp.add((g / 2) * 96), lutv) };
            step(&mut acc, &load_a(g, 0), d[0], d[1]);
            step(&mut acc, &load_a(g + 1, 0), d[2], d[3]);
            g += 2;
        }
    } else if KIND == CB2 || KIND == CB2_SHUFFLE {
        // Pairs of groups share one 64-byte packed vector: decode both at once.
        while g + 2 <= full {
            // SAFETY: groups `g`, `g+1 < groups` lie inside the panel; the lookups are the
            // kind's (VBMI for `CB2`, which only a VBMI tile selects).
            let (d0, d1, d2, d3) = unsafe {
                let packed = _mm512_loadu_si512(wp.add((g / 2) * 64).cast());
                (
                    lookup::<KIND>(packed, lutv),
                    lookup::<KIND>(_mm512_srli_epi16::<2>(packed), lutv),
                    lookup::<KIND>(_mm512_srli_epi16::<4>(packed), lutv),
                    lookup::<KIND>(_mm512_srli_epi16::<6>(packed), lutv),
                )
            };
            if g < next_lines {
                _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(g * 64).cast());
                _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(g * 64 + 64).cast());
            }
            step(&mut acc, &load_a(g, 0), d0, d1);
            step(&mut acc, &load_a(g + 1, 0), d2, d3);
            g += 2;
        }
    } else {
        // Pieces of `seg_groups` groups, `seg_skip` bytes apart (one piece for plain rows;
        // gathered rows only come with int8 and 4-bit weights, which take this loop), each
        // over its live groups only.
        for (live, skip) in p.live_pieces(full) {
            let seg_end = live.end;
            g = live.start;
            // Four groups per trip while they last (a quarter of the loop's branches).
            while g + 4 <= seg_end {
                if g < next_lines {
                    _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(g * 64).cast());
                    _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(g * 64 + 64).cast());
                    _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(g * 64 + 128).cast());
                    _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(g * 64 + 192).cast());
                }
                if fetch_w {
                    // The weights `WEIGHT_PREFETCH_GROUPS` ahead: 4 lines (int8: 8). A hint:
                    // addresses past the panel are never dereferenced.
                    let at = wp.wrapping_add((g + WEIGHT_PREFETCH_GROUPS) * group_bytes);
                    for l in 0..4 * group_bytes / 64 {
                        _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(l * 64).cast());
                    }
                }
                for u in 0..4 {
                    // SAFETY: `g + u < seg_end ≤ groups`, inside the panel.
                    let (w0, w1) = unsafe { group_weights::<KIND>(wp, lutv, g + u) };
                    step(&mut acc, &load_a(g + u, skip), w0, w1);
                }
                g += 4;
            }
            while g < seg_end {
                // SAFETY: `g < groups`, inside the panel.
                let (w0, w1) = unsafe { group_weights::<KIND>(wp, lutv, g) };
                if g < next_lines {
                    _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(g * 64).cast());
                }
                step(&mut acc, &load_a(g, skip), w0, w1);
                g += 1;
            }
        }
        // Plain rows end their one piece at `full`; gathered rows have no partial group
        // (`full` is every group).
        g = full;
    }
    // Groups that are partly or wholly past `k`: activations zero-padded.
    while g < groups {
        // SAFETY: `g < groups`, inside the panel.
        let (w0, w1) = unsafe { group_weights::<KIND>(wp, lutv, g) };
        let a: [__m512i; R] = std::array::from_fn(|i| _mm512_set1_epi32(p.tail_group(r0 + i, g)));
        step(&mut acc, &a, w0, w1);
        g += 1;
    }
    // The row pointers are writable for `ncols` columns (the caller).
    store_rows!(acc, rows_out(), ncols, stream, bias);
}

/// Rows `rows` × one panel of a reduction of `G` groups (the last group's bytes past
/// `k_read` read as zeros): the panel's `2G` weight vectors are decoded once into registers
/// and the rows stream past [`SMALL_K_ROWS`] at a time.
///
/// # Safety
/// As [`panel_rows`], with `G = p.w.k_padded() / 4 ≥ 1`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn small_k_rows<const KIND: u8, const G: usize>(
    p: &Problem<'_>,
    rows: Range<usize>,
    panel: usize,
    w: &[u8],
    lut: &[u8; 64],
    out: &OutPtr,
) {
    let ncols = (p.w.n() - panel * PANEL).min(PANEL);
    // SAFETY: `lut` is 64 readable bytes; groups `g < G` lie inside the panel.
    let weights: [(__m512i, __m512i); G] = unsafe {
        let lutv = _mm512_loadu_si512(lut.as_ptr().cast());
        std::array::from_fn(|g| group_weights::<KIND>(w.as_ptr(), lutv, g))
    };
    // Where group `g` starts in a row: `4g` in a plain row; in a gathered row, pieces of
    // `seg_groups` groups, each `seg_skip` bytes after the end of the previous one.
    let offsets: [usize; G] = std::array::from_fn(|g| match p.rows_at {
        Some(_) => (g / p.seg_groups) * (4 * p.seg_groups + p.seg_skip) + 4 * (g % p.seg_groups),
        None => 4 * g,
    });
    // The bytes of the last group each row may read (`k_read ≥ k > 4(G − 1)`): all four,
    // or a masked load that reads zeros past `k_read` (bytes past `k` are zero).
    let last = (p.k_read - 4 * (G - 1)).min(4);
    let tail: __mmask16 = (1 << last) - 1;
    let small = SmallK {
        weights,
        offsets,
        tail,
        panel,
        ncols,
    };
    let mut r = rows.start;
    while r + SMALL_K_ROWS <= rows.end {
        // SAFETY: rows `r .. r + SMALL_K_ROWS` lie inside the caller's rows.
        unsafe { small_k_block::<SMALL_K_ROWS, G>(p, r, &small, out) };
        r += SMALL_K_ROWS;
    }
    while r < rows.end {
        // SAFETY: row `r` lies inside the caller's rows.
        unsafe { small_k_block::<1, G>(p, r, &small, out) };
        r += 1;
    }
}

/// What the row blocks of [`small_k_rows`] share.
struct SmallK<const G: usize> {
    /// The panel's decoded weight vectors per group.
    weights: [(__m512i, __m512i); G],
    /// Byte offset of each group from its row's start.
    offsets: [usize; G],
    /// The readable bytes of the last group.
    tail: __mmask16,
    panel: usize,
    ncols: usize,
}

/// Rows of [`small_k_rows`] in one register tile.
const SMALL_K_ROWS: usize = 4;

/// `R` rows from `r0` of [`small_k_rows`].
///
/// # Safety
/// As [`small_k_rows`], for rows `r0 .. r0 + R`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn small_k_block<const R: usize, const G: usize>(
    p: &Problem<'_>,
    r0: usize,
    s: &SmallK<G>,
    out: &OutPtr,
) {
    let starts: [*const u8; R] = std::array::from_fn(|i| match p.rows_at {
        Some(at) => p.a.as_ptr().wrapping_add(at[r0 + i]),
        None => p.a.as_ptr().wrapping_add((r0 + i) * p.lda),
    });
    let mut acc = [[_mm512_setzero_si512(); 2]; R];
    for (g, (&(w0, w1), &off)) in s.weights.iter().zip(&s.offsets).enumerate() {
        let a: [__m512i; R] = std::array::from_fn(|i| {
            let at = starts[i].wrapping_add(off);
            if g + 1 < G {
                // SAFETY: row `r0 + i` holds every group whole below the last (plain rows:
                // `k_read > 4(G − 1)`; gathered rows: whole windows only, `whole_rows`, whose
                // pieces `gemm_block_gather` checks); the read is unaligned.
                _mm512_set1_epi32(unsafe { at.cast::<i32>().read_unaligned() })
            } else {
                // SAFETY: the mask covers the bytes of the last group below `k_read` only
                // (masked-off bytes are neither read nor faulted on) and zeroes the rest.
                _mm512_broadcastd_epi32(unsafe { _mm_maskz_loadu_epi8(s.tail, at.cast()) })
            }
        });
        step(&mut acc, &a, w0, w1);
    }
    // SAFETY: the tile owns rows `r0 .. r0 + R` × the panel's columns, inside the output.
    let c: [*mut i32; R] = std::array::from_fn(|i| unsafe { out.at(r0 + i, s.panel * PANEL) });
    store_rows!(acc, c, s.ncols, out.stream, out.bias_at(s.panel * PANEL));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archparam::CB4_INT8_MIN_ROWS;
    use crate::packed::CodebookWeights;
    use crate::KernelPath;

    /// 4-bit tiles on the layer's int8 copy (tall ones, where the policy asks for it) give
    /// the scalar path's integers, with and without VBMI and a bias; short tiles keep the
    /// 4-bit panels (no copy is made for them).
    #[test]
    fn int8_copy_of_4_bit_weights_matches_scalar() {
        if !KernelPath::Avx512Vnni.is_available() {
            eprintln!("skipped: needs AVX-512 VNNI + VBMI");
            return;
        }
        let mut rng = nuq_core::Rng::new(17);
        let mut r = || rng.next_u64() as u8;
        for &(m, n, k) in &[
            (128, 32, 576),
            (200, 40, 100),
            (130, 96, 64),
            (127, 64, 45),
            (8, 32, 576),
        ] {
            let lda = k + 5;
            let a: Vec<u8> = (0..m * lda).map(|_| r()).collect();
            let idx: Vec<u8> = (0..n * k).map(|_| r() % 16).collect();
            let book: Vec<i8> = (0..16).map(|i| (i * 15 - 110) as i8).collect();
            let bias: Vec<i32> = (0..n).map(|j| 3 * j as i32 - 50).collect();
            for with_bias in [false, true] {
                for vbmi in [false, true] {
                    let w = Weights::Codebook(CodebookWeights::pack(&idx, n, k, 4, &book).unwrap());
                    let p = Problem {
                        a: &a,
                        lda,
                        k_read: k,
                        m,
                        w: &w,
                        rows_at: None,
                        seg_groups: usize::MAX,
                        seg_skip: 0,
                        live: Live::ALL,
                    };
                    let out = |buf: &mut Vec<i32>, bias| OutPtr::over(buf, n, 0, bias);
                    let panels = 0..n.div_ceil(PANEL);
                    let mut want = vec![0i32; m * n];
                    super::super::tile(
                        KernelPath::Scalar,
                        &p,
                        0..m,
                        panels.clone(),
                        &out(&mut want, None),
                    );
                    if with_bias {
                        for (i, v) in want.iter_mut().enumerate() {
                            *v += bias[i % n];
                        }
                    }
                    let mut got = vec![0i32; m * n];
                    let o = out(&mut got, with_bias.then_some(bias.as_slice()));
                    // SAFETY: AVX-512 VNNI and VBMI are available (checked); the problem's
                    // rows are readable for `k` bytes and `got` holds every row × column.
                    unsafe {
                        if vbmi {
                            tile_choosing::<true>(&p, 0..m, panels, &o, Some(CB4_INT8_MIN_ROWS))
                        } else {
                            tile_choosing::<false>(&p, 0..m, panels, &o, Some(CB4_INT8_MIN_ROWS))
                        }
                    };
                    assert_eq!(got, want, "m={m} n={n} k={k} bias={with_bias} vbmi={vbmi}");
                    let Weights::Codebook(cw) = &w else {
                        unreachable!()
                    };
                    assert_eq!(cw.has_int8_copy(), m >= CB4_INT8_MIN_ROWS, "m={m}");
                }
            }
        }
    }
}
