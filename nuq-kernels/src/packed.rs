//! Pre-packed weight panels: int8 levels ([`PackedWeights`]) and packed codebook indices
//! ([`CodebookWeights`]).
//!
//! # Logical weights
//! A layer's weights are a matrix `W[n][k]`: `n` output channels, `k` reduction positions.
//! For a convolution with OHWI weights, row `n` is the flattened `(ky, kx, ci)` filter, which
//! is exactly the column order of an im2col matrix whose taps run `(ky, kx, ci)`.
//!
//! # Int8 panel layout ([`PackedWeights`])
//! `k` is padded with zeros to `kp = round_up(k, 4)` and `n` to a multiple of [`PANEL`] = 32.
//! Panel `p` holds output channels `32p .. 32p + 32`; inside it, reduction group
//! `g = kk / 4` occupies 128 consecutive bytes, and the byte for channel `32p + j`, position
//! `kk` sits at
//!
//! ```text
//! offset(ch, kk) = p·32·kp + g·128 + j·4 + kk % 4        (p = ch / 32, j = ch % 32)
//! ```
//!
//! so one 64-byte load is the `vpdpbusd` operand for 16 channels × 4 positions (bytes 0..64:
//! channels `32p .. 32p+16`, bytes 64..128: channels `32p+16 .. 32p+32`). The buffer is
//! 64-byte aligned.
//!
//! # Packed index layouts ([`CodebookWeights`])
//! Indices address the tensor's int8 codebook of `2^bits` levels. Padding positions (`kk ≥ k` or
//! `ch ≥ n`) hold index 0 and are never multiplied by a non-zero activation or stored. Within a
//! panel, "lane byte" `b ∈ 0..64` of half `h ∈ {0, 1}` at group `g` means channel `32p + 16h +
//! b/4`, position `4g + b%4` (the byte the decoded value occupies in the int8 layout above). Bits
//! are filled least-significant first.
//!
//! * **4-bit** (`kp = round_up(k, 4)`): per panel, per group `g`, 64 bytes; byte `b` holds
//!   half 0's index in its low nibble and half 1's in its high nibble. One `vpermb` on the
//!   byte and one on the byte shifted right by 4 decode both halves (a 64-byte table that
//!   repeats the 16 levels four times makes the stray upper index bits irrelevant).
//! * **2-bit** (`kp = round_up(k, 8)`): per panel, per group pair `(2q, 2q+1)`, 64 bytes;
//!   byte `b` holds four indices, bits `2r .. 2r+2` for `r = 2·(g − 2q) + h`.
//! * **3-bit** (`kp = round_up(k, 8)`): per panel, per group pair, 96 bytes: the 2-bit
//!   layout of `index & 3` (64 bytes) followed by a 32-byte bit plane of `index >> 2`,
//!   element `e = 4b + r` at byte `e / 8`, bit `e % 8`.

use crate::error::{check_eq, check_len};
use crate::KernelError;
use std::ops::Range;

/// Output channels per weight panel.
pub const PANEL: usize = 32;

/// One cache line; gives the packed buffers 64-byte alignment.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
pub(crate) struct Line([u8; 64]);

fn zeroed_lines(bytes: usize) -> Vec<Line> {
    vec![Line([0; 64]); bytes.div_ceil(64)]
}

pub(crate) fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

/// Int8 weight levels pre-packed into the panel layout described in the [module docs](self).
#[derive(Clone)]
pub struct PackedWeights {
    n: usize,
    k: usize,
    kp: usize,
    data: Vec<Line>,
    max_abs: u32,
}

impl std::fmt::Debug for PackedWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedWeights")
            .field("n", &self.n)
            .field("k", &self.k)
            .field("max_abs", &self.max_abs)
            .finish()
    }
}

impl PackedWeights {
    /// Packs row-major weights `w[n][k]` (row = output channel).
    ///
    /// # Errors
    /// [`KernelError::SliceTooShort`] when `w.len() < n·k`;
    /// [`KernelError::Unsupported`] when `n` or `k` is zero.
    pub fn from_rows(w: &[i8], n: usize, k: usize) -> Result<Self, KernelError> {
        check_dims(n, k)?;
        check_len("weights", n * k, w.len())?;
        let kp = round_up(k, 4);
        let panels = n.div_ceil(PANEL);
        let mut data = zeroed_lines(panels * PANEL * kp);
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut data);
        let mut max_abs = 0u32;
        for ch in 0..n {
            for (kk, &v) in w[ch * k..ch * k + k].iter().enumerate() {
                bytes[int8_offset(ch, kk, kp)] = v as u8;
                max_abs = max_abs.max(u32::from(v.unsigned_abs()));
            }
        }
        Ok(PackedWeights {
            n,
            k,
            kp,
            data,
            max_abs,
        })
    }

    /// Output channels.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Reduction length.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Padded reduction length (`round_up(k, 4)`).
    pub fn k_padded(&self) -> usize {
        self.kp
    }

    /// Largest `|w|` over the tensor.
    pub fn max_abs(&self) -> u32 {
        self.max_abs
    }

    /// The weight of output channel `ch` at reduction position `kk`.
    ///
    /// # Panics
    /// When `ch ≥ n` or `kk ≥ k`.
    pub fn weight(&self, ch: usize, kk: usize) -> i8 {
        assert!(ch < self.n && kk < self.k, "weight index out of range");
        self.bytes()[int8_offset(ch, kk, self.kp)] as i8
    }

    /// The packed bytes (panel layout).
    pub fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.data)
    }

    /// Bytes of one panel (`32 · kp`).
    pub(crate) fn panel_bytes(&self, panel: usize) -> &[u8] {
        let len = PANEL * self.kp;
        &self.bytes()[panel * len..(panel + 1) * len]
    }
}

fn check_dims(n: usize, k: usize) -> Result<(), KernelError> {
    if n == 0 {
        return Err(KernelError::Unsupported {
            what: "n",
            value: 0,
            allowed: "at least one output channel",
        });
    }
    if k == 0 {
        return Err(KernelError::Unsupported {
            what: "k",
            value: 0,
            allowed: "a reduction length of at least 1",
        });
    }
    Ok(())
}

/// Byte offset of `(ch, kk)` in the int8 panel layout.
pub(crate) fn int8_offset(ch: usize, kk: usize, kp: usize) -> usize {
    (ch / PANEL) * PANEL * kp + (kk / 4) * 128 + (ch % PANEL) * 4 + kk % 4
}

/// Weights stored as packed 2-, 3- or 4-bit codebook indices plus the tensor's int8
/// codebook, in the layouts described in the [module docs](self).
#[derive(Clone)]
pub struct CodebookWeights {
    n: usize,
    k: usize,
    kp: usize,
    bits: u8,
    codebook: Vec<i8>,
    lut64: [u8; 64],
    data: Vec<Line>,
    panel_stride: usize,
    max_abs: u32,
    /// The same weights as int8 levels (a [`Weights::Int8`]), made on first use by a kernel
    /// that multiplies int8 weights: [`CodebookWeights::int8_weights`].
    int8: std::sync::OnceLock<Box<Weights>>,
}

impl std::fmt::Debug for CodebookWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodebookWeights")
            .field("n", &self.n)
            .field("k", &self.k)
            .field("bits", &self.bits)
            .finish()
    }
}

impl CodebookWeights {
    /// Packs row-major indices `indices[n][k]` (each `< 2^bits`) with their codebook of
    /// `2^bits` levels.
    ///
    /// # Errors
    /// [`KernelError::Unsupported`] for `bits ∉ {2, 3, 4}` or a zero dimension,
    /// [`KernelError::ShapeMismatch`] for a codebook of the wrong length,
    /// [`KernelError::SliceTooShort`] for too few indices,
    /// [`KernelError::IndexOutOfRange`] for an index `≥ 2^bits`.
    pub fn pack(
        indices: &[u8],
        n: usize,
        k: usize,
        bits: u8,
        codebook: &[i8],
    ) -> Result<Self, KernelError> {
        check_dims(n, k)?;
        if !(2..=4).contains(&bits) {
            return Err(KernelError::Unsupported {
                what: "bits",
                value: i64::from(bits),
                allowed: "2, 3 or 4",
            });
        }
        let levels = 1usize << bits;
        check_eq("codebook length", levels, codebook.len())?;
        check_len("indices", n * k, indices.len())?;
        let kp = if bits == 4 {
            round_up(k, 4)
        } else {
            round_up(k, 8)
        };
        let panel_stride = kp * PANEL * usize::from(bits) / 8;
        let panels = n.div_ceil(PANEL);
        let mut data = zeroed_lines(panels * panel_stride);
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut data);
        for ch in 0..n {
            for kk in 0..k {
                let idx = indices[ch * k + kk];
                if usize::from(idx) >= levels {
                    return Err(KernelError::IndexOutOfRange {
                        channel: ch,
                        k: kk,
                        index: idx,
                        bits,
                    });
                }
                store_index(bytes, panel_stride, bits, ch, kk, idx);
            }
        }
        let max_abs = codebook
            .iter()
            .map(|v| u32::from(v.unsigned_abs()))
            .max()
            .unwrap_or(0);
        let mut lut64 = [0u8; 64];
        for (i, slot) in lut64.iter_mut().enumerate() {
            *slot = codebook[i % levels] as u8;
        }
        Ok(CodebookWeights {
            n,
            k,
            kp,
            bits,
            codebook: codebook.to_vec(),
            lut64,
            data,
            panel_stride,
            max_abs,
            int8: std::sync::OnceLock::new(),
        })
    }

    /// Output channels.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Reduction length.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Padded reduction length (`round_up(k, 4)` for 4-bit, `round_up(k, 8)` otherwise).
    pub fn k_padded(&self) -> usize {
        self.kp
    }

    /// Index width in bits.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Largest `|level|` of the codebook.
    pub fn max_abs(&self) -> u32 {
        self.max_abs
    }

    /// The packed bytes.
    pub fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.data)
    }

    /// The stored index of output channel `ch` at position `kk`.
    ///
    /// # Panics
    /// When `ch ≥ n` or `kk ≥ k`.
    pub fn index(&self, ch: usize, kk: usize) -> u8 {
        assert!(ch < self.n && kk < self.k, "index out of range");
        load_index(self.bytes(), self.panel_stride, self.bits, ch, kk)
    }

    /// The int8 level of output channel `ch` at position `kk`.
    ///
    /// # Panics
    /// When `ch ≥ n` or `kk ≥ k`.
    pub fn level(&self, ch: usize, kk: usize) -> i8 {
        self.codebook[usize::from(self.index(ch, kk))]
    }

    /// The codebook repeated to fill 64 bytes (`vpermb` table).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn lut64(&self) -> &[u8; 64] {
        &self.lut64
    }

    /// Packed bytes of one panel.
    pub(crate) fn panel_bytes(&self, panel: usize) -> &[u8] {
        &self.bytes()[panel * self.panel_stride..(panel + 1) * self.panel_stride]
    }

    /// The same weights as int8 levels ([`PackedWeights`]: its panel layout, zero at every
    /// padding position and channel), made on the first call and kept (twice the 4-bit
    /// bytes), for a kernel that multiplies int8 weights only (AMX tiles, the AVX-VNNI
    /// path).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn int8(&self) -> &PackedWeights {
        match self.int8_weights() {
            Weights::Int8(w) => w,
            Weights::Codebook(_) => unreachable!("the copy is made as int8"),
        }
    }

    /// Whether the int8 copy has been made.
    #[cfg(test)]
    pub(crate) fn has_int8_copy(&self) -> bool {
        self.int8.get().is_some()
    }

    /// [`CodebookWeights::int8`] as [`Weights`], for a GEMM problem over the copy.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn int8_weights(&self) -> &Weights {
        self.int8.get_or_init(|| {
            let levels: Vec<i8> = (0..self.n)
                .flat_map(|ch| (0..self.k).map(move |kk| self.level(ch, kk)))
                .collect();
            let w = PackedWeights::from_rows(&levels, self.n, self.k);
            Box::new(Weights::Int8(w.expect("the codebook's own shape")))
        })
    }

    /// Decodes panel `panel` into the int8 panel layout (`32 · kp` bytes of `out`);
    /// padding channels decode to 0.
    pub(crate) fn decode_panel(&self, panel: usize, out: &mut [u8]) {
        let src = self.panel_bytes(panel);
        let groups = self.kp / 4;
        // The level of index `idx` in channel `j` of the panel.
        let t = |j: usize, idx: usize| -> u8 {
            if panel * PANEL + j < self.n {
                self.codebook[idx] as u8
            } else {
                0
            }
        };
        if self.bits == 4 {
            // One packed byte holds lane `b` of both halves.
            for (packed, dst) in src
                .chunks_exact(64)
                .zip(out.chunks_exact_mut(128))
                .take(groups)
            {
                let (d0, d1) = dst.split_at_mut(64);
                for (b, &byte) in packed.iter().enumerate() {
                    let j = b / 4;
                    d0[b] = t(j, usize::from(byte & 15));
                    d1[b] = t(16 + j, usize::from(byte >> 4));
                }
            }
            return;
        }
        // 2- and 3-bit: one 64-byte (+ 32-byte bit plane) block per group pair; element
        // `r` of lane byte `b` is group `2q + r / 2`, half `r % 2`.
        let block = if self.bits == 2 { 64 } else { 96 };
        for (q, packed) in src.chunks_exact(block).enumerate().take(groups.div_ceil(2)) {
            for b in 0..64 {
                let byte = packed[b];
                let hi_bits = if self.bits == 3 {
                    packed[64 + b / 2] >> (4 * (b % 2))
                } else {
                    0
                };
                for r in 0..4 {
                    let g = 2 * q + r / 2;
                    if g >= groups {
                        break;
                    }
                    let h = r % 2;
                    let idx =
                        usize::from((byte >> (2 * r)) & 3) | usize::from((hi_bits >> r) & 1) << 2;
                    out[g * 128 + h * 64 + b] = t(16 * h + b / 4, idx);
                }
            }
        }
    }
}

/// A layer's weights `W[n][k]`, packed once for the GEMM.
#[derive(Debug, Clone)]
pub enum Weights {
    /// Int8 levels (1-bit and 5- to 8-bit codebooks, decoded when packed).
    Int8(PackedWeights),
    /// 2-, 3- or 4-bit indices and their codebook, decoded inside the GEMM.
    Codebook(CodebookWeights),
}

impl Weights {
    /// Bytes the packed weights take (what a pass over all of them reads).
    pub(crate) fn stored_bytes(&self) -> usize {
        match self {
            Weights::Int8(w) => w.bytes().len(),
            Weights::Codebook(w) => w.bytes().len(),
        }
    }

    /// Packs row-major indices `indices[n][k]` (for a convolution `k` runs over
    /// `(ky, kx, c_in)`) into the codebook `levels` (at most `2^bits` int8 levels): packed
    /// indices for 2–4 bits, int8 levels otherwise.
    ///
    /// # Errors
    /// [`KernelError::Unsupported`] for `bits ∉ 1..=8`, a zero dimension or more than
    /// `2^bits` levels; [`KernelError::SliceTooShort`] for too few indices;
    /// [`KernelError::IndexOutOfRange`] for an index without a level.
    pub fn pack(
        indices: &[u8],
        n: usize,
        k: usize,
        bits: u8,
        levels: &[i8],
    ) -> Result<Weights, KernelError> {
        if !(1..=8).contains(&bits) || levels.len() > 1 << bits {
            return Err(KernelError::Unsupported {
                what: "weight codebook (bits, levels)",
                value: i64::from(bits),
                allowed: "1 ..= 8 bits with at most 2^bits levels",
            });
        }
        let indices = indices.get(..n * k).ok_or(KernelError::SliceTooShort {
            what: "weight indices",
            expected: n * k,
            found: indices.len(),
        })?;
        if let Some(p) = indices.iter().position(|&i| usize::from(i) >= levels.len()) {
            return Err(KernelError::IndexOutOfRange {
                channel: p / k,
                k: p % k,
                index: indices[p],
                bits,
            });
        }
        if (2..=4).contains(&bits) {
            // The GEMM takes exactly 2^bits levels: unused indices repeat the last level.
            let mut book = levels.to_vec();
            book.resize(1 << bits, *levels.last().unwrap_or(&0));
            CodebookWeights::pack(indices, n, k, bits, &book).map(Weights::Codebook)
        } else {
            let decoded: Vec<i8> = indices.iter().map(|&i| levels[usize::from(i)]).collect();
            PackedWeights::from_rows(&decoded, n, k).map(Weights::Int8)
        }
    }

    /// Output channels (`n`).
    pub fn n(&self) -> usize {
        match self {
            Weights::Int8(w) => w.n(),
            Weights::Codebook(w) => w.n(),
        }
    }

    /// Reduction length (`k`).
    pub fn k(&self) -> usize {
        match self {
            Weights::Int8(w) => w.k(),
            Weights::Codebook(w) => w.k(),
        }
    }

    /// Padded reduction length.
    pub fn k_padded(&self) -> usize {
        match self {
            Weights::Int8(w) => w.k_padded(),
            Weights::Codebook(w) => w.k_padded(),
        }
    }

    /// Largest `|weight level|`.
    pub fn max_abs(&self) -> u32 {
        match self {
            Weights::Int8(w) => w.max_abs(),
            Weights::Codebook(w) => w.max_abs(),
        }
    }

    /// The level of output channel `ch` at position `kk`.
    ///
    /// # Panics
    /// When `ch ≥ n` or `kk ≥ k`.
    pub fn level(&self, ch: usize, kk: usize) -> i8 {
        match self {
            Weights::Int8(w) => w.weight(ch, kk),
            Weights::Codebook(w) => w.level(ch, kk),
        }
    }

    /// Output channels `rows` (within `0 .. n`) as weights of their own, stored the same
    /// way (a grouped convolution's group).
    ///
    /// # Errors
    /// [`KernelError::Unsupported`] for an empty range; [`KernelError::SliceTooShort`] for
    /// a range past `n`.
    pub(crate) fn select_rows(&self, rows: Range<usize>) -> Result<Weights, KernelError> {
        let (n, k) = (rows.len(), self.k());
        check_len("weight rows", rows.end, self.n())?;
        match self {
            Weights::Int8(w) => {
                let v: Vec<i8> = rows
                    .flat_map(|ch| (0..k).map(move |kk| w.weight(ch, kk)))
                    .collect();
                PackedWeights::from_rows(&v, n, k).map(Weights::Int8)
            }
            Weights::Codebook(w) => {
                let v: Vec<u8> = rows
                    .flat_map(|ch| (0..k).map(move |kk| w.index(ch, kk)))
                    .collect();
                CodebookWeights::pack(&v, n, k, w.bits, &w.codebook).map(Weights::Codebook)
            }
        }
    }
}

/// Position of `(j, kk)` inside a panel as `(g, half, lane byte b)`.
fn lane(j: usize, kk: usize) -> (usize, usize, usize) {
    (kk / 4, j / 16, (j % 16) * 4 + kk % 4)
}

fn store_index(bytes: &mut [u8], panel_stride: usize, bits: u8, ch: usize, kk: usize, idx: u8) {
    let base = (ch / PANEL) * panel_stride;
    let (g, h, b) = lane(ch % PANEL, kk);
    match bits {
        4 => bytes[base + g * 64 + b] |= idx << (4 * h),
        2 => {
            let r = 2 * (g % 2) + h;
            bytes[base + (g / 2) * 64 + b] |= idx << (2 * r);
        }
        _ => {
            let r = 2 * (g % 2) + h;
            let blk = base + (g / 2) * 96;
            bytes[blk + b] |= (idx & 3) << (2 * r);
            let e = 4 * b + r;
            bytes[blk + 64 + e / 8] |= ((idx >> 2) & 1) << (e % 8);
        }
    }
}

fn load_index(bytes: &[u8], panel_stride: usize, bits: u8, ch: usize, kk: usize) -> u8 {
    let base = (ch / PANEL) * panel_stride;
    load_index_in_panel(&bytes[base..base + panel_stride], bits, ch % PANEL, kk)
}

fn load_index_in_panel(panel: &[u8], bits: u8, j: usize, kk: usize) -> u8 {
    let (g, h, b) = lane(j, kk);
    match bits {
        4 => (panel[g * 64 + b] >> (4 * h)) & 0xF,
        2 => {
            let r = 2 * (g % 2) + h;
            (panel[(g / 2) * 64 + b] >> (2 * r)) & 3
        }
        _ => {
            let r = 2 * (g % 2) + h;
            let blk = (g / 2) * 96;
            let e = 4 * b + r;
            let lo = (panel[blk + b] >> (2 * r)) & 3;
            let hi = (panel[blk + 64 + e / 8] >> (e % 8)) & 1;
            lo | (hi << 2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The kept int8 copy of codebook weights is the int8 panel layout of their levels,
        /// zero at every padding position and channel.
        #[test]
        fn int8_copy_is_the_levels_zero_padded(
            n in 1usize..70,
            k in 1usize..40,
            bits in 2u8..=4,
            seed in any::<u64>(),
        ) {
            let mut rng = nuq_core::Rng::new(seed);
            let idx: Vec<u8> = (0..n * k).map(|_| rng.below(1 << bits) as u8).collect();
            let book: Vec<i8> = (0..1i32 << bits).map(|i| (i * 29 - 100) as i8).collect();
            let w = CodebookWeights::pack(&idx, n, k, bits, &book).unwrap();
            let kp = w.int8().k_padded();
            let bytes = w.int8().bytes();
            prop_assert_eq!(bytes.len(), n.div_ceil(PANEL) * PANEL * kp);
            for ch in 0..n.div_ceil(PANEL) * PANEL {
                for kk in 0..kp {
                    let (p, j) = (ch / PANEL, ch % PANEL);
                    let at = p * PANEL * kp + kk / 4 * 128 + j * 4 + kk % 4;
                    let want = if ch < n && kk < k { w.level(ch, kk) } else { 0 };
                    prop_assert_eq!(bytes[at] as i8, want, "ch {} kk {}", ch, kk);
                }
            }
        }
    }

    #[test]
    fn int8_round_trip() {
        let (n, k) = (37, 11);
        let w: Vec<i8> = (0..n * k)
            .map(|i| (i as i32 * 37 % 255 - 127) as i8)
            .collect();
        let p = PackedWeights::from_rows(&w, n, k).unwrap();
        for ch in 0..n {
            for kk in 0..k {
                assert_eq!(p.weight(ch, kk), w[ch * k + kk]);
            }
        }
        assert_eq!(p.bytes().as_ptr() as usize % 64, 0);
        assert_eq!(p.k_padded(), 12);
    }

    #[test]
    fn codebook_round_trip_all_widths() {
        for bits in [2u8, 3, 4] {
            let (n, k) = (45, 13);
            let levels = 1usize << bits;
            let idx: Vec<u8> = (0..n * k)
                .map(|i| ((i * 7 + i / 5) % levels) as u8)
                .collect();
            let cb: Vec<i8> = (0..levels)
                .map(|i| (i as i32 * 29 % 256 - 128) as i8)
                .collect();
            let w = CodebookWeights::pack(&idx, n, k, bits, &cb).unwrap();
            let mut dec = vec![0u8; PANEL * w.k_padded()];
            for ch in 0..n {
                for kk in 0..k {
                    assert_eq!(
                        w.index(ch, kk),
                        idx[ch * k + kk],
                        "bits {bits} ch {ch} kk {kk}"
                    );
                }
            }
            for p in 0..n.div_ceil(PANEL) {
                w.decode_panel(p, &mut dec);
                for j in 0..PANEL {
                    let ch = p * PANEL + j;
                    for kk in 0..k {
                        let want = if ch < n { w.level(ch, kk) } else { 0 };
                        assert_eq!(dec[int8_offset(j, kk, w.k_padded())] as i8, want);
                    }
                }
            }
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            CodebookWeights::pack(&[16], 1, 1, 4, &[0; 16]),
            Err(KernelError::IndexOutOfRange { index: 16, .. })
        ));
        assert!(matches!(
            CodebookWeights::pack(&[0], 1, 1, 5, &[0; 32]),
            Err(KernelError::Unsupported { what: "bits", .. })
        ));
        assert!(matches!(
            CodebookWeights::pack(&[0], 1, 1, 2, &[0; 5]),
            Err(KernelError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            PackedWeights::from_rows(&[0; 3], 2, 2),
            Err(KernelError::SliceTooShort { .. })
        ));
    }
}
