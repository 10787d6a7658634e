//! Weight quantization: a codebook on the signed 8-bit grid and one scale per output row.

use nuq_core::{
    Assignment, BinLevel, Calibration, Codebook, EmpiricalDistribution, EqualMassBins, Grid,
    LloydMaxOptions, Polarity,
};

use crate::integer::WeightTable;
use crate::quant::{check_trainable, Family};
use crate::NnError;

/// Weights of one layer as codebook indices and the scales that make them real:
/// `w[row][k] ≈ scales[row] · levels[indices[row][k]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedWeights {
    /// Codebook and indices, row-major `[rows][k]`.
    pub table: WeightTable,
    /// One scale per row (all equal for a per-tensor scale).
    pub scales: Vec<f64>,
    /// The equal-mass bins the indices were assigned by (k-quantile with
    /// [`Assignment::Quantile`]): one group of boundaries per row with per-row scales, one for
    /// the tensor otherwise, in the units of the weights given to [`quantize_weights`]. `None`
    /// for nearest-level assignment.
    pub bins: Option<EqualMassBins>,
}

/// How k-quantile weights are assigned and what their levels stand at (the other families
/// always assign to the nearest level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KQuantileRule {
    /// Quantile (the paper's, default) or nearest-level assignment.
    pub assign: Assignment,
    /// The level of a bin under quantile assignment: centroid (default) or median.
    pub level: BinLevel,
}

impl QuantizedWeights {
    /// The real value of every weight, row-major.
    pub fn dequantized(&self) -> Vec<f32> {
        let k = self.table.indices.len() / self.scales.len().max(1);
        self.table
            .indices
            .iter()
            .enumerate()
            .map(|(i, &q)| {
                (self.scales[i / k] * f64::from(self.table.codebook.levels()[usize::from(q)]))
                    as f32
            })
            .collect()
    }
}

/// Subtracts each row's mean from a row-major table with rows of `k` values (weight
/// normalisation).
pub(crate) fn center_rows(rows: &mut [f32], k: usize) {
    for row in rows.chunks_exact_mut(k.max(1)) {
        let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / row.len() as f64;
        for v in row {
            *v = (f64::from(*v) - mean) as f32;
        }
    }
}

/// Each row's root-mean-square (1 for an all-zero row; all 1 without `per_channel`) and the
/// weights divided by it: what one per-tensor codebook is fitted on.
pub(crate) fn normalise_rows(w: &[f32], rows: usize, per_channel: bool) -> (Vec<f64>, Vec<f32>) {
    let k = w.len() / rows.max(1);
    let norms: Vec<f64> = if per_channel {
        w.chunks_exact(k.max(1))
            .map(|row| {
                let ms = row
                    .iter()
                    .map(|&v| f64::from(v) * f64::from(v))
                    .sum::<f64>()
                    / k as f64;
                if ms > 0.0 {
                    ms.sqrt()
                } else {
                    1.0
                }
            })
            .collect()
    } else {
        vec![1.0; rows]
    };
    let normalised = w
        .iter()
        .enumerate()
        .map(|(i, &v)| (f64::from(v) / norms[i / k.max(1)]) as f32)
        .collect();
    (norms, normalised)
}

/// The equal-mass bins of a row-major `rows × k` table as k-quantile fits them: quantiles of
/// the weights normalised by each row's RMS (with `per_channel`), pooled, one group per row
/// in the rows' own units.
///
/// # Errors
/// As [`EqualMassBins::fit`].
pub(crate) fn quantile_bins(
    w: &[f32],
    rows: usize,
    bins: usize,
    per_channel: bool,
) -> Result<EqualMassBins, nuq_core::Error> {
    let (norms, normalised) = normalise_rows(w, rows, per_channel);
    EqualMassBins::fit(&normalised, 1, bins)?.scaled(&norms)
}

fn core_err(what: &str) -> impl Fn(nuq_core::Error) -> NnError + '_ {
    move |source| NnError::Core {
        what: format!("quantizing {what}"),
        source,
    }
}

/// Quantizes a row-major `rows × k` weight matrix to `bits`-bit indices, k-quantile by the
/// default [`KQuantileRule`] (quantile assignment, centroid levels): [`quantize_weights_by`].
///
/// # Errors
/// As [`quantize_weights_by`].
pub fn quantize_weights(
    what: &str,
    w: &[f32],
    rows: usize,
    bits: u8,
    family: Family,
    per_channel: bool,
) -> Result<QuantizedWeights, NnError> {
    quantize_weights_by(
        what,
        w,
        rows,
        bits,
        family,
        per_channel,
        KQuantileRule::default(),
    )
}

/// Quantizes a row-major `rows × k` weight matrix to `bits`-bit indices.
///
/// With `per_channel`, each row is first divided by its root-mean-square, one codebook is
/// fitted on the pooled normalised weights, and row `r`'s scale is `rms[r] · s`. Without it,
/// one codebook and one scale serve the whole tensor. 8-bit weights use the uniform grid
/// `−127..=127` whatever the family (the first and last layers of a network).
///
/// k-quantile with [`Assignment::Quantile`] (the paper's quantizer) assigns each weight by
/// its empirical CDF within its row (per-row scales) or the tensor: `2^bits` equal-mass bins
/// with boundaries at the quantiles, the shared level of bin `j` the `rule.level` of all
/// normalised weights in bin `j` ([`Codebook::k_quantile_by_cdf`]). With
/// [`Assignment::Nearest`] the levels are the distinct equal-mass centroids
/// ([`Codebook::k_quantile`]) and each weight goes to its nearest level.
///
/// # Errors
/// [`NnError::InvalidParameter`] for an empty weight table or an impossible bit width,
/// [`NnError::NonFinite`], [`NnError::Core`] when the codebook fit fails,
/// [`NnError::UntrainableFamily`] for a family outside [`crate::quant::TRAINABLE`].
pub fn quantize_weights_by(
    what: &str,
    w: &[f32],
    rows: usize,
    bits: u8,
    family: Family,
    per_channel: bool,
    rule: KQuantileRule,
) -> Result<QuantizedWeights, NnError> {
    check_trainable(what, family)?;
    if rows == 0 || w.is_empty() || !w.len().is_multiple_of(rows) {
        return Err(NnError::InvalidParameter {
            what: format!("{what}: weight count"),
            allowed: "a positive multiple of the (positive) row count",
            found: format!("{} weights in {rows} rows", w.len()),
        });
    }
    if !(1..=8).contains(&bits) {
        return Err(NnError::InvalidParameter {
            what: format!("{what}: weight bits"),
            allowed: "1..=8",
            found: bits.to_string(),
        });
    }
    if let Some(i) = w.iter().position(|v| !v.is_finite()) {
        return Err(NnError::NonFinite {
            what: format!("{what}: weight"),
            index: i,
            value: w[i],
        });
    }
    let (norms, normalised) = normalise_rows(w, rows, per_channel);
    let err = core_err(what);
    if bits < 8 && family == Family::KQuantile && rule.assign == Assignment::Quantile {
        // One set of quantiles of the pooled normalised weights (as the codebook is one per
        // tensor), scaled back to each row's units: per-row quantiles with one shared level
        // table would give every row the same multiset of levels and erase the rows' own
        // shapes (measured: 18 % instead of 90 % post-training, VGG-Small ×0.125 4/4).
        let fit = Codebook::k_quantile_by_cdf(Grid::I8, bits, &normalised, 1, rule.level)
            .map_err(&err)?;
        let scale = f64::from(fit.scale.get());
        let bins = fit.bins.scaled(&norms).map_err(&err)?;
        return Ok(QuantizedWeights {
            table: WeightTable {
                codebook: fit.codebook,
                indices: fit.indices,
            },
            scales: norms.iter().map(|n| n * scale).collect(),
            bins: Some(bins),
        });
    }
    let (codebook, scale) = if bits == 8 {
        let cb = Codebook::uniform(Grid::I8, 8, Polarity::Signed).map_err(&err)?;
        let s = Calibration::MseOptimal
            .scale(&normalised, &cb)
            .map_err(&err)?;
        (cb, f64::from(s.get()))
    } else {
        match family {
            Family::KQuantile | Family::LloydMax => {
                let d = EmpiricalDistribution::from_values(&normalised).map_err(&err)?;
                let fit = if family == Family::KQuantile {
                    Codebook::k_quantile(Grid::I8, bits, &d)
                } else {
                    Codebook::lloyd_max(Grid::I8, bits, &d, &LloydMaxOptions::default())
                }
                .map_err(&err)?;
                (fit.codebook, f64::from(fit.scale.get()))
            }
            // Apot or Uniform (check_trainable refused the rest).
            _ => {
                let cb = if family == Family::Apot {
                    Codebook::apot(Grid::I8, bits, Polarity::Signed)
                } else {
                    Codebook::uniform(Grid::I8, bits, Polarity::Signed)
                }
                .map_err(&err)?;
                let s = Calibration::MseOptimal
                    .scale(&normalised, &cb)
                    .map_err(&err)?;
                (cb, f64::from(s.get()))
            }
        }
    };
    let mut indices = vec![0u8; w.len()];
    let units: Vec<f32> = normalised
        .iter()
        .map(|&v| (f64::from(v) / scale) as f32)
        .collect();
    for (dst, &u) in indices.iter_mut().zip(&units) {
        *dst = codebook.nearest(u);
    }
    Ok(QuantizedWeights {
        table: WeightTable { codebook, indices },
        scales: norms.iter().map(|n| n * scale).collect(),
        bins: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::TRAINABLE;

    fn weights(rows: usize, k: usize) -> Vec<f32> {
        let mut rng = crate::Rng::new(7);
        (0..rows * k)
            .map(|i| rng.normal() * (1.0 + (i / k) as f32))
            .collect()
    }

    #[test]
    fn every_family_reconstructs_with_bounded_error() {
        let (rows, k) = (8, 144);
        let w = weights(rows, k);
        let power: f64 = w.iter().map(|&v| f64::from(v).powi(2)).sum();
        for family in [
            Family::KQuantile,
            Family::LloydMax,
            Family::Apot,
            Family::Uniform,
        ] {
            for per_channel in [false, true] {
                let q = quantize_weights("test", &w, rows, 4, family, per_channel).unwrap();
                assert!(q.table.codebook.len() <= 16);
                let err: f64 = q
                    .dequantized()
                    .iter()
                    .zip(&w)
                    .map(|(a, b)| f64::from(a - b).powi(2))
                    .sum();
                let sqnr = 10.0 * (power / err).log10();
                // Equal-mass bins leave the tails of these rows (magnitudes 1..8 pooled into
                // one per-tensor codebook) coarse: k-quantile's bound is lower there.
                let bound = if family == Family::KQuantile && !per_channel {
                    12.0
                } else {
                    14.0
                };
                assert!(
                    sqnr > bound,
                    "{family:?} per_channel={per_channel}: SQNR {sqnr:.1} dB"
                );
            }
        }
    }

    /// Quantile assignment: the indices of the RMS-normalised weights, pooled over the rows,
    /// hold equal mass and follow their order; each row's bins (in its own units) agree with
    /// its indices; nearest assignment keeps no bins.
    #[test]
    fn k_quantile_assigns_by_the_cdf() {
        let (rows, k) = (6, 160);
        let w = weights(rows, k);
        for level in [BinLevel::Centroid, BinLevel::Median] {
            let rule = KQuantileRule {
                assign: Assignment::Quantile,
                level,
            };
            for per_channel in [true, false] {
                let q = quantize_weights_by("t", &w, rows, 3, Family::KQuantile, per_channel, rule)
                    .unwrap();
                assert_eq!(q.table.codebook.len(), 8);
                let bins = q.bins.as_ref().unwrap();
                assert_eq!(bins.groups(), rows);
                for j in 0..8u8 {
                    let c = q.table.indices.iter().filter(|&&i| i == j).count();
                    assert_eq!(c, rows * k / 8, "index {j}");
                }
                let (_, normalised) = normalise_rows(&w, rows, per_channel);
                for (pos, (&x, &i)) in w.iter().zip(&q.table.indices).enumerate() {
                    assert_eq!(bins.assign(pos / k, f64::from(x)), i, "weight {pos}");
                    for (&y, &m) in normalised.iter().zip(&q.table.indices) {
                        if normalised[pos] < y {
                            assert!(i <= m);
                        }
                    }
                }
            }
        }
        let near = KQuantileRule {
            assign: Assignment::Nearest,
            level: BinLevel::Centroid,
        };
        let n = quantize_weights_by("t", &w, rows, 3, Family::KQuantile, true, near).unwrap();
        assert!(n.bins.is_none());
        let u = quantize_weights("t", &w, rows, 3, Family::Uniform, true).unwrap();
        assert!(u.bins.is_none());
    }

    #[test]
    fn per_channel_scales_follow_row_magnitudes() {
        let w = weights(4, 64);
        let q = quantize_weights("test", &w, 4, 3, Family::LloydMax, true).unwrap();
        assert!(q.scales.windows(2).all(|s| s[0] < s[1]), "{:?}", q.scales);
        let t = quantize_weights("test", &w, 4, 3, Family::LloydMax, false).unwrap();
        assert!(t.scales.windows(2).all(|s| s[0] == s[1]));
    }

    #[test]
    fn eight_bits_is_fine_uniform() {
        let w = weights(2, 50);
        let q = quantize_weights("test", &w, 2, 8, Family::Apot, false).unwrap();
        let max_err = q
            .dequantized()
            .iter()
            .zip(&w)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(f64::from(max_err) <= q.scales[0] * 0.5 + 1e-6);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(
            quantize_weights("t", &[1.0, f32::NAN], 1, 4, Family::Uniform, false)
                .unwrap_err()
                .to_string()
                .contains("weight 1 is not finite")
        );
        assert!(quantize_weights("t", &[1.0; 3], 2, 4, Family::Uniform, false).is_err());
        assert!(quantize_weights("t", &[1.0; 4], 2, 9, Family::Uniform, false).is_err());
        for &f in Family::ALL.iter().filter(|f| !TRAINABLE.contains(f)) {
            let e = quantize_weights("t", &[1.0; 4], 2, 8, f, false).unwrap_err();
            assert!(matches!(e, NnError::UntrainableFamily { family, .. } if family == f));
            let e = crate::quant::ActQuantizer::fit(f, 2, &[1.0]).unwrap_err();
            assert!(matches!(e, NnError::UntrainableFamily { .. }));
        }
    }
}
