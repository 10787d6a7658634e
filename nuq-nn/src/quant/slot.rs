//! One quantized weight tensor with its float master copy: the quantized view the network
//! uses, re-quantized from the masters at every fine-tuning step, refitted and rescaled.

use crate::quant::weights::{
    center_rows, normalise_rows, quantile_bins, quantize_weights_by, KQuantileRule,
    QuantizedWeights,
};
use crate::quant::Family;
use crate::NnError;

/// One quantized weight tensor with its float master copy.
pub(crate) struct WeightSlot {
    /// Codebook, indices and per-row scales.
    pub q: QuantizedWeights,
    /// Float master weights, row-major `[rows][k]` like the parameter (a convolution's OHWI
    /// `[c_out][kh][kw][c_in]`, a linear layer's `[out][in]`).
    pub shadow: Vec<f32>,
    /// Per-input-channel factor folded into the first layer's weights (`255 · std`; column
    /// `j` of a row belongs to input channel `j % c_in`).
    pub input_factor: Option<Vec<f64>>,
    /// First convolution or classifier: quantized with the edge bit width.
    pub edge: bool,
    /// One scale per output row (else one per tensor).
    pub per_channel: bool,
    /// Momentum of the learned scales (empty until the first step).
    pub velocity: Vec<f64>,
    /// Weight normalisation: every row is used minus its mean (the effective weights of a
    /// row sum to about zero; the per-row scale already divides out the magnitude).
    pub center: bool,
    /// k-quantile assignment and bin levels.
    pub rule: KQuantileRule,
    /// Under quantile assignment, refit the equal-mass boundaries to the masters at every
    /// re-quantization (the levels stay).
    pub follow: bool,
    /// UNIQ training noise: while set, [`WeightSlot::requantize`] returns noisy weights
    /// instead of the levels (the indices are still the quantile ones).
    pub noise: Option<crate::Rng>,
    /// Where the layer stands in a gradual schedule (quantized unless it is still in full
    /// precision): the network uses
    /// [`WeightSlot::float_weights`] instead of the re-quantized masters when it is
    /// [`Phase::Float`](crate::quant::Phase::Float).
    pub phase: crate::quant::Phase,
    /// Frozen (a finished stage of a gradual schedule): the masters, codebook and scales
    /// stay as they are.
    pub frozen: bool,
}

/// Momentum of the learned weight scales.
const SCALE_MOMENTUM: f64 = 0.9;

impl WeightSlot {
    /// The float masters as the row-major `[rows][k]` table the codebook is fitted on (the
    /// first layer's input factor divided out).
    fn master_rows(&self) -> Vec<f32> {
        let mut rows = self.raw_rows();
        if self.center {
            let k = rows.len() / self.q.scales.len().max(1);
            center_rows(&mut rows, k);
        }
        rows
    }

    /// The float masters as the row-major table, uncentred.
    fn raw_rows(&self) -> Vec<f32> {
        let mut rows = self.shadow.clone();
        if let Some(f) = &self.input_factor {
            for (i, v) in rows.iter_mut().enumerate() {
                *v = (f64::from(*v) / f[i % f.len()]) as f32;
            }
        }
        rows
    }

    /// The masters as the network uses them in full precision: as they are, or each row
    /// minus its mean with [`WeightSlot::center`] (in the parameter's layout).
    pub(crate) fn float_weights(&self) -> Vec<f32> {
        if !self.center {
            return self.shadow.clone();
        }
        let means = self.row_means();
        let k = self.shadow.len() / self.q.scales.len().max(1);
        self.shadow
            .iter()
            .enumerate()
            .map(|(pos, &w)| {
                let (row, _, factor) = self.locate(pos, k);
                ((f64::from(w) / factor - means[row]) * factor) as f32
            })
            .collect()
    }

    /// Fits a new codebook and new scales to the float masters.
    pub(crate) fn refit(&mut self, name: &str, bits: u8, family: Family) -> Result<(), NnError> {
        let rows = self.q.scales.len();
        self.q = quantize_weights_by(
            name,
            &self.master_rows(),
            rows,
            bits,
            family,
            self.per_channel,
            self.rule,
        )?;
        self.velocity.clear();
        Ok(())
    }

    /// Each row's mean of the masters (divided by the input factor), or zeros without
    /// [`WeightSlot::center`].
    fn row_means(&self) -> Vec<f64> {
        let rows = self.q.scales.len();
        let mut means = vec![0.0f64; rows];
        if !self.center || rows == 0 {
            return means;
        }
        let k = self.shadow.len() / rows;
        for (pos, &w) in self.shadow.iter().enumerate() {
            let (row, _, factor) = self.locate(pos, k);
            means[row] += f64::from(w) / factor;
        }
        for m in &mut means {
            *m /= k as f64;
        }
        means
    }

    /// The gradient with respect to the masters from the one with respect to the effective
    /// (centred) weights: each row's mean gradient removed. Nothing without centring.
    pub(crate) fn center_gradient(&self, grad: &mut [f32]) {
        let rows = self.q.scales.len();
        if !self.center || rows == 0 || grad.len() != self.shadow.len() {
            return;
        }
        let k = self.shadow.len() / rows;
        let mut means = vec![0.0f64; rows];
        for (pos, &g) in grad.iter().enumerate() {
            means[self.locate(pos, k).0] += f64::from(g);
        }
        for (pos, g) in grad.iter_mut().enumerate() {
            let row = self.locate(pos, k).0;
            *g = (f64::from(*g) - means[row] / k as f64) as f32;
        }
    }

    /// Where parameter position `pos` lands: (row, column of the row-major table, input
    /// factor of the first layer or 1).
    fn locate(&self, pos: usize, k: usize) -> (usize, usize, f64) {
        let (row, col) = (pos / k, pos % k);
        let factor = self.input_factor.as_ref().map_or(1.0, |f| f[col % f.len()]);
        (row, col, factor)
    }

    /// One momentum-SGD step on the scales, learned as clips `α = scale · L_max` (`L_max`
    /// the largest level magnitude), from `grad`, the loss gradient with respect to the
    /// dequantized weights in the parameter's layout: `∂q/∂α = (L[index] − w/scale) / L_max`
    /// inside the codebook's range, `L[index] / L_max` outside it, summed over the row (or
    /// the tensor, for one scale) and scaled by `1/√(K · (2^(b−1) − 1))` (LSQ).
    pub(crate) fn learn_scales(&mut self, grad: &[f32], lr: f32) {
        let rows = self.q.scales.len();
        let levels = self.q.table.codebook.levels();
        if rows == 0 || grad.len() != self.shadow.len() {
            return;
        }
        let k = self.shadow.len() / rows;
        let (lo, hi) = (f64::from(levels[0]), f64::from(levels[levels.len() - 1]));
        let l_max = lo.abs().max(hi.abs());
        if l_max == 0.0 {
            return;
        }
        let means = self.row_means();
        let mut ds = vec![0.0f64; rows];
        for (pos, (&w, &g)) in self.shadow.iter().zip(grad).enumerate() {
            let (row, col, factor) = self.locate(pos, k);
            let u = (f64::from(w) / factor - means[row]) / self.q.scales[row];
            let l = f64::from(levels[usize::from(self.q.table.indices[row * k + col])]);
            let dq = if (lo..=hi).contains(&u) { l - u } else { l };
            ds[row] += f64::from(g) * dq * factor;
        }
        let positive_levels =
            f64::from((1u32 << (self.q.table.bits() - 1)).saturating_sub(1).max(1));
        let per_scale = if self.per_channel { k } else { rows * k };
        let g = 1.0 / ((per_scale as f64) * positive_levels).sqrt();
        if !self.per_channel {
            let total: f64 = ds.iter().sum();
            ds.fill(total);
        }
        if self.velocity.len() != rows {
            self.velocity = vec![0.0; rows];
        }
        for ((s, v), d) in self.q.scales.iter_mut().zip(&mut self.velocity).zip(&ds) {
            let alpha = *s * l_max;
            *v = SCALE_MOMENTUM * *v + d * g / l_max;
            // One step moves a clip by at most a factor of ten either way.
            let next = (alpha - f64::from(lr) * *v).clamp(0.1 * alpha, 10.0 * alpha);
            *s = next / l_max;
        }
    }

    /// Re-quantizes the master weights with the slot's codebook and scales, updates the
    /// indices and returns the dequantized values in the parameter's layout.
    ///
    /// Under quantile assignment a weight's index is its bin among its row's (or the
    /// tensor's) equal-mass boundaries — refitted to the masters first with
    /// [`WeightSlot::follow`] — otherwise its nearest level. With [`WeightSlot::noise`] the
    /// returned values are UNIQ's noisy weights ([`WeightSlot::noisy`]) rather than levels.
    pub fn requantize(&mut self) -> Vec<f32> {
        let rows = self.q.scales.len();
        let k = self.shadow.len() / rows.max(1);
        let means = self.row_means();
        if self.follow {
            if let Some(b) = &self.q.bins {
                // Non-finite masters (a diverged step) keep the previous boundaries.
                let rows_now = self.master_rows();
                if let Ok(fresh) = quantile_bins(&rows_now, rows, b.bins(), self.per_channel) {
                    self.q.bins = Some(fresh);
                }
            }
        }
        let mut out = vec![0.0f32; self.shadow.len()];
        for (pos, &w) in self.shadow.iter().enumerate() {
            let (row, col, factor) = self.locate(pos, k);
            let s = self.q.scales[row];
            let x = f64::from(w) / factor - means[row];
            let idx = match &self.q.bins {
                Some(b) => b.assign(row % b.groups().max(1), x),
                None => self.q.table.codebook.nearest_f64(x / s),
            };
            self.q.table.indices[row * k + col] = idx;
            let level = self.q.table.codebook.levels()[usize::from(idx)];
            out[pos] = (s * f64::from(level) * factor) as f32;
        }
        if self.noise.is_some() {
            self.noisy(&mut out);
        }
        out
    }

    /// UNIQ's training noise (Baskin et al., arXiv 1804.10969): each weight's CDF value
    /// `u = F(w)` — its rank among the tensor's weights normalised by their row's RMS (with
    /// per-channel scales), the distribution the equal-mass bins are quantiles of — gets
    /// uniform noise one bin wide, `u' = u + e`, `e ~ U(−1/2k, 1/2k)` for `k` bins, and the
    /// weight used is `F⁻¹(u')` (linear between the sorted normalised masters, clamped to their
    /// range) times the row's RMS. The value is thus drawn across about one bin around the
    /// weight instead of snapped to its level; the gradient reaches the master unchanged, as
    /// with the straight-through estimator.
    fn noisy(&mut self, out: &mut [f32]) {
        let Some(bins) = self.q.bins.as_ref().map(|b| b.bins()) else {
            return;
        };
        let rows = self.q.scales.len();
        let k = self.shadow.len() / rows.max(1);
        let (norms, normalised) = normalise_rows(&self.master_rows(), rows, self.per_channel);
        let Some(rng) = self.noise.as_mut() else {
            return;
        };
        let n = normalised.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_unstable_by(|&i, &j| normalised[i].total_cmp(&normalised[j]));
        let sorted: Vec<f64> = order.iter().map(|&i| f64::from(normalised[i])).collect();
        let (nf, width) = (n as f64, 1.0 / bins as f64);
        for (rank, &pos) in order.iter().enumerate() {
            let u = (rank as f64 + 0.5) / nf + (rng.next_f64() - 0.5) * width;
            let p = (u * nf - 0.5).clamp(0.0, nf - 1.0);
            let lo = p.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            let v = sorted[lo] + (p - lo as f64) * (sorted[hi] - sorted[lo]);
            let factor = self
                .input_factor
                .as_ref()
                .map_or(1.0, |f| f[(pos % k) % f.len()]);
            out[pos] = (v * norms[pos / k] * factor) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::WeightSlot;
    use crate::quant::weights::{normalise_rows, quantize_weights, KQuantileRule};
    use crate::quant::Family;

    fn slot(per_channel: bool, bits: u8, family: Family) -> WeightSlot {
        let mut rng = crate::Rng::new(21);
        let (rows, k) = (4, 72);
        let shadow: Vec<f32> = (0..rows * k)
            .map(|i| rng.normal() * 0.05 * (1 + i / k) as f32)
            .collect();
        let q = quantize_weights("t", &shadow, rows, bits, family, per_channel).unwrap();
        WeightSlot {
            q,
            shadow,
            input_factor: None,
            edge: false,
            per_channel,
            velocity: Vec::new(),
            center: false,
            rule: KQuantileRule::default(),
            follow: false,
            noise: None,
            phase: crate::quant::Phase::Active,
            frozen: false,
        }
    }

    fn mse(slot: &mut WeightSlot) -> f64 {
        let q = slot.requantize();
        q.iter()
            .zip(&slot.shadow)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum::<f64>()
            / q.len() as f64
    }

    /// Weight normalisation: the effective weights are the masters minus their row mean, up
    /// to half a level step, and the masters' gradient has zero row sums.
    #[test]
    fn centred_rows_track_the_masters_minus_their_mean() {
        let mut s = slot(true, 4, Family::Uniform);
        for v in &mut s.shadow {
            *v += 0.3;
        }
        s.center = true;
        s.refit("t", 4, Family::Uniform).unwrap();
        let k = s.shadow.len() / s.q.scales.len();
        let q = s.requantize();
        for (r, (qrow, wrow)) in q.chunks(k).zip(s.shadow.chunks(k)).enumerate() {
            let mean = wrow.iter().map(|&v| f64::from(v)).sum::<f64>() / k as f64;
            let step = s.q.scales[r] * 16.0;
            for (&a, &w) in qrow.iter().zip(wrow) {
                let want = f64::from(w) - mean;
                // Inside the codebook's range the error is at most half a (uniform) step.
                if want.abs() < s.q.scales[r] * 100.0 {
                    assert!(
                        (f64::from(a) - want).abs() <= step,
                        "row {r}: {a} vs {want}"
                    );
                }
            }
        }
        let mut grad: Vec<f32> = (0..s.shadow.len()).map(|i| (i % 7) as f32).collect();
        s.center_gradient(&mut grad);
        for row in grad.chunks(k) {
            assert!(row.iter().map(|&g| f64::from(g)).sum::<f64>().abs() < 1e-3);
        }
        let mut plain = slot(true, 4, Family::Uniform);
        let mut g2: Vec<f32> = vec![1.0; plain.shadow.len()];
        plain.center_gradient(&mut g2);
        assert!(g2.iter().all(|&g| g == 1.0));
        plain.requantize();
    }

    /// Quantile bins follow the masters when they move (equal mass again after the positive
    /// weights grow), stay put when fixed; UNIQ noise changes the values, not the indices.
    #[test]
    fn quantile_bins_follow_the_masters_and_noise_spares_the_indices() {
        let mut s = slot(true, 3, Family::KQuantile);
        let n = s.shadow.len();
        let counts = |idx: &[u8]| {
            let mut c = [0usize; 8];
            for &i in idx {
                c[usize::from(i)] += 1;
            }
            c
        };
        for v in &mut s.shadow {
            if *v > 0.0 {
                *v *= 3.0;
            }
        }
        s.follow = false;
        s.requantize();
        let fixed = counts(&s.q.table.indices);
        s.follow = true;
        let hard = s.requantize();
        assert_eq!(counts(&s.q.table.indices), [n / 8; 8]);
        assert_ne!(fixed, [n / 8; 8]);
        let indices = s.q.table.indices.clone();
        s.noise = Some(crate::Rng::new(3));
        let noisy = s.requantize();
        assert_eq!(s.q.table.indices, indices);
        assert_ne!(noisy, hard);
        // Noise stays within about a bin: a weight's rank moves by at most ~n/16.
        let rows = s.q.scales.len();
        let (norms, w) = normalise_rows(&s.shadow, rows, true);
        let mut sorted = w.clone();
        sorted.sort_by(f32::total_cmp);
        let k = n / rows;
        for (pos, (&x, &y)) in w.iter().zip(&noisy).enumerate() {
            let y = (f64::from(y) / norms[pos / k]) as f32;
            let rx = sorted.partition_point(|&v| v < x) as i64;
            let ry = sorted.partition_point(|&v| v < y) as i64;
            assert!((rx - ry).abs() <= (n / 16 + 2) as i64, "{rx} vs {ry}");
        }
        s.noise = None;
        assert_eq!(s.requantize(), hard);
    }

    /// With the reconstruction error as the loss, learned scales pulled far from the
    /// calibrated ones come back: the clip gradient points the right way in both directions.
    #[test]
    fn learned_scales_reduce_the_reconstruction_error() {
        for per_channel in [true, false] {
            for (family, factor) in [(Family::Uniform, 0.3), (Family::LloydMax, 3.0)] {
                let mut s = slot(per_channel, 3, family);
                let calibrated = mse(&mut s);
                for v in &mut s.q.scales {
                    *v *= factor;
                }
                let start = mse(&mut s);
                assert!(start > 2.0 * calibrated);
                for _ in 0..3000 {
                    let q = s.requantize();
                    let grad: Vec<f32> = q
                        .iter()
                        .zip(&s.shadow)
                        .map(|(a, b)| 2.0 * (a - b))
                        .collect();
                    s.learn_scales(&grad, 0.5);
                }
                let end = mse(&mut s);
                assert!(
                    end < 0.5 * start && end < 2.0 * calibrated,
                    "{family:?} per_channel={per_channel}: {calibrated:e} → ×{factor} {start:e} → {end:e}"
                );
                if !per_channel {
                    assert!(s.q.scales.windows(2).all(|p| p[0] == p[1]));
                }
            }
        }
    }
}
