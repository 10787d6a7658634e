//! [`Quantizer`]: a codebook bound to one scale, with the fast encode/decode loops that
//! [`QuantizedTensor`](crate::QuantizedTensor) runs.
//!
//! Encoding divides by the scale and counts the thresholds reached. For `b <= 4` it counts
//! against all `2^b - 1` padded thresholds branch-free (a fixed-length compare-and-add loop
//! the compiler vectorises across elements); wider codebooks read a per-grid-value table
//! (grids up to 4096 values) or use the branch-free binary search of [`Codebook::nearest`].
//! All give exactly `codebook.nearest(x / scale)`.

use alloc::vec::Vec;

use crate::codebook::{check_len, Codebook};
use crate::error::{Error, Result};
use crate::real::{f32_view, Real};
use crate::scale::Scale;

/// Elements processed per block: a multiple of 8, so every block starts on a byte boundary of
/// the packed stream at every index width.
pub(crate) const BLOCK: usize = 512;

/// Returns [`Error::NonFinite`] for the first NaN or infinite value; `offset` is added to the
/// reported index.
pub(crate) fn check_finite(xs: &[f32], offset: usize) -> Result<()> {
    // Branch-free scan first (vectorises); locate only on failure.
    let bad = xs.iter().fold(false, |acc, x| {
        acc | (x.to_bits() & 0x7F80_0000 == 0x7F80_0000)
    });
    if bad {
        let index = xs.iter().position(|x| !x.is_finite()).expect("a bad value");
        return Err(Error::NonFinite {
            index: offset + index,
            value: xs[index],
        });
    }
    Ok(())
}

/// A codebook bound to a scale: real values in, indices out, and back.
///
/// `quantize` gives `codebook.nearest(x / scale)` for every `x`; `dequantize` gives
/// `level as f32 * scale` (one rounding). Quantizing a dequantized value returns the same
/// index (the error of the two roundings is far below half a grid step).
///
/// ```
/// use nuq_core::{Codebook, Quantizer, Scale};
/// let cb = Codebook::iq4_nl();
/// let q = Quantizer::new(&cb, Scale::new(0.01)?);
/// let mut idx = [0u8; 3];
/// q.quantize(&[-1.3, 0.0, 0.4], &mut idx)?;
/// assert_eq!(idx, [0, 8, 11]);
/// let mut back = [0f32; 3];
/// q.dequantize(&idx, &mut back)?;
/// assert_eq!(back, [-1.27, 0.01, 0.38]);
/// # Ok::<(), nuq_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Quantizer<'a> {
    codebook: &'a Codebook,
    scale: f32,
    /// The thresholds padded with +inf to 15 entries (count path, `b <= 4`).
    count: [f32; 15],
    /// The doubled thresholds `2·t[i]` as `i16`, padded with `i16::MAX` (`b <= 4` on grids
    /// whose doubled range fits `i16`), and the clamp range of `2·x/scale`.
    doubled: Option<([i16; 15], f32, f32)>,
    /// `level * scale`, padded with the last value to 256 entries.
    lut: [f32; 256],
    /// Grid lookup for `b > 4` on grids of at most [`GRID_LUT_MAX`] values.
    grid_lut: Option<GridLut>,
}

impl<'a> Quantizer<'a> {
    /// Binds `codebook` to `scale`.
    ///
    /// ```
    /// let cb = nuq_core::Codebook::iq4_nl();
    /// let q = nuq_core::Quantizer::new(&cb, nuq_core::Scale::ONE);
    /// assert_eq!(q.scale().get(), 1.0);
    /// ```
    pub fn new(codebook: &'a Codebook, scale: Scale) -> Quantizer<'a> {
        let s = scale.get();
        let mut count = [f32::INFINITY; 15];
        if codebook.bits() <= 4 {
            let t = codebook.thresholds();
            count[..t.len()].copy_from_slice(t);
        }
        let grid = codebook.grid();
        let doubled = (codebook.bits() <= 4 && 2 * grid.max() + 2 < i16::MAX as i32).then(|| {
            let mut d = [i16::MAX; 15];
            for (d, t) in d.iter_mut().zip(codebook.doubled_thresholds()) {
                *d = t as i16;
            }
            (d, (2 * grid.min() - 2) as f32, (2 * grid.max() + 2) as f32)
        });
        let levels = codebook.levels();
        let last = *levels.last().expect("codebooks have a level") as f32 * s;
        let mut lut = [last; 256];
        for (l, &v) in lut.iter_mut().zip(levels) {
            *l = v as f32 * s;
        }
        let grid_lut = (codebook.bits() > 4 && codebook.grid().size() <= GRID_LUT_MAX)
            .then(|| GridLut::new(codebook));
        Quantizer {
            codebook,
            scale: s,
            count,
            doubled,
            lut,
            grid_lut,
        }
    }

    /// The codebook.
    ///
    /// ```
    /// let cb = nuq_core::Codebook::iq4_nl();
    /// let q = nuq_core::Quantizer::new(&cb, nuq_core::Scale::ONE);
    /// assert_eq!(q.codebook().len(), 16);
    /// ```
    pub fn codebook(&self) -> &'a Codebook {
        self.codebook
    }

    /// The scale.
    ///
    /// ```
    /// let cb = nuq_core::Codebook::iq4_nl();
    /// let s = nuq_core::Scale::new(0.5)?;
    /// assert_eq!(nuq_core::Quantizer::new(&cb, s).scale(), s);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn scale(&self) -> Scale {
        Scale::new(self.scale).expect("built from a valid scale")
    }

    /// Real values (any [`Real`] type) to indices, `out[i] = codebook.nearest(xs[i] / scale)`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`]; [`Error::NonFinite`] naming the first NaN or infinite
    /// value (nothing is guaranteed about `out` then).
    ///
    /// ```
    /// let cb = nuq_core::Codebook::iq4_nl();
    /// let q = nuq_core::Quantizer::new(&cb, nuq_core::Scale::ONE);
    /// let mut idx = [0u8; 2];
    /// assert!(q.quantize(&[0.0, f32::INFINITY], &mut idx).is_err());
    /// ```
    pub fn quantize<T: Real>(&self, xs: &[T], out: &mut [u8]) -> Result<()> {
        check_len(xs.len(), out.len())?;
        let mut buf = [0f32; BLOCK];
        for (k, (x, o)) in xs.chunks(BLOCK).zip(out.chunks_mut(BLOCK)).enumerate() {
            let x = f32_view(x, &mut buf);
            check_finite(x, k * BLOCK)?;
            self.encode_block(x, o);
        }
        Ok(())
    }

    /// Indices to real values (any [`Real`] type), `out[i] = level(idx[i]) as f32 * scale`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`]; [`Error::IndexOutOfRange`] naming the first index
    /// that addresses no level.
    ///
    /// ```
    /// let cb = nuq_core::Codebook::iq4_nl();
    /// let q = nuq_core::Quantizer::new(&cb, nuq_core::Scale::new(2.0)?);
    /// let mut out = [0f32; 2];
    /// q.dequantize(&[7, 8], &mut out)?;
    /// assert_eq!(out, [-20.0, 2.0]);
    /// assert!(q.dequantize(&[16, 0], &mut out).is_err());
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn dequantize<T: Real>(&self, indices: &[u8], out: &mut [T]) -> Result<()> {
        check_len(indices.len(), out.len())?;
        let n = self.codebook.len();
        if let Some(position) = indices.iter().position(|&i| i as usize >= n) {
            return Err(Error::IndexOutOfRange {
                position,
                index: indices[position],
                levels: n,
            });
        }
        match T::as_f32_mut(out) {
            Some(out) => self.decode_block(indices, out),
            None => {
                let mut buf = [0f32; BLOCK];
                for (i, o) in indices.chunks(BLOCK).zip(out.chunks_mut(BLOCK)) {
                    let b = &mut buf[..i.len()];
                    self.decode_block(i, b);
                    for (o, &v) in o.iter_mut().zip(b.iter()) {
                        *o = T::from_f32(v);
                    }
                }
            }
        }
        Ok(())
    }

    /// Quantize-dequantize in place ("fake quantization", as in quantization-aware
    /// training): every value becomes `scale × nearest level`.
    ///
    /// # Errors
    /// [`Error::NonFinite`] naming the first NaN or infinite value; values before it are
    /// already replaced, the rest untouched.
    ///
    /// ```
    /// let cb = nuq_core::Codebook::iq4_nl();
    /// let q = nuq_core::Quantizer::new(&cb, nuq_core::Scale::new(0.5)?);
    /// let mut v = [3.0f32, -70.0];
    /// q.fake_quantize(&mut v)?;
    /// assert_eq!(v, [0.5, -63.5]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn fake_quantize<T: Real>(&self, xs: &mut [T]) -> Result<()> {
        let mut idx = [0u8; BLOCK];
        for (k, x) in xs.chunks_mut(BLOCK).enumerate() {
            let idx = &mut idx[..x.len()];
            let mut buf = [0f32; BLOCK];
            let v = f32_view(x, &mut buf);
            check_finite(v, k * BLOCK)?;
            self.encode_block(v, idx);
            self.dequantize(idx, x)?;
        }
        Ok(())
    }

    /// Encodes finite values (not checked). With `std` on x86-64 the same code is compiled a
    /// second time for AVX2 and chosen at run time (the results are identical: the
    /// arithmetic is the same IEEE operations, only wider).
    #[inline]
    pub(crate) fn encode_block(&self, xs: &[f32], out: &mut [u8]) {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: `encode_block_avx2` only requires AVX2, which the CPU has (checked on
            // the line above).
            #[allow(unsafe_code)]
            unsafe {
                self.encode_block_avx2(xs, out)
            };
            return;
        }
        self.encode_block_generic::<LANES>(xs, out);
    }

    /// # Safety
    /// The CPU must support AVX2. (An `unsafe fn` rather than a safe `#[target_feature]`
    /// function, which needs Rust 1.86; the MSRV is 1.85.)
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    #[target_feature(enable = "avx2")]
    #[allow(unsafe_code)]
    unsafe fn encode_block_avx2(&self, xs: &[f32], out: &mut [u8]) {
        // Twice the lanes: four 8-lane registers of values and of counts.
        self.encode_block_generic::<32>(xs, out);
    }

    #[inline(always)]
    fn encode_block_generic<const L: usize>(&self, xs: &[f32], out: &mut [u8]) {
        let last = (self.codebook.len() - 1) as u8;
        if let Some((d, lo, hi)) = &self.doubled {
            let (s, lo, hi) = (self.scale, *lo, *hi);
            match self.codebook.bits() {
                1 => count_doubled::<1, L>(d[..1].try_into().unwrap(), s, lo, hi, xs, out),
                2 => count_doubled::<3, L>(d[..3].try_into().unwrap(), s, lo, hi, xs, out),
                3 => count_doubled::<7, L>(d[..7].try_into().unwrap(), s, lo, hi, xs, out),
                _ => count_doubled::<15, L>(d, s, lo, hi, xs, out),
            }
            return;
        }
        match self.codebook.bits() {
            1 => count_thresholds::<1, L>(
                self.count[..1].try_into().unwrap(),
                self.scale,
                last,
                xs,
                out,
            ),
            2 => count_thresholds::<3, L>(
                self.count[..3].try_into().unwrap(),
                self.scale,
                last,
                xs,
                out,
            ),
            3 => count_thresholds::<7, L>(
                self.count[..7].try_into().unwrap(),
                self.scale,
                last,
                xs,
                out,
            ),
            4 => count_thresholds::<15, L>(&self.count, self.scale, last, xs, out),
            _ => match &self.grid_lut {
                Some(g) => g.encode(self.scale, xs, out),
                None => {
                    for (o, &x) in out.iter_mut().zip(xs) {
                        *o = self.codebook.nearest(x / self.scale);
                    }
                }
            },
        }
    }

    /// For 4-bit indices: the two values a packed byte decodes to, low nibble first.
    pub(crate) fn pair_table(&self) -> [[f32; 2]; 256] {
        let mut t = [[0f32; 2]; 256];
        for (b, pair) in t.iter_mut().enumerate() {
            *pair = [self.lut[b & 0x0F], self.lut[b >> 4]];
        }
        t
    }

    /// Decodes valid indices (not checked).
    #[inline]
    pub(crate) fn decode_block(&self, indices: &[u8], out: &mut [f32]) {
        for (o, &i) in out.iter_mut().zip(indices) {
            *o = self.lut[i as usize];
        }
    }
}

/// `floor(w)` as `i32` for `|w| < 2^22`, using only float adds, a compare and a bit cast, so
/// that it vectorises (a plain `as i32` saturates, and LLVM scalarises the saturation).
///
/// Adding `1.5·2^23` rounds `w` to the nearest integer `r` (ties to even) and leaves it in the
/// low mantissa bits; `floor(w) = r - (r > w)`.
#[inline(always)]
fn floor_small(w: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    let r = (w + MAGIC) - MAGIC;
    let f = if r > w { r - 1.0 } else { r };
    (f + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32
}

/// Lanes processed together by [`count_thresholds`] (doubled in the AVX2 build): enough
/// independent work to fill the vector unit without running out of registers.
const LANES: usize = 16;

/// `out[i] = #{i : floor(2·xs[i]/scale) >= d[i]}` for doubled thresholds `d[i] = 2·t[i]`.
///
/// Exact: doubling is exact in floating point and `2·t[i]` is an integer, so
/// `u >= t[i] ⟺ 2u >= 2·t[i] ⟺ floor(2u) >= 2·t[i]`. Clamping `2u` to `[lo, hi]` (one past
/// the grid on each side) changes no comparison, and lets the counts run in `i16` lanes:
/// twice as many per vector as `f32` compares.
#[inline(always)]
fn count_doubled<const N: usize, const L: usize>(
    d: &[i16; N],
    scale: f32,
    lo: f32,
    hi: f32,
    xs: &[f32],
    out: &mut [u8],
) {
    #[inline(always)]
    fn doubled_floor(x: f32, scale: f32, lo: f32, hi: f32) -> i16 {
        floor_small((x / scale * 2.0).clamp(lo, hi)) as i16
    }
    let mut xc = xs.chunks_exact(L);
    let mut oc = out.chunks_exact_mut(L);
    for (x, o) in (&mut xc).zip(&mut oc) {
        let mut v = [0i16; L];
        for (v, &x) in v.iter_mut().zip(x) {
            *v = doubled_floor(x, scale, lo, hi);
        }
        let mut c = [0i16; L];
        for &t in d {
            for (c, &v) in c.iter_mut().zip(&v) {
                *c += (v >= t) as i16;
            }
        }
        for (o, &c) in o.iter_mut().zip(&c) {
            *o = c as u8;
        }
    }
    for (o, &x) in oc.into_remainder().iter_mut().zip(xc.remainder()) {
        let v = doubled_floor(x, scale, lo, hi);
        *o = d.iter().map(|&t| (v >= t) as u8).sum();
    }
}

/// `out[i] = min(#{t in thr : xs[i] / scale >= t}, last)`; written as fixed-width lane
/// arrays with a fixed trip count so that the compiler vectorises across elements.
#[inline(always)]
fn count_thresholds<const N: usize, const L: usize>(
    thr: &[f32; N],
    scale: f32,
    last: u8,
    xs: &[f32],
    out: &mut [u8],
) {
    let mut xc = xs.chunks_exact(L);
    let mut oc = out.chunks_exact_mut(L);
    for (x, o) in (&mut xc).zip(&mut oc) {
        let mut u = [0f32; L];
        for (u, &x) in u.iter_mut().zip(x) {
            *u = x / scale;
        }
        let mut c = [0u32; L];
        for &t in thr {
            for (c, &u) in c.iter_mut().zip(&u) {
                *c += (u >= t) as u32;
            }
        }
        for (o, &c) in o.iter_mut().zip(&c) {
            *o = c.min(last as u32) as u8;
        }
    }
    for (o, &x) in oc.into_remainder().iter_mut().zip(xc.remainder()) {
        let u = x / scale;
        let c = thr.iter().map(|&t| (u >= t) as u32).sum::<u32>();
        *o = c.min(last as u32) as u8;
    }
}

/// Per-grid-value lookup for codebooks wider than 4 bits on grids of at most
/// [`GRID_LUT_MAX`] values. For `u` in `[v, v + 1)` (integer `v`) at most one threshold lies
/// in that interval, since thresholds are at least 1 apart; it can only be `v` itself or
/// `v + 1/2`. So `index(u) = below[v] + (half[v] && u >= v + 1/2)`, where `below[v]` counts
/// the thresholds `<= v`. Exact, branch-free, two table reads per value.
#[derive(Debug, Clone)]
struct GridLut {
    /// `gmin - 1`: table position 0.
    origin: i32,
    below: Vec<u8>,
    half: Vec<u8>,
}

/// Largest grid (in values) that gets a [`GridLut`]; wider grids use binary search.
const GRID_LUT_MAX: usize = 4096;

impl GridLut {
    fn new(codebook: &Codebook) -> GridLut {
        let grid = codebook.grid();
        let origin = grid.min() - 1;
        let size = grid.size() + 3; // gmin - 1 ..= gmax + 1
        let t = codebook.thresholds();
        let mut below = Vec::with_capacity(size);
        let mut half = Vec::with_capacity(size);
        let mut k = 0usize;
        for j in 0..size {
            let v = (origin + j as i32) as f32;
            while k < t.len() && t[k] <= v {
                k += 1;
            }
            below.push(k as u8);
            half.push((k < t.len() && t[k] == v + 0.5) as u8);
        }
        GridLut {
            origin,
            below,
            half,
        }
    }

    #[inline(always)]
    fn encode(&self, scale: f32, xs: &[f32], out: &mut [u8]) {
        let lo = self.origin as f32;
        let hi = (self.origin + self.below.len() as i32 - 2) as f32;
        let last = self.below.len() - 1;
        for (x, o) in xs.chunks(LANES).zip(out.chunks_mut(LANES)) {
            // Arithmetic first, lane-parallel (vectorises), then the table reads.
            let mut j = [0u32; LANES];
            let mut up = [0u8; LANES];
            for ((j, up), &x) in j.iter_mut().zip(&mut up).zip(x) {
                let u = (x / scale).clamp(lo, hi);
                let v = floor_small(u);
                *j = (v - self.origin) as u32;
                *up = (u >= v as f32 + 0.5) as u8;
            }
            for ((o, &j), &up) in o.iter_mut().zip(&j).zip(&up) {
                let j = (j as usize).min(last);
                *o = self.below[j] + (self.half[j] & up);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Grid, Polarity};
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn fast_paths_match_nearest_at_every_width() {
        let mut rng = crate::Rng::new(11);
        for bits in 1..=8u8 {
            let cb = Codebook::uniform(Grid::signed(12).unwrap(), bits, Polarity::SignedMidrise)
                .unwrap();
            let s = Scale::new(0.003).unwrap();
            let q = Quantizer::new(&cb, s);
            let xs: Vec<f32> = (0..2000).map(|_| (rng.normal() * 3.0) as f32).collect();
            let mut idx = vec![0u8; xs.len()];
            q.quantize(&xs, &mut idx).unwrap();
            for (&x, &i) in xs.iter().zip(&idx) {
                assert_eq!(i, cb.nearest(x / s.get()), "bits {bits} x {x}");
            }
        }
    }

    #[test]
    fn non_finite_error_names_the_global_index() {
        let cb = Codebook::iq4_nl();
        let q = Quantizer::new(&cb, Scale::ONE);
        let mut xs = vec![0.0f32; 3 * BLOCK];
        xs[BLOCK + 17] = f32::NAN;
        xs[2 * BLOCK] = f32::INFINITY;
        let mut idx = vec![0u8; xs.len()];
        match q.quantize(&xs, &mut idx) {
            Err(Error::NonFinite { index, value }) => {
                assert_eq!(index, BLOCK + 17);
                assert!(value.is_nan());
            }
            other => panic!("expected NonFinite, got {other:?}"),
        }
        assert_eq!(
            q.quantize(&xs, &mut idx[1..]),
            Err(Error::LengthMismatch {
                expected: 3 * BLOCK,
                found: 3 * BLOCK - 1
            })
        );
    }

    /// Every encoder path (i16 doubled counts, f32 counts, grid table, binary search), in both
    /// the portable build and the run-time dispatched one, against `nearest`.
    #[test]
    fn every_encoder_path_matches_nearest() {
        let mut rng = crate::Rng::new(21);
        for (gbits, bits) in [
            (8u8, 1u8),
            (8, 2),
            (8, 3),
            (8, 4),
            (14, 4),
            (16, 2),
            (16, 4),
            (8, 5),
            (8, 8),
            (12, 7),
            (13, 8),
            (16, 6),
            (16, 8),
        ] {
            for signed in [true, false] {
                let grid = Grid::new(gbits, signed).unwrap();
                let size = grid.size() as u64;
                let mut levels: Vec<i32> = (0..(1u64 << bits))
                    .map(|_| grid.min() + rng.below(size) as i32)
                    .collect();
                levels.sort_unstable();
                levels.dedup();
                let cb = Codebook::explicit(grid, bits, &levels).unwrap();
                let s = Scale::new(0.37).unwrap();
                let q = Quantizer::new(&cb, s);
                let span = (grid.max() - grid.min()) as f64 * 0.37;
                let mut xs: Vec<f32> = (0..3000)
                    .map(|_| {
                        ((rng.next_f64() * 1.2 - 0.1) * span + grid.min() as f64 * 0.37) as f32
                    })
                    .collect();
                // Exact threshold crossings and far outliers.
                xs.extend(cb.thresholds().iter().map(|t| t * 0.37));
                xs.extend([f32::MAX, -f32::MAX, 0.0, -0.0, 1e-40]);
                let mut generic = vec![0u8; xs.len()];
                let mut dispatched = vec![0u8; xs.len()];
                for (x, (g, d)) in xs
                    .chunks(BLOCK)
                    .zip(generic.chunks_mut(BLOCK).zip(dispatched.chunks_mut(BLOCK)))
                {
                    q.encode_block_generic::<LANES>(x, g);
                    q.encode_block(x, d);
                }
                for (i, &x) in xs.iter().enumerate() {
                    let want = cb.nearest(x / 0.37);
                    assert_eq!(generic[i], want, "generic: grid {grid} bits {bits} x {x}");
                    assert_eq!(
                        dispatched[i], want,
                        "dispatched: grid {grid} bits {bits} x {x}"
                    );
                }
            }
        }
    }

    #[test]
    fn floor_small_is_floor() {
        let mut rng = crate::Rng::new(3);
        for _ in 0..100_000 {
            let w = ((rng.next_f64() - 0.5) * 8.0e6) as f32;
            assert_eq!(floor_small(w), libm::floorf(w) as i32, "{w}");
        }
        for w in [
            -0.5f32, 0.5, -1.0, 1.0, 2.5, -2.5, 3.5, -0.0, 1e-30, -1e-30, 4194303.5, -4194303.5,
        ] {
            assert_eq!(floor_small(w), libm::floorf(w) as i32, "{w}");
        }
    }

    #[test]
    fn huge_values_clamp_to_the_outer_levels() {
        let cb = Codebook::explicit(Grid::I8, 3, &[-3, 0, 3]).unwrap();
        let q = Quantizer::new(&cb, Scale::new(f32::MIN_POSITIVE).unwrap());
        let mut idx = [9u8; 2];
        q.quantize(&[f32::MAX, -f32::MAX], &mut idx).unwrap();
        assert_eq!(idx, [2, 0]);
    }
}
