//! AMX-INT8 path (Intel Sapphire Rapids and later): `tdpbusd` multiplies a 16-row × 64-byte
//! tile of `u8` activations by a 16-group × 16-column tile of `i8` weights into a 16 × 16
//! tile of exact `i32` sums — 16 384 multiply-adds per instruction.
//!
//! Eight tiles, all 16 rows × 64 bytes (one configuration, loaded once per panel): four
//! accumulators (`tmm0..=3`: 32 rows × one 32-column panel), two activation tiles
//! (`tmm4`, `tmm5`: rows `r0 .. r0 + 16` and `r0 + 16 .. r0 + 32` of 16 reduction groups)
//! and two weight tiles (`tmm6`, `tmm7`: the panel's two 16-channel halves). The int8
//! panel layout ([`crate::packed`]) already is the weight tile's: group `g` is 128 bytes,
//! channels 0..16 in its first 64, so a half is 16 rows 128 bytes apart: tiles load int8
//! panels in place (codebook weights are converted to int8 once per layer and kept,
//! [`CodebookWeights::int8`](crate::packed::CodebookWeights)), and a last partial
//! tile of 16 groups from a copy padded with zero groups. Every weight of a position past
//! `k` is zero, so the activation bytes past `k` that the tiles read (readable memory,
//! checked per block) add nothing.
//!
//! A convolution's gathered rows (an implicit im2col: each output pixel's row read from
//! the padded input in pieces, one per kernel row) load as tiles too where 16 rows lie one
//! stride apart — 16 pixels of one output row — and each piece is whole tiles of 16
//! groups (3×3 over 64, 128, … channels); a reduction tile then reads 64 bytes of one piece
//! from each of 16 pixels.
//!
//! What tiles cannot take runs on the AVX-512 kernel, whose sums are the same integers:
//! gathered rows in pieces of other lengths, and blocks whose halves are not one stride
//! apart; reductions of at most [`SMALL_K_GROUPS`](crate::archparam::SMALL_K_GROUPS)
//! groups; the rows after the last whole 32-row block; plain blocks whose last tile would
//! read past the activations; and a last panel narrower than 32 columns.
//!
//! The tile operations are a trait ([`TileUnit`]): [`Native`] issues the instructions,
//! `Emulated` (tests) computes them by their definition, so that the driver — strides,
//! padding, block and panel splits — is tested on every AVX-512 machine, and the
//! instructions themselves wherever AMX is present (every path test runs the `amx` path
//! there).

use super::avx512::Avx512;
use super::{GemmKernel, OutPtr, Problem};
use crate::archparam::SMALL_K_GROUPS;
use crate::packed::{Weights, PANEL};
use std::arch::asm;
use std::arch::x86_64::*;
use std::ops::Range;

/// Rows of every tile.
const TILE_ROWS: usize = 16;
/// Bytes of every tile row: 16 reduction groups of activations, 16 `i32` sums, or one
/// group of 16 channels' weights.
const TILE_COLSB: usize = 64;
/// Rows of a block: two activation tiles.
const BLOCK: usize = 2 * TILE_ROWS;
/// Bytes of a group of a 32-channel int8 panel.
const GROUP_BYTES: usize = 2 * TILE_COLSB;

/// The tile operations of the driver (tile indices as in the module docs).
pub(super) trait TileUnit {
    /// Configures eight tiles of 16 rows × 64 bytes.
    fn config(&mut self);
    /// Zeroes tile `t`.
    fn zero(&mut self, t: usize);
    /// Loads tile `t` from 16 rows of 64 bytes, `stride` bytes apart, from `src`.
    ///
    /// # Safety
    /// The 16 rows must be readable.
    unsafe fn load(&mut self, t: usize, src: *const u8, stride: usize);
    /// `tile[c] += tile[a] (u8) · tile[b] (i8)` by groups of four bytes.
    fn dot(&mut self, c: usize, a: usize, b: usize);
    /// Stores tile `t` as 16 rows of 64 bytes, `stride` bytes apart, at `dst`.
    ///
    /// # Safety
    /// The 16 rows must be writable and owned by the caller.
    unsafe fn store(&mut self, t: usize, dst: *mut u8, stride: usize);
    /// Releases the tiles.
    fn release(&mut self);
}

/// The AMX instructions.
pub(super) struct Native;

/// The configuration: palette 1, eight tiles of 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

const CONFIG: TileConfig = {
    let mut c = [0u8; 64];
    c[0] = 1;
    let mut t = 0;
    while t < 8 {
        // `colsb` (16-bit) at byte 16 + 2t, `rows` at byte 48 + t.
        c[16 + 2 * t] = TILE_COLSB as u8;
        c[48 + t] = TILE_ROWS as u8;
        t += 1;
    }
    TileConfig(c)
};

/// Emits `$op` with tile register `tmm{t}` (`t < 8`) spliced in by `$fmt` (a macro that
/// takes the register's name).
macro_rules! per_tile {
    ($t:expr, $fmt:ident) => {
        match $t {
            0 => $fmt!("tmm0"),
            1 => $fmt!("tmm1"),
            2 => $fmt!("tmm2"),
            3 => $fmt!("tmm3"),
            4 => $fmt!("tmm4"),
            5 => $fmt!("tmm5"),
            6 => $fmt!("tmm6"),
            _ => $fmt!("tmm7"),
        }
    };
}

impl TileUnit for Native {
    fn config(&mut self) {
        // SAFETY: AMX is available (the path's check, which also obtained the kernel's
        // permission); the configuration is 64 readable bytes.
        unsafe { asm!("ldtilecfg [{c}]", c = in(reg) &CONFIG, options(nostack, readonly)) }
    }

    fn zero(&mut self, t: usize) {
        macro_rules! op {
            ($r:literal) => {
                // SAFETY: AMX is available and configured.
                unsafe { asm!(concat!("tilezero ", $r), options(nostack, nomem)) }
            };
        }
        per_tile!(t, op)
    }

    unsafe fn load(&mut self, t: usize, src: *const u8, stride: usize) {
        macro_rules! op {
            ($r:literal) => {
                // SAFETY: the caller's 16 rows are readable.
                unsafe {
                    asm!(concat!("tileloadd ", $r, ", [{p} + {s}*1]"), p = in(reg) src,
                        s = in(reg) stride, options(nostack, readonly))
                }
            };
        }
        per_tile!(t, op)
    }

    fn dot(&mut self, c: usize, a: usize, b: usize) {
        macro_rules! dot {
            ($c:literal, $a:literal, $b:literal) => {
                // SAFETY: AMX is available and configured.
                unsafe {
                    asm!(
                        concat!("tdpbusd ", $c, ", ", $a, ", ", $b),
                        options(nostack, nomem)
                    )
                }
            };
        }
        match (c, a, b) {
            (0, 4, 6) => dot!("tmm0", "tmm4", "tmm6"),
            (1, 4, 7) => dot!("tmm1", "tmm4", "tmm7"),
            (2, 5, 6) => dot!("tmm2", "tmm5", "tmm6"),
            (3, 5, 7) => dot!("tmm3", "tmm5", "tmm7"),
            _ => unreachable!("the driver multiplies tmm4/5 by tmm6/7 into tmm0..=3"),
        }
    }

    unsafe fn store(&mut self, t: usize, dst: *mut u8, stride: usize) {
        macro_rules! op {
            ($r:literal) => {
                // SAFETY: the caller's 16 rows are writable and owned.
                unsafe {
                    asm!(concat!("tilestored [{p} + {s}*1], ", $r), p = in(reg) dst,
                        s = in(reg) stride, options(nostack))
                }
            };
        }
        per_tile!(t, op)
    }

    fn release(&mut self) {
        // SAFETY: AMX is available.
        unsafe { asm!("tilerelease", options(nostack, nomem)) }
    }
}

pub(super) struct Amx;

impl GemmKernel for Amx {
    const MR: usize = BLOCK;
    const NR: usize = PANEL;

    unsafe fn tile(p: &Problem<'_>, rows: Range<usize>, panels: Range<usize>, out: &OutPtr) {
        // SAFETY: forwarded from the caller (the AMX path implies the AVX-512 VNNI + VBMI
        // path's features).
        unsafe { tile_with(&mut Native, p, rows, panels, out) }
    }
}

/// The AVX-512 kernel on rows `rows` × panels `panels`.
///
/// # Safety
/// As [`GemmKernel::tile`] for the AVX-512 VNNI + VBMI path.
unsafe fn fallback(p: &Problem<'_>, rows: Range<usize>, panels: Range<usize>, out: &OutPtr) {
    if !rows.is_empty() && !panels.is_empty() {
        // SAFETY: forwarded from the caller.
        unsafe { Avx512::<true>::tile(p, rows, panels, out) }
    }
}

/// The driver (module docs) on the tile unit `u`.
///
/// # Safety
/// As [`GemmKernel::tile`]; `u` must be usable on this CPU (AMX for [`Native`]), and the
/// AVX-512 VNNI + VBMI kernel runs what tiles cannot take.
pub(super) unsafe fn tile_with<U: TileUnit>(
    u: &mut U,
    p: &Problem<'_>,
    rows: Range<usize>,
    panels: Range<usize>,
    out: &OutPtr,
) {
    // Groups of the int8 layout the tiles read (codebook weights' own padding may be
    // longer).
    let groups = p.w.k().div_ceil(4);
    // A tile row is 16 groups of one piece of a gathered row: pieces must be whole tiles.
    let pieces_whole = p.rows_at.is_none() || p.seg_groups.is_multiple_of(TILE_ROWS);
    if !pieces_whole || groups <= SMALL_K_GROUPS {
        // SAFETY: forwarded from the caller.
        unsafe { fallback(p, rows, panels, out) };
        return;
    }
    let chunks = groups.div_ceil(TILE_ROWS);
    // Where reduction tile `ch` starts in a row, in bytes from the row's first byte (plain
    // rows are one piece: `seg_groups` is `usize::MAX`).
    let chunk_at = |ch: usize| {
        let g = ch * TILE_ROWS;
        4 * g + (g / p.seg_groups) * p.seg_skip
    };
    let halves = |r0: usize| block_halves(p, r0, rows.end, chunks);
    let blocks = || (rows.start..rows.end).step_by(BLOCK);
    // Whole panels (a last one narrower than 32 columns is the AVX-512 kernel's).
    let whole = panels.start..panels.end.min(p.w.n() / PANEL).max(panels.start);
    if whole.is_empty() || blocks().all(|r0| halves(r0).is_none()) {
        // SAFETY: forwarded from the caller.
        unsafe { fallback(p, rows, panels, out) };
        return;
    }
    let groups_whole = groups / TILE_ROWS;
    let int8 = match p.w {
        Weights::Int8(w) => w,
        Weights::Codebook(w) => w.int8(),
    };
    for panel in whole.clone() {
        // The panel's int8 weights (zero at every position past `k`); the whole tiles read
        // them in place, a last partial tile from a copy padded with zero groups.
        let src = int8.panel_bytes(panel);
        let mut tail = [0u8; TILE_ROWS * GROUP_BYTES];
        let rest = &src[groups_whole * TILE_ROWS * GROUP_BYTES..];
        tail[..rest.len()].copy_from_slice(rest);
        u.config();
        for r0 in blocks() {
            if let Some(h) = halves(r0) {
                // SAFETY: `block_halves` checked the block's tile rows (readable for every
                // reduction tile); `src` holds `groups_whole` tiles of groups and `tail` one;
                // the panel is whole and this call owns its block of the output.
                unsafe { block(u, p, h, &chunk_at, chunks, src, &tail, panel, r0, out) };
            }
        }
        u.release();
        if !out.bias.is_null() {
            for r0 in blocks().filter(|&r0| halves(r0).is_some()) {
                // SAFETY: this call owns rows `r0 .. r0 + 32` of the panel's 32 columns,
                // and the bias covers every column of the problem.
                unsafe { add_bias(out, r0..r0 + BLOCK, panel * PANEL) };
            }
        }
    }
    // The blocks tiles did not take (and a last partial one), in runs, and a partial last
    // panel, on the AVX-512 kernel.
    let mut run: Option<usize> = None;
    for r0 in blocks() {
        match (halves(r0).is_some(), run) {
            (true, Some(start)) => {
                // SAFETY: forwarded from the caller.
                unsafe { fallback(p, start..r0, whole.clone(), out) };
                run = None;
            }
            (false, None) => run = Some(r0),
            _ => {}
        }
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        if let Some(start) = run {
            fallback(p, start..rows.end, whole.clone(), out);
        }
        fallback(p, rows, whole.end..panels.end, out);
    }
}

/// Where the two activation tiles of the 32-row block from row `r0` start in `p.a` and
/// their row strides, or `None` where tiles cannot load it: the block ends past `end`;
/// plain rows whose every tile row (`64 · chunks` bytes from the row's start) is not
/// readable; gathered rows whose 16 rows of a half are not one stride apart (a half that
/// crosses an output row of a convolution).
fn block_halves(
    p: &Problem<'_>,
    r0: usize,
    end: usize,
    chunks: usize,
) -> Option<[(usize, usize); 2]> {
    if r0 + BLOCK > end {
        return None;
    }
    match p.rows_at {
        None => ((r0 + BLOCK - 1) * p.lda + chunks * TILE_COLSB <= p.a.len())
            .then(|| [(r0 * p.lda, p.lda), ((r0 + TILE_ROWS) * p.lda, p.lda)]),
        // `gemm_block_gather` checked that every piece of every row lies inside `p.a` (AMX
        // takes whole windows only), and a tile row reads 64 bytes of one piece.
        Some(at) => {
            let half = |h0: usize| {
                let (start, stride) = (at[h0], at[h0 + 1].checked_sub(at[h0])?);
                (1..TILE_ROWS)
                    .all(|i| at[h0 + i] == start + i * stride)
                    .then_some((start, stride))
            };
            Some([half(r0)?, half(r0 + TILE_ROWS)?])
        }
    }
}

/// One 32-row block × one panel: `chunks` tiles of the reduction, then the four sums'
/// tiles stored. The activation tiles' rows start at `p.a[halves[h].0 + chunk_at(ch)]`,
/// `halves[h].1` bytes apart. Reduction tile `ch` reads its weights from `b` where `b`
/// holds all 16 of its groups, else from `tail` (the last tile's groups, zero-padded).
///
/// # Safety
/// Every tile row the halves and `chunk_at` name is readable for 64 bytes, `b` and `tail`
/// hold the panel's groups as above (zero past `k`), the panel is whole, and the caller
/// owns the output block of rows `r0 .. r0 + 32`.
#[allow(clippy::too_many_arguments)]
unsafe fn block<U: TileUnit>(
    u: &mut U,
    p: &Problem<'_>,
    halves: [(usize, usize); 2],
    chunk_at: &impl Fn(usize) -> usize,
    chunks: usize,
    b: &[u8],
    tail: &[u8; TILE_ROWS * GROUP_BYTES],
    panel: usize,
    r0: usize,
    out: &OutPtr,
) {
    for t in 0..4 {
        u.zero(t);
    }
    let a = p.a.as_ptr();
    let [(a0, s0), (a1, s1)] = halves;
    for ch in 0..chunks {
        let (ak, bk) = (chunk_at(ch), ch * TILE_ROWS * GROUP_BYTES);
        let w = if bk + TILE_ROWS * GROUP_BYTES <= b.len() {
            b[bk..].as_ptr()
        } else {
            tail.as_ptr()
        };
        // SAFETY: the caller's tile rows; `w` holds 16 groups of 128 bytes.
        unsafe {
            u.load(4, a.wrapping_add(a0 + ak), s0);
            u.load(5, a.wrapping_add(a1 + ak), s1);
            u.load(6, w, GROUP_BYTES);
            u.load(7, w.add(TILE_COLSB), GROUP_BYTES);
        }
        u.dot(0, 4, 6);
        u.dot(1, 4, 7);
        u.dot(2, 5, 6);
        u.dot(3, 5, 7);
    }
    let ldc = out.ldc * 4;
    let col = panel * PANEL;
    for (t, (dr, dc)) in [(0, 0), (0, 16), (TILE_ROWS, 0), (TILE_ROWS, 16)]
        .into_iter()
        .enumerate()
    {
        // SAFETY: the caller owns rows `r0 .. r0 + 32` × the panel's 32 columns.
        unsafe { u.store(t, out.at(r0 + dr, col + dc).cast(), ldc) };
    }
}

/// Adds the bias of columns `col .. col + 32` to rows `rows` of the output.
///
/// # Safety
/// AVX-512 F must be available; the caller owns that block, and the bias covers it.
#[target_feature(enable = "avx512f")]
unsafe fn add_bias(out: &OutPtr, rows: Range<usize>, col: usize) {
    let bias = out.bias_at(col);
    // SAFETY: the caller's bias covers 32 columns from `col`, and its rows are owned.
    unsafe {
        let (b0, b1) = (
            _mm512_loadu_si512(bias.cast()),
            _mm512_loadu_si512(bias.add(16).cast()),
        );
        for r in rows {
            let c = out.at(r, col);
            _mm512_storeu_si512(c.cast(), _mm512_add_epi32(_mm512_loadu_si512(c.cast()), b0));
            let c = c.add(16);
            _mm512_storeu_si512(c.cast(), _mm512_add_epi32(_mm512_loadu_si512(c.cast()), b1));
        }
    }
}

/// Whether this process may run AMX-INT8: the CPU has AMX-TILE and AMX-INT8, the OS saves
/// the tile state (XCR0 bits 17, 18), and Linux granted this process the tile data
/// (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, asked once).
pub(crate) fn available() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        let cpu = raw_cpuid::CpuId::new()
            .get_extended_feature_info()
            .is_some_and(|f| f.has_amx_tile() && f.has_amx_int8());
        if !cpu || !std::arch::is_x86_feature_detected!("xsave") {
            return false;
        }
        // SAFETY: XSAVE (and so `xgetbv`) is available (checked above).
        let xcr0 = unsafe { xcr0() };
        xcr0 & (0b11 << 17) == 0b11 << 17 && request_tile_data()
    })
}

/// XCR0.
///
/// # Safety
/// XSAVE must be available.
#[target_feature(enable = "xsave")]
unsafe fn xcr0() -> u64 {
    // SAFETY: forwarded from the caller.
    unsafe { _xgetbv(0) }
}

/// Asks Linux for the tile data state (`arch_prctl(ARCH_REQ_XCOMP_PERM = 0x1023,
/// XFEATURE_XTILEDATA = 18)`); `false` where it refuses or is not Linux.
fn request_tile_data() -> bool {
    #[cfg(target_os = "linux")]
    {
        let ret: i64;
        // SAFETY: the `arch_prctl` system call (158) only changes this process's permitted
        // XSAVE features; `rcx` and `r11` are clobbered by `syscall`.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") 158i64 => ret,
                in("rdi") 0x1023i64,
                in("rsi") 18i64,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packed::{CodebookWeights, PackedWeights};
    use crate::KernelPath;

    /// The tile operations by their definition.
    struct Emulated {
        tiles: [[u8; TILE_ROWS * TILE_COLSB]; 8],
        configured: bool,
        /// `tdpbusd`s run.
        dots: usize,
    }

    impl Emulated {
        fn new() -> Emulated {
            Emulated {
                tiles: [[0; TILE_ROWS * TILE_COLSB]; 8],
                configured: false,
                dots: 0,
            }
        }
    }

    impl TileUnit for Emulated {
        fn config(&mut self) {
            self.configured = true;
            self.tiles = [[0; TILE_ROWS * TILE_COLSB]; 8];
        }
        fn zero(&mut self, t: usize) {
            assert!(self.configured);
            self.tiles[t] = [0; TILE_ROWS * TILE_COLSB];
        }
        unsafe fn load(&mut self, t: usize, src: *const u8, stride: usize) {
            assert!(self.configured);
            for r in 0..TILE_ROWS {
                // SAFETY: the caller's rows are readable.
                let row = unsafe { std::slice::from_raw_parts(src.add(r * stride), TILE_COLSB) };
                self.tiles[t][r * TILE_COLSB..][..TILE_COLSB].copy_from_slice(row);
            }
        }
        fn dot(&mut self, c: usize, a: usize, b: usize) {
            assert!(self.configured);
            self.dots += 1;
            let (ta, tb) = (self.tiles[a], self.tiles[b]);
            for m in 0..TILE_ROWS {
                for n in 0..16 {
                    let at = m * TILE_COLSB + 4 * n;
                    let mut acc = i32::from_le_bytes(self.tiles[c][at..at + 4].try_into().unwrap());
                    for g in 0..16 {
                        for i in 0..4 {
                            let x = i32::from(ta[m * TILE_COLSB + 4 * g + i]);
                            let w = i32::from(tb[g * TILE_COLSB + 4 * n + i] as i8);
                            acc = acc.wrapping_add(x * w);
                        }
                    }
                    self.tiles[c][at..at + 4].copy_from_slice(&acc.to_le_bytes());
                }
            }
        }
        unsafe fn store(&mut self, t: usize, dst: *mut u8, stride: usize) {
            assert!(self.configured);
            for r in 0..TILE_ROWS {
                // SAFETY: the caller's rows are writable.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        self.tiles[t][r * TILE_COLSB..].as_ptr(),
                        dst.add(r * stride),
                        TILE_COLSB,
                    )
                };
            }
        }
        fn release(&mut self) {
            self.configured = false;
        }
    }

    /// The driver on emulated tiles equals the scalar path, for int8 and 2/3/4-bit weights
    /// (a codebook whose level 0 is not zero), row counts around whole blocks, reductions
    /// around whole tiles and groups (and short ones the AVX-512 kernel takes), activation
    /// bytes past `k` that are not zero, a partial last panel, and a bias.
    #[test]
    fn emulated_driver_matches_scalar() {
        if !KernelPath::Avx512Vnni.is_available() {
            eprintln!("skipped: the fallback needs AVX-512 VNNI + VBMI");
            return;
        }
        let mut rng = nuq_core::Rng::new(5);
        let mut r = || rng.next_u64() as u8;
        for &(m, n, k) in &[
            (32, 32, 64),
            (64, 64, 576),
            (45, 64, 100),
            (31, 32, 128),
            (96, 40, 200),
            (70, 96, 36),
            (33, 32, 4),
            (64, 32, 99),
            (40, 64, 45),
            (32, 96, 201),
        ] {
            let lda = k + 3;
            let a: Vec<u8> = (0..m * lda).map(|_| r()).collect();
            let w: Vec<i8> = (0..n * k).map(|_| r() as i8).collect();
            let idx: Vec<u8> = (0..n * k).map(|_| r()).collect();
            let book: Vec<i8> = (0..16).map(|i| (i * 17 - 121) as i8).collect();
            let codebook = |bits: u8| {
                let idx: Vec<u8> = idx.iter().map(|&v| v % (1 << bits)).collect();
                let book = &book[..1 << bits];
                Weights::Codebook(CodebookWeights::pack(&idx, n, k, bits, book).unwrap())
            };
            let bias: Vec<i32> = (0..n).map(|j| j as i32 * 7 - 100).collect();
            for weights in [
                Weights::Int8(PackedWeights::from_rows(&w, n, k).unwrap()),
                codebook(4),
                codebook(3),
                codebook(2),
            ] {
                for with_bias in [false, true] {
                    let p = Problem {
                        a: &a,
                        lda,
                        k_read: k,
                        m,
                        w: &weights,
                        rows_at: None,
                        seg_groups: usize::MAX,
                        seg_skip: 0,
                        live: super::super::Live::ALL,
                    };
                    let mut want = vec![0i32; m * n];
                    let reference = OutPtr::over(&mut want, n, 0, None);
                    super::super::tile(
                        KernelPath::Scalar,
                        &p,
                        0..m,
                        0..n.div_ceil(PANEL),
                        &reference,
                    );
                    if with_bias {
                        for (i, v) in want.iter_mut().enumerate() {
                            *v = v.wrapping_add(bias[i % n]);
                        }
                    }
                    let mut got = vec![0i32; m * n];
                    let b = with_bias.then_some(bias.as_slice());
                    let o = OutPtr::over(&mut got, n, 0, b);
                    let mut u = Emulated::new();
                    // SAFETY: AVX-512 VNNI + VBMI available (checked); the problem is valid
                    // and `got` holds every row × column.
                    unsafe { tile_with(&mut u, &p, 0..m, 0..n.div_ceil(PANEL), &o) };
                    assert_eq!(got, want, "m={m} n={n} k={k} bias={with_bias}");
                    // A block from panel 1 on (the fused convolution's column tiles), rows
                    // from 1 on, into a buffer whose column 0 is the problem's column 32.
                    if n > PANEL {
                        let w2 = n - PANEL;
                        let mut got = vec![0i32; m * w2];
                        let o = OutPtr::over(&mut got, w2, PANEL, b);
                        // SAFETY: as above; `got` holds rows `0..m` of the block's columns.
                        unsafe { tile_with(&mut u, &p, 1..m, 1..n.div_ceil(PANEL), &o) };
                        for r in 1..m {
                            assert_eq!(
                                got[r * w2..(r + 1) * w2],
                                want[r * n + PANEL..(r + 1) * n],
                                "block: m={m} n={n} k={k} row {r}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Gathered rows (a padded 3×3 convolution's implicit im2col) on emulated tiles equal
    /// the definition: 16-pixel runs of an output row load as tiles, halves that cross an
    /// output row (an 8-pixel-wide output, blocks from row 8 of a 32-wide one) and pieces that are not
    /// whole tiles run on the AVX-512 kernel; int8 and 4-bit weights, bias, strides 1 and 2.
    #[test]
    fn emulated_gathered_rows_match_the_definition() {
        if !KernelPath::Avx512Vnni.is_available() {
            eprintln!("skipped: the fallback needs AVX-512 VNNI + VBMI");
            return;
        }
        let mut rng = nuq_core::Rng::new(9);
        let mut r = || rng.next_u64() as u8;
        // (channels, output width = height, stride, images, first row, n, tiles expected)
        for &(c, ow, stride, images, first, n, tiled) in &[
            (64, 16, 1, 2, 0, 64, true),
            (64, 32, 1, 1, 0, 32, true),
            (128, 16, 2, 1, 0, 40, true),
            (64, 32, 1, 1, 16, 32, true),
            (64, 32, 1, 1, 8, 32, false),
            (64, 8, 1, 2, 0, 32, false),
            // 24-wide: blocks alternate between crossing a row and not.
            (64, 24, 1, 1, 0, 32, true),
            (20, 16, 1, 1, 0, 32, false),
        ] {
            let (h, pad) = (ow * stride, 1);
            let (hp, wp) = (h + 2 * pad, h + 2 * pad);
            let a: Vec<u8> = (0..images * hp * wp * c).map(|_| r()).collect();
            let (piece_len, pitch) = (3 * c, wp * c);
            let k = 3 * piece_len;
            let mut at = Vec::new();
            for b in 0..images {
                for oy in 0..ow {
                    for ox in 0..ow {
                        at.push(((b * hp + oy * stride) * wp + ox * stride) * c);
                    }
                }
            }
            let m = at.len();
            let w: Vec<i8> = (0..n * k).map(|_| r() as i8).collect();
            let idx: Vec<u8> = (0..n * k).map(|_| r() % 16).collect();
            let book: Vec<i8> = (0..16).map(|i| (i * 17 - 121) as i8).collect();
            let bias: Vec<i32> = (0..n).map(|j| j as i32 * 5 - 77).collect();
            for (weights, levels) in [
                (
                    Weights::Int8(PackedWeights::from_rows(&w, n, k).unwrap()),
                    w.clone(),
                ),
                (
                    Weights::Codebook(CodebookWeights::pack(&idx, n, k, 4, &book).unwrap()),
                    idx.iter().map(|&i| book[usize::from(i)]).collect(),
                ),
            ] {
                let p = Problem {
                    a: &a,
                    lda: 0,
                    k_read: k,
                    m,
                    w: &weights,
                    rows_at: Some(&at),
                    seg_groups: piece_len / 4,
                    seg_skip: pitch - piece_len,
                    live: super::super::Live::ALL,
                };
                let rows = first..m;
                let mut got = vec![0i32; m * n];
                let o = OutPtr::over(&mut got, n, 0, Some(&bias));
                let mut u = Emulated::new();
                // SAFETY: AVX-512 VNNI + VBMI available (checked); every row's pieces lie
                // inside `a`; `got` holds every row × column.
                unsafe { tile_with(&mut u, &p, rows.clone(), 0..n.div_ceil(PANEL), &o) };
                assert_eq!(u.dots > 0, tiled, "c={c} ow={ow} first={first}: tiles ran");
                for row in rows {
                    for j in 0..n {
                        let mut want = bias[j];
                        for piece in 0..3 {
                            for t in 0..piece_len {
                                let x = i32::from(a[at[row] + piece * pitch + t]);
                                want += x * i32::from(levels[j * k + piece * piece_len + t]);
                            }
                        }
                        assert_eq!(
                            got[row * n + j],
                            want,
                            "c={c} ow={ow} stride={stride} first={first} row {row} col {j}"
                        );
                    }
                }
            }
        }
    }
}
