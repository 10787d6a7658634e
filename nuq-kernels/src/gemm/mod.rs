//! Integer GEMM: `C[m][n] = Σ_k A[m][k] · W[n][k]` with `i32` accumulators.
//!
//! * `A` is row-major (`lda ≥ k` elements between rows): unsigned activation levels.
//! * `W` is pre-packed once as [`Weights`]: int8 levels or packed 2/3/4-bit indices + int8
//!   codebook; layouts in [`crate::packed`].
//! * `C` is row-major with `ldc ≥ n`; only columns `0..n` of rows `0..m` are written.
//!
//! Outputs of 4 MiB or more whose rows start on 64-byte boundaries (aligned `c`, `ldc` a
//! multiple of 16) are written by the VNNI paths with non-temporal stores for whole
//! 64-byte lines (AVX-512: 32-column panels, AVX-VNNI: 16-column halves), which saves the
//! read-for-ownership of lines that are fully overwritten.
//!
//! Work is split into tiles of rows × weight panels run on the current rayon pool
//! (`pool.install(..)` chooses the thread count). Each output element is computed by
//! exactly one tile with exact integer arithmetic, so the result does not depend on the
//! thread count or the path.
//!
//! Paths: scalar reference loops; portable `wide` (`i16` widening + `pmaddwd`); AVX2
//! (same scheme with intrinsics — exact, unlike an `i16`-accumulating `vpmaddubsw`, which
//! saturates when both operands span the full 8-bit range); AVX-VNNI (the 256-bit VEX
//! `vpdpbusd` — or its EVEX form on AVX-512 CPUs without AVX-VNNI —, a 6-row × 16-column
//! register tile on the AVX-512 path's weight layout, codebook weights multiplied as the
//! layer's int8 copy); AVX-512 VNNI
//! (`vpdpbusd`, an 8-row × 32-column register tile, codebook weights decoded in registers
//! by `vpermb`).

#[cfg(target_arch = "x86_64")]
mod amx;
#[cfg(target_arch = "x86_64")]
pub(crate) use amx::available as amx_available;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod avxvnni;
mod portable;
mod scalar;

use crate::archparam::STREAM_OUTPUT_BYTES;
use crate::error::{check_len, check_min};
use crate::overflow::check_accumulator_bound;
use crate::packed::{CodebookWeights, Weights, PANEL};
use crate::tiling::GEMM;
use crate::{KernelError, KernelPath};
use rayon::prelude::*;
use std::cell::RefCell;
use std::ops::Range;

/// Where a tile writes: the output matrix as a raw pointer so that tiles running on
/// different threads can each write their own disjoint block of it.
pub(crate) struct OutPtr {
    ptr: *mut i32,
    ldc: usize,
    /// Column of the problem that `ptr` points at (a block GEMM writes columns
    /// `col0 ..` of the problem into a buffer starting at column 0).
    col0: usize,
    /// The output is too large to stay in cache: SIMD paths may write whole aligned lines
    /// with non-temporal stores (no read-for-ownership of lines about to be overwritten).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    stream: bool,
    /// Per-column bias added before the store (`bias[c]` for column `c` of the problem),
    /// or null: the AVX-512 kernels only ([`gemm_block`] checks).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    bias: *const i32,
    /// Row `r` of the problem lands in row `rows[r]` of the output, or, null, in row `r`:
    /// the AVX-VNNI and AVX-512 VNNI kernels only ([`gemm_block_gather`] checks).
    rows: *const usize,
}

// SAFETY: an `OutPtr` is only created from a `&mut [i32]` that outlives the parallel loop,
// and every tile writes a block (rows × columns) disjoint from every other tile's block, so
// sharing the pointer between threads cannot cause a data race.
unsafe impl Sync for OutPtr {}
// SAFETY: as above.
unsafe impl Send for OutPtr {}

impl OutPtr {
    /// An output pointer over `buf` (`ldc` columns, its column 0 the problem's `col0`),
    /// stored plainly, with the bias (if any) added to every sum.
    #[cfg(test)]
    pub(super) fn over(buf: &mut [i32], ldc: usize, col0: usize, bias: Option<&[i32]>) -> OutPtr {
        OutPtr {
            ptr: buf.as_mut_ptr(),
            ldc,
            col0,
            stream: false,
            bias: bias.map_or(std::ptr::null(), <[i32]>::as_ptr),
            rows: std::ptr::null(),
        }
    }

    /// The output row that row `r` of the problem lands in.
    ///
    /// # Safety
    /// `r` must be a row of the problem (a non-null `rows` holds one entry per row).
    unsafe fn out_row(&self, r: usize) -> usize {
        if self.rows.is_null() {
            r
        } else {
            // SAFETY: guaranteed by the caller.
            unsafe { *self.rows.add(r) }
        }
    }

    /// Row `r`, columns `c0 .. c0 + len`, as a mutable slice.
    ///
    /// # Safety
    /// The caller must own that block (no other live reference to it), it must lie inside
    /// the slice the `OutPtr` was made from, and the returned slice (lifetime `'o`, chosen
    /// by the caller) must not outlive that slice's borrow.
    unsafe fn row<'o>(&self, r: usize, c0: usize, len: usize) -> &'o mut [i32] {
        // SAFETY: guaranteed by the caller (`c0 ≥ col0` for every block the tiles write; the
        // row map, where there is one, is checked to stay inside the slice).
        unsafe {
            let r = self.out_row(r);
            std::slice::from_raw_parts_mut(self.ptr.add(r * self.ldc + c0 - self.col0), len)
        }
    }

    /// Pointer to element `(r, c)`.
    ///
    /// # Safety
    /// `(r, c)` must lie inside the slice the `OutPtr` was made from.
    #[cfg(target_arch = "x86_64")]
    unsafe fn at(&self, r: usize, c: usize) -> *mut i32 {
        // SAFETY: guaranteed by the caller (`c ≥ col0` for every block the tiles write; the
        // row map, where there is one, is checked to stay inside the slice).
        unsafe { self.ptr.add(self.out_row(r) * self.ldc + c - self.col0) }
    }

    /// The bias from column `c` of the problem on (null without one; pointer arithmetic
    /// only).
    #[cfg(target_arch = "x86_64")]
    fn bias_at(&self, c: usize) -> *const i32 {
        if self.bias.is_null() {
            self.bias
        } else {
            self.bias.wrapping_add(c)
        }
    }
}

/// A GEMM problem after validation.
#[derive(Clone, Copy)]
pub(crate) struct Problem<'a> {
    pub a: &'a [u8],
    pub lda: usize,
    /// Bytes of each row the kernels may read (`k ≤ k_read ≤ lda`); those past `k` are zero,
    /// so a kernel may multiply a whole 4-byte group that straddles `k`.
    pub k_read: usize,
    pub m: usize,
    pub w: &'a Weights,
    /// Gathered rows (an implicit im2col, [`gemm_block_gather`]): row `r` starts at
    /// `a.as_ptr().wrapping_add(rows_at[r])` instead of `a[r · lda]` (an offset that wraps
    /// below `a` where only the row's live window lies inside it) and runs in pieces of
    /// `seg_groups` groups, each `seg_skip` bytes after the end of the previous one. Plain
    /// rows: `None`, `usize::MAX`, 0.
    pub rows_at: Option<&'a [usize]>,
    pub seg_groups: usize,
    pub seg_skip: usize,
    /// The part of every row that is multiplied ([`Live`]); plain rows: [`Live::ALL`].
    pub live: Live,
}

/// The part of each gathered row that is multiplied: pieces `pieces` and, in each of them,
/// groups `groups` (counted from the piece's start). The rest multiplies zeros — the
/// border of a convolution's window that lies outside the image, whose padding byte is
/// zero — and is not read by the kernels that take a row map ([`takes_row_map`]): its
/// bytes may be anything, or lie outside the activations (rows gathered from the unpadded
/// image). AMX tiles read whole rows, so they take whole windows only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Live {
    pub pieces: (usize, usize),
    pub groups: (usize, usize),
}

impl Live {
    /// Every piece and group of a row.
    pub(crate) const ALL: Live = Live {
        pieces: (0, usize::MAX),
        groups: (0, usize::MAX),
    };
}

impl Problem<'_> {
    /// Whether every group of every row is live (plain rows; gathered rows of a whole
    /// window).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn whole_rows(&self) -> bool {
        let groups = self.w.k().div_ceil(4);
        let seg = self.seg_groups.min(groups).max(1);
        self.live.pieces.0 == 0
            && self.live.pieces.1 >= groups.div_ceil(seg)
            && self.live.groups.0 == 0
            && self.live.groups.1 >= seg
    }

    /// The 4 activation bytes of reduction group `g` of plain row `r` as one little-endian
    /// `i32` (the operand a `vpdpbusd` broadcasts), zero at positions from `k` on: the last
    /// groups of rows whose readable bytes end inside them.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn tail_group(&self, r: usize, g: usize) -> i32 {
        let (row, k) = (&self.a[r * self.lda..], self.w.k());
        i32::from_le_bytes(std::array::from_fn(|t| {
            let kk = 4 * g + t;
            if kk < k {
                row[kk]
            } else {
                0
            }
        }))
    }

    /// Plain rows `r .. r + wide.len() / kp` widened to `i16`, `kp` values each (the
    /// reduction padded with zeros past `k`), into `wide`: the operands of the `vpmaddwd`
    /// kernels (AVX2, portable).
    pub(crate) fn widen_rows(&self, r: usize, kp: usize, wide: &mut [i16]) {
        let k = self.w.k();
        for (i, dst) in wide.chunks_exact_mut(kp).enumerate() {
            let src = &self.a[(r + i) * self.lda..][..k];
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = i16::from(s);
            }
            dst[k..].fill(0);
        }
    }

    /// The live pieces of a row whose first `full` groups are read: per piece, its live
    /// groups (row-wide indices, clipped to `full`) and the bytes they lie past `4g` in the
    /// row (`piece · seg_skip`). Plain rows are one piece at offset 0.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn live_pieces(
        &self,
        full: usize,
    ) -> impl Iterator<Item = (Range<usize>, usize)> + '_ {
        let (seg, live) = (self.seg_groups, self.live);
        let pieces = full.div_ceil(seg.max(1)).max(1);
        (live.pieces.0.min(pieces)..live.pieces.1.min(pieces)).map(move |piece| {
            let base = piece.saturating_mul(seg);
            let end = base.saturating_add(live.groups.1.min(seg)).min(full);
            (
                base.saturating_add(live.groups.0).min(end)..end,
                piece * self.seg_skip,
            )
        })
    }
}

/// Whether `path`'s kernels store gathered rows through a row map ([`Gather::out_rows`]):
/// AVX-VNNI and AVX-512 VNNI, not AMX tiles (which load 16 rows a fixed stride apart).
pub(crate) fn takes_row_map(path: KernelPath) -> bool {
    path == KernelPath::AvxVnni || (path.is_avx512() && path != KernelPath::Amx)
}

thread_local! {
    /// Per-thread scratch for decoding one codebook panel to int8 (grows to the largest
    /// panel once, then is reused: no allocation per call in steady state).
    static DECODE_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `p` over int8 weights, for the kernels that multiply only those (AVX-VNNI, AVX2, and
/// AVX-512 tiles that choose the copy): itself
/// for int8 weights, else with codebook weights replaced by the layer's int8 copy
/// ([`CodebookWeights::int8_weights`], made once on first use: the same integers).
#[cfg(target_arch = "x86_64")]
pub(crate) fn on_int8<'a>(p: &Problem<'a>) -> (Problem<'a>, &'a crate::PackedWeights) {
    match p.w {
        Weights::Int8(w) => (*p, w),
        Weights::Codebook(c) => {
            let copy = c.int8_weights();
            // The copy pads the reduction to whole 4-byte groups, 2- and 3-bit codebooks to
            // whole pairs of them or more: it reads no more of a row.
            debug_assert!(copy.k_padded() <= c.k_padded());
            (Problem { w: copy, ..*p }, c.int8())
        }
    }
}

/// Runs `f` with the int8 bytes of codebook panel `panel`, decoded by `decode` (which
/// must fill the int8 panel layout exactly as [`CodebookWeights::decode_panel`] does) into
/// thread-local scratch.
pub(crate) fn with_decoded_panel<R>(
    w: &CodebookWeights,
    panel: usize,
    decode: impl FnOnce(&CodebookWeights, usize, &mut [u8]),
    f: impl FnOnce(&[u8]) -> R,
) -> R {
    DECODE_SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        let len = PANEL * w.k_padded();
        if buf.len() < len {
            buf.resize(len, 0);
        }
        decode(w, panel, &mut buf[..len]);
        f(&buf[..len])
    })
}

/// Checks a problem of `m` rows of `k` activations (stride `lda`) into `width` output
/// columns (stride `ldc`).
#[allow(clippy::too_many_arguments)]
fn validate(
    path: KernelPath,
    a_len: usize,
    lda: usize,
    m: usize,
    k: usize,
    width: usize,
    c_len: usize,
    ldc: usize,
) -> Result<(), KernelError> {
    path.ensure_available()?;
    if m == 0 {
        return Ok(());
    }
    check_min("lda (must be ≥ k)", k, lda)?;
    check_min("ldc (must be ≥ the output's columns)", width, ldc)?;
    check_len("activations", (m - 1) * lda + k, a_len)?;
    check_len("output", (m - 1) * ldc + width, c_len)
}

/// Checks the accumulator bound, first with the type's full range (`255`) and, only if that fails,
/// with the actual maximum.
fn check_bound(p: &Problem<'_>) -> Result<(), KernelError> {
    let (k, max_w) = (p.w.k(), p.w.max_abs());
    if check_accumulator_bound(k, max_w, 255).is_ok() {
        return Ok(());
    }
    let mut max_a = 0u8;
    for r in 0..p.m {
        for &v in &p.a[r * p.lda..r * p.lda + k] {
            max_a = max_a.max(v);
        }
    }
    check_accumulator_bound(k, max_w, u32::from(max_a))
}

fn run(path: KernelPath, p: &Problem<'_>, c: &mut [i32], ldc: usize) -> Result<(), KernelError> {
    check_bound(p)?;
    if p.m == 0 {
        return Ok(());
    }
    let n = p.w.n();
    let panels = n.div_ceil(PANEL);
    let plan = GEMM.plan(p.m, p.w.k_padded(), panels, rayon::current_num_threads());
    let (mc, pc) = (plan.rows, plan.panels);
    let row_tiles = p.m.div_ceil(mc);
    let panel_tiles = panels.div_ceil(pc);
    let out = OutPtr {
        ptr: c.as_mut_ptr(),
        ldc,
        col0: 0,
        stream: p.m * ldc * std::mem::size_of::<i32>() >= STREAM_OUTPUT_BYTES,
        bias: std::ptr::null(),
        rows: std::ptr::null(),
    };
    (0..row_tiles * panel_tiles).into_par_iter().for_each(|t| {
        let (rt, pt) = (t / panel_tiles, t % panel_tiles);
        let rows = rt * mc..((rt + 1) * mc).min(p.m);
        let pans = pt * pc..((pt + 1) * pc).min(panels);
        tile(path, p, rows, pans, &out);
    });
    Ok(())
}

/// One instruction set's GEMM micro-kernels (as matrixmultiply's `GemmKernel`): the shape
/// of its register tile and the tile loop built on it. [`KernelPath`] picks the impl
/// ([`tile`]); the tile policy ([`crate::tiling`]) works in multiples of the widest `MR`.
pub(crate) trait GemmKernel {
    /// Rows of the register tile (output rows computed together).
    const MR: usize;
    /// Columns of the register tile (output channels computed together).
    const NR: usize;

    /// Computes output rows `rows` × the columns of panels `panels` into `out`.
    ///
    /// # Safety
    /// The CPU must support the kernel's path ([`KernelPath::ensure_available`]), the problem
    /// must be validated, and the call must own the block of `out` it writes.
    unsafe fn tile(p: &Problem<'_>, rows: Range<usize>, panels: Range<usize>, out: &OutPtr);
}

// Tiles are multiples of the widest register tile, and panels of every kernel's columns.
#[cfg(target_arch = "x86_64")]
const _: () = assert!(
    crate::archparam::ROW_ALIGN == avx512::Avx512::<true>::MR
        && PANEL.is_multiple_of(avx512::Avx512::<true>::NR)
        && PANEL.is_multiple_of(avx2::Avx2::NR)
        && PANEL.is_multiple_of(avxvnni::AvxVnni::NR)
);
const _: () = assert!(PANEL.is_multiple_of(portable::Portable::NR) && scalar::Scalar::NR == 1);

/// Computes output rows `rows` × the columns of panels `panels` with `path`'s kernel.
fn tile(path: KernelPath, p: &Problem<'_>, rows: Range<usize>, panels: Range<usize>, out: &OutPtr) {
    // SAFETY: `run` and `gemm_block` validate the problem and confirm the path with
    // `ensure_available` before any tile runs, and each tile owns its block of `out`.
    unsafe {
        match path {
            KernelPath::Scalar => scalar::Scalar::tile(p, rows, panels, out),
            KernelPath::Portable => portable::Portable::tile(p, rows, panels, out),
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => avx2::Avx2::tile(p, rows, panels, out),
            #[cfg(target_arch = "x86_64")]
            KernelPath::AvxVnni => avxvnni::AvxVnni::tile(p, rows, panels, out),
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512Vnni => avx512::Avx512::<true>::tile(p, rows, panels, out),
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512VnniNoVbmi => avx512::Avx512::<false>::tile(p, rows, panels, out),
            #[cfg(target_arch = "x86_64")]
            KernelPath::Amx => amx::Amx::tile(p, rows, panels, out),
            #[cfg(not(target_arch = "x86_64"))]
            KernelPath::Avx2
            | KernelPath::AvxVnni
            | KernelPath::Avx512VnniNoVbmi
            | KernelPath::Avx512Vnni
            | KernelPath::Amx => {
                unreachable!("ensure_available rejects x86 paths on other targets")
            }
        }
    }
}

/// `C = A · Wᵀ` for unsigned activations `a` (`m × k`, row stride `lda`) and packed
/// weights `w` (int8 levels, or codebook indices decoded inside the kernel); writes
/// `c[r·ldc + j]` for `r < m`, `j < n`.
///
/// # Errors
/// [`KernelError::PathUnavailable`], [`KernelError::ShapeMismatch`] /
/// [`KernelError::SliceTooShort`] for inconsistent shapes,
/// [`KernelError::AccumulatorOverflow`] when `k · max|w| · max|a|` exceeds `i32::MAX`.
pub fn gemm(
    path: KernelPath,
    a: &[u8],
    lda: usize,
    m: usize,
    w: &Weights,
    c: &mut [i32],
    ldc: usize,
) -> Result<(), KernelError> {
    validate(path, a.len(), lda, m, w.k(), w.n(), c.len(), ldc)?;
    let k_read = w.k();
    run(
        path,
        &Problem {
            a,
            lda,
            k_read,
            m,
            w,
            rows_at: None,
            seg_groups: usize::MAX,
            seg_skip: 0,
            live: Live::ALL,
        },
        c,
        ldc,
    )
}

/// One block of `C = A · Wᵀ` for unsigned activations, computed on the calling thread:
/// rows `0..m` of `a` times the output columns of weight panels `panels` (columns
/// `panels.start · PANEL .. min(panels.end · PANEL, n)`). Column `j` of the problem lands
/// in column `j − panels.start · PANEL` of `c` (row stride `ldc`).
///
/// This is the building block of the fused convolution ([`crate::conv`]), which schedules
/// its own parallel work; the results are those of [`gemm()`] bit for bit. Each row holds
/// `k_read` readable bytes (`k ≤ k_read ≤ lda`), zero past `k`. With `bias` (one per
/// column of the problem; AVX-512 VNNI only) each stored element is `acc + bias[column]`,
/// added in wrapping `i32`: the caller must know that no sum leaves `i32`.
///
/// # Errors
/// As [`gemm()`]; [`KernelError::ShapeMismatch`] for an empty or out-of-range panel
/// range, `ldc` narrower than the block, or `k_read` outside `k ..= lda`;
/// [`KernelError::Unsupported`] for a bias on another path, [`KernelError::SliceTooShort`]
/// for a bias shorter than `n`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_block(
    path: KernelPath,
    a: &[u8],
    lda: usize,
    k_read: usize,
    m: usize,
    w: &Weights,
    panels: Range<usize>,
    c: &mut [i32],
    ldc: usize,
    bias: Option<&[i32]>,
) -> Result<(), KernelError> {
    let n = w.n();
    let total = n.div_ceil(PANEL);
    if panels.start >= panels.end || panels.end > total {
        return Err(KernelError::ShapeMismatch {
            what: "block panel range end (non-empty, within the weights' panels)",
            expected: total,
            found: panels.end,
        });
    }
    let col0 = panels.start * PANEL;
    let width = (panels.end * PANEL).min(n) - col0;
    validate(path, a.len(), lda, m, w.k(), width, c.len(), ldc)?;
    check_min("bytes read per row (≥ k)", w.k(), k_read)?;
    check_min("lda (≥ bytes read per row)", k_read, lda)?;
    if m == 0 {
        return Ok(());
    }
    check_len("activations", (m - 1) * lda + k_read, a.len())?;
    let p = Problem {
        a,
        lda,
        k_read,
        m,
        w,
        rows_at: None,
        seg_groups: usize::MAX,
        seg_skip: 0,
        live: Live::ALL,
    };
    check_bound(&p)?;
    let out = OutPtr {
        ptr: c.as_mut_ptr(),
        ldc,
        col0,
        stream: false,
        bias: bias_ptr(path, bias, w.n())?,
        rows: std::ptr::null(),
    };
    tile(path, &p, 0..m, panels, &out);
    Ok(())
}

/// The bias pointer of a block GEMM that adds `bias` (one per output column) to its
/// accumulators as it stores them: the AVX-512 VNNI kernels only, and the caller must know
/// that no sum leaves `i32` (the add wraps).
fn bias_ptr(path: KernelPath, bias: Option<&[i32]>, n: usize) -> Result<*const i32, KernelError> {
    let Some(bias) = bias else {
        return Ok(std::ptr::null());
    };
    if !path.is_avx512() {
        return Err(KernelError::Unsupported {
            what: "bias added in the GEMM's stores (AVX-512 VNNI only)",
            value: 0,
            allowed: "the AVX-512 VNNI path",
        });
    }
    check_len("bias (one per output column)", n, bias.len())?;
    Ok(bias.as_ptr())
}

/// Rows of a GEMM's activations gathered from an image instead of an unfolded matrix (an
/// implicit im2col): row `r` is `pieces` runs of `piece_len` bytes, the first at offset
/// `rows_at[r]` of `a`, each `pitch` bytes after the start of the previous one.
///
/// `live` says which part of every row is multiplied ([`Live`]: the rest multiplies zeros
/// and is skipped). On the paths that take a row map only the live window has to lie
/// inside `a`, so an offset may wrap below it (`0usize.wrapping_sub(d)` for `d` bytes
/// before `a`: the top-left tap of a border pixel of an unpadded image); `out_rows`, where
/// given, sends row `r` to output row `out_rows[r]` instead of `r` (rows gathered in
/// another order: the AVX-VNNI and AVX-512 VNNI kernels, not AMX tiles).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gather<'a> {
    pub rows_at: &'a [usize],
    pub pieces: usize,
    pub piece_len: usize,
    pub pitch: usize,
    pub live: Live,
    pub out_rows: Option<&'a [usize]>,
}

/// [`gemm_block`] on gathered rows (`m = gather.rows_at.len()`), AVX-VNNI and AVX-512 VNNI
/// only, for int8 or 4-bit codebook weights whose accumulators are bounded for any `u8`
/// activations.
///
/// # Errors
/// As [`gemm_block`] (the bias too); [`KernelError::Unsupported`] for another path or
/// weight width, or for a row map on a path without one ([`takes_row_map`]);
/// [`KernelError::ShapeMismatch`] when the pieces do not make up `k` in whole groups, the
/// live window leaves them, a row's live window starts before `a`, or a window is not
/// whole on a path without a row map;
/// [`KernelError::SliceTooShort`] when a row's live window runs past `a`;
/// [`KernelError::AccumulatorOverflow`] when `k · max|w| · 255` exceeds `i32`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_block_gather(
    path: KernelPath,
    a: &[u8],
    gather: &Gather<'_>,
    w: &Weights,
    panels: Range<usize>,
    c: &mut [i32],
    ldc: usize,
    bias: Option<&[i32]>,
) -> Result<(), KernelError> {
    path.ensure_available()?;
    let four_bit_or_int8 = match w {
        Weights::Int8(_) => true,
        Weights::Codebook(cw) => cw.bits() == 4,
    };
    let vnni = path == KernelPath::AvxVnni || path.is_avx512();
    if !vnni || !four_bit_or_int8 {
        return Err(KernelError::Unsupported {
            what: "gathered GEMM rows (AVX-VNNI or AVX-512 VNNI with int8 or 4-bit weights only)",
            value: i64::from(vnni),
            allowed: "1",
        });
    }
    let Gather {
        rows_at,
        pieces,
        piece_len,
        pitch,
        live,
        out_rows,
    } = *gather;
    let k = w.k();
    if pieces == 0 || !piece_len.is_multiple_of(4) || pieces * piece_len != k || pitch < piece_len {
        return Err(KernelError::ShapeMismatch {
            what: "gathered pieces (whole 4-byte groups making up k, pitch ≥ piece)",
            expected: k,
            found: pieces * piece_len,
        });
    }
    let m = rows_at.len();
    let total = w.n().div_ceil(PANEL);
    if panels.start >= panels.end || panels.end > total {
        return Err(KernelError::ShapeMismatch {
            what: "block panel range end (non-empty, within the weights' panels)",
            expected: total,
            found: panels.end,
        });
    }
    let col0 = panels.start * PANEL;
    let width = (panels.end * PANEL).min(w.n()) - col0;
    if m == 0 {
        return Ok(());
    }
    check_min("ldc (must be ≥ the output's columns)", width, ldc)?;
    let out_last = match out_rows {
        None => m - 1,
        Some(rows) => {
            if !takes_row_map(path) {
                return Err(KernelError::Unsupported {
                    what: "gathered rows stored through a row map (AVX-VNNI, AVX-512 VNNI)",
                    value: 1,
                    allowed: "0",
                });
            }
            check_len("output rows (one per gathered row)", m, rows.len())?;
            rows.iter().copied().max().unwrap_or(0)
        }
    };
    check_len("output", out_last * ldc + width, c.len())?;
    let groups = piece_len / 4;
    for (what, (start, end), total) in [
        (
            "live pieces' end (ordered, within the row's pieces)",
            live.pieces,
            pieces,
        ),
        (
            "live groups' end (ordered, within a piece's groups)",
            live.groups,
            groups,
        ),
    ] {
        if start > end || end > total {
            return Err(KernelError::ShapeMismatch {
                what,
                expected: total,
                found: end,
            });
        }
    }
    // Where each row's live window lies, from its offset (read as signed: an offset may
    // wrap below `a`).
    if live.pieces.0 < live.pieces.1 && live.groups.0 < live.groups.1 {
        let first = (live.pieces.0 * pitch + 4 * live.groups.0) as i128;
        let end = ((live.pieces.1 - 1) * pitch + 4 * live.groups.1) as i128;
        let (lo, hi) = rows_at
            .iter()
            .fold((isize::MAX, isize::MIN), |(lo, hi), &at| {
                (lo.min(at as isize), hi.max(at as isize))
            });
        let (lo, hi) = (lo as i128, hi as i128);
        if lo + first < 0 {
            return Err(KernelError::ShapeMismatch {
                what: "gathered row's live window start (inside the activations)",
                expected: 0,
                found: (-(lo + first)) as usize,
            });
        }
        check_len("gathered activations", (hi + end) as usize, a.len())?;
    }
    check_accumulator_bound(k, w.max_abs(), 255)?;
    let p = Problem {
        a,
        lda: 0,
        k_read: k,
        m,
        w,
        rows_at: Some(rows_at),
        seg_groups: groups,
        seg_skip: pitch - piece_len,
        live,
    };
    if !p.whole_rows() && !takes_row_map(path) {
        return Err(KernelError::Unsupported {
            what: "part of a gathered window (the paths that take a row map only)",
            value: 0,
            allowed: "whole windows",
        });
    }
    let out = OutPtr {
        ptr: c.as_mut_ptr(),
        ldc,
        col0,
        stream: false,
        bias: bias_ptr(path, bias, w.n())?,
        rows: out_rows.map_or(std::ptr::null(), <[usize]>::as_ptr),
    };
    tile(path, &p, 0..m, panels, &out);
    Ok(())
}

#[cfg(test)]
mod gather_tests {
    use super::*;

    /// A row-map path of this CPU, if any.
    fn row_map_path() -> Option<KernelPath> {
        [
            KernelPath::Avx512Vnni,
            KernelPath::Avx512VnniNoVbmi,
            KernelPath::AvxVnni,
        ]
        .into_iter()
        .find(|p| p.is_available())
    }

    /// Rows whose offsets wrap below the activations read only their live window; a window
    /// that starts before them, or runs past them, is refused.
    #[test]
    fn live_windows_may_start_at_wrapped_offsets() {
        let Some(path) = row_map_path() else { return };
        // k = 3 pieces of 2 groups (8 bytes), 40 output channels, pitch 12.
        let (k, n, pitch) = (24, 40, 12);
        let idx: Vec<u8> = (0..n * k).map(|i| (i * 7 % 5) as u8).collect();
        let w = Weights::pack(&idx, n, k, 8, &[-2, -1, 0, 1, 2]).unwrap();
        let a: Vec<u8> = (0..48u8).map(|v| v.wrapping_mul(37)).collect();
        // Row 0 starts 4 bytes before `a`, row 1 at 8; both read pieces 1..3, group 1.
        let rows_at = [0usize.wrapping_sub(4), 8];
        let live = Live {
            pieces: (1, 3),
            groups: (1, 2),
        };
        let gather = Gather {
            rows_at: &rows_at,
            pieces: 3,
            piece_len: 8,
            pitch,
            live,
            out_rows: None,
        };
        let mut c = vec![0i32; 2 * n];
        gemm_block_gather(path, &a, &gather, &w, 0..2, &mut c, n, None).unwrap();
        for (r, &at) in rows_at.iter().enumerate() {
            for j in 0..n {
                let want: i32 = (1..3)
                    .flat_map(|piece| (4..8).map(move |b| (piece, b)))
                    .map(|(piece, b)| {
                        let x = a[at.wrapping_add(piece * pitch + b)];
                        i32::from(x) * i32::from(w.level(j, piece * 8 + b))
                    })
                    .sum();
                assert_eq!(c[r * n + j], want, "row {r} channel {j}");
            }
        }
        // Group 0 of row 0 would start 4 bytes before `a`.
        let early = Gather {
            live: Live {
                pieces: (0, 3),
                groups: (0, 2),
            },
            ..gather
        };
        assert!(matches!(
            gemm_block_gather(path, &a, &early, &w, 0..2, &mut c, n, None),
            Err(KernelError::ShapeMismatch { .. })
        ));
        // Row 1's last piece would end past `a`.
        let late = Gather {
            rows_at: &[0, 30],
            ..gather
        };
        assert!(matches!(
            gemm_block_gather(path, &a, &late, &w, 0..2, &mut c, n, None),
            Err(KernelError::SliceTooShort { .. })
        ));
    }
}
