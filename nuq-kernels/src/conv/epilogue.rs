//! What a convolution tile does with its `i32` accumulators while they are in cache:
//! requantize them to levels (bias folded into `i32` thresholds, or in 64-bit when the
//! accumulator bound does not allow the fold), or hand on `acc + bias`.

use std::ops::Range;

use nuq_core::MacThresholds;

use crate::error::check_eq;
use crate::threshold::Thresholds;
use crate::{KernelError, KernelPath};

/// A convolution's output, as its caller asks for it.
#[derive(Debug, Clone, Copy)]
pub enum Requantize<'a> {
    /// `levels[code]` with `code` the [`MacThresholds`] code of `acc + bias` (64-bit);
    /// `levels` has `2^bits` entries.
    Levels {
        /// The MAC thresholds, one row per output channel.
        thresholds: &'a MacThresholds,
        /// The output level of each code.
        levels: &'a [u8],
    },
    /// `acc + bias` as `i32` ([`KernelError::BiasOverflow`] when it leaves the range).
    Accumulator,
}

/// Where a convolution writes, `[pixel][channel]` across the batch.
#[derive(Debug)]
pub enum ConvOut<'a> {
    /// Activation levels ([`Requantize::Levels`]).
    Levels(&'a mut [u8]),
    /// Accumulators plus bias ([`Requantize::Accumulator`]).
    Int32(&'a mut [i32]),
}

impl ConvOut<'_> {
    /// Elements the buffer holds.
    pub(crate) fn len(&self) -> usize {
        match self {
            ConvOut::Levels(o) => o.len(),
            ConvOut::Int32(o) => o.len(),
        }
    }
}

/// The compiled epilogue.
#[derive(Debug, Clone)]
pub(crate) enum Epilogue {
    /// Requantize to levels with bias-folded `i32` thresholds (see the module docs).
    Levels {
        thresholds: Thresholds,
        levels: Vec<u8>,
    },
    /// Requantize `acc + bias` in 64-bit, as [`Requantize::Levels`] defines it (layers whose
    /// accumulator bound reaches `i32::MAX`).
    Wide {
        thresholds: MacThresholds,
        levels: Vec<u8>,
        bias: Vec<i32>,
    },
    /// Hand on `acc + bias` as `i32`.
    Accumulator {
        bias: Vec<i32>,
        /// Bound on `|acc|` (before the bias), saturated to `i64`.
        bound: i64,
    },
}

impl Epilogue {
    /// Compiles `output` for `bias.len()` channels whose accumulators are bounded by `bound`
    /// in magnitude.
    pub(crate) fn new(
        output: Requantize<'_>,
        bias: &[i32],
        bound: u128,
    ) -> Result<Epilogue, KernelError> {
        let Requantize::Levels { thresholds, levels } = output else {
            return Ok(Epilogue::Accumulator {
                bias: bias.to_vec(),
                bound: i64::try_from(bound).unwrap_or(i64::MAX),
            });
        };
        let rows = thresholds.channels();
        check_eq("threshold rows (one per output channel)", bias.len(), rows)?;
        let n_levels = levels.len();
        check_eq("output levels (2^bits)", 1 << thresholds.bits(), n_levels)?;
        if bound < i32::MAX as u128 {
            let folded = thresholds
                .offset(bias)
                .map_err(|_| KernelError::ShapeMismatch {
                    what: "bias (one per output channel)",
                    expected: thresholds.channels(),
                    found: bias.len(),
                })?;
            Ok(Epilogue::Levels {
                thresholds: Thresholds::new(&folded),
                levels: levels.to_vec(),
            })
        } else {
            Ok(Epilogue::Wide {
                thresholds: thresholds.clone(),
                levels: levels.to_vec(),
                bias: bias.to_vec(),
            })
        }
    }

    /// The bias the AVX-512 GEMM kernels may add to the accumulators as they store them
    /// (instead of a pass over the stored block): an epilogue that hands on `acc + bias`
    /// whose sums cannot leave `i32` (`bound + max |bias| ≤ i32::MAX`, so the check of
    /// [`Epilogue::apply`] could never fail), on that path; `None` otherwise.
    pub(crate) fn stored_bias(&self, path: KernelPath) -> Option<&[i32]> {
        match self {
            Epilogue::Accumulator { bias, bound } if path.is_avx512() => {
                let max_bias = bias.iter().map(|&b| i64::from(b).abs()).max().unwrap_or(0);
                (bound.saturating_add(max_bias) <= i64::from(i32::MAX)).then_some(bias.as_slice())
            }
            _ => None,
        }
    }

    /// Per channel `0` (rising) or `-1` (falling), when a max-pool of this epilogue's levels
    /// equals its levels of the pooled accumulators — each channel's largest `acc ^ flip`,
    /// i.e. its largest accumulator if rising, its smallest if falling: for levels that do
    /// not decrease with the code (a channel's code does not decrease along that order).
    /// `None` for an epilogue that hands on accumulators or whose levels decrease somewhere.
    pub(crate) fn pool_flip(&self) -> Option<Vec<i32>> {
        let ascending = |levels: &[u8]| levels.windows(2).all(|w| w[0] <= w[1]);
        match self {
            Epilogue::Levels { thresholds, levels } if ascending(levels) => {
                Some(thresholds.flips().to_vec())
            }
            Epilogue::Wide {
                thresholds, levels, ..
            } if ascending(levels) => Some(
                thresholds
                    .directions()
                    .iter()
                    .map(|d| if d.is_falling() { -1 } else { 0 })
                    .collect(),
            ),
            _ => None,
        }
    }

    /// Whether the output is levels (else `i32`).
    pub(crate) fn writes_levels(&self) -> bool {
        !matches!(self, Epilogue::Accumulator { .. })
    }

    /// Requantizes (or biases) `rows` accumulator rows (stride `lda`) of channels `chans`
    /// into `out` (stride `ldo`, column 0 = channel `chans.start`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply(
        &self,
        path: KernelPath,
        acc: &[i32],
        lda: usize,
        rows: usize,
        chans: Range<usize>,
        out: ConvOut<'_>,
        ldo: usize,
    ) -> Result<(), KernelError> {
        let width = chans.len();
        match (self, out) {
            (Epilogue::Levels { thresholds, levels }, ConvOut::Levels(o)) => thresholds
                .apply_levels_block(path, acc, lda, rows, chans.start, width, levels, o, ldo),
            (
                Epilogue::Wide {
                    thresholds,
                    levels,
                    bias,
                },
                ConvOut::Levels(o),
            ) => {
                for r in 0..rows {
                    for j in 0..width {
                        let c = chans.start + j;
                        let v = i64::from(acc[r * lda + j]) + i64::from(bias[c]);
                        o[r * ldo + j] = levels[usize::from(thresholds.code(c, v))];
                    }
                }
                Ok(())
            }
            (Epilogue::Accumulator { bias, .. }, ConvOut::Int32(o)) => {
                // A signed add overflowed iff the sum's sign differs from both operands';
                // the sign bits are gathered rather than checked per element, so that the
                // loop vectorises.
                let bias = &bias[chans];
                let mut signs = 0i32;
                for r in 0..rows {
                    let src = &acc[r * lda..r * lda + width];
                    let dst = &mut o[r * ldo..r * ldo + width];
                    for ((d, &a), &b) in dst.iter_mut().zip(src).zip(bias) {
                        let v = a.wrapping_add(b);
                        *d = v;
                        signs |= (a ^ v) & (b ^ v);
                    }
                }
                if signs < 0 {
                    return Err(KernelError::BiasOverflow);
                }
                Ok(())
            }
            _ => Err(self.kind_error()),
        }
    }

    /// Adds the bias to `rows` accumulator rows (stride `lda`) of channels `chans` in place
    /// (an epilogue that hands on accumulators; [`KernelError::OutputKind`] for one that
    /// requantizes, [`KernelError::BiasOverflow`] when a sum leaves `i32`).
    pub(crate) fn bias_in_place(
        &self,
        acc: &mut [i32],
        lda: usize,
        rows: usize,
        chans: Range<usize>,
    ) -> Result<(), KernelError> {
        let Epilogue::Accumulator { bias, .. } = self else {
            return Err(KernelError::OutputKind {
                expected: "i32 accumulators (a join fuses a convolution that hands on acc + bias)",
            });
        };
        let bias = &bias[chans];
        // As in `apply`: sign bits gathered so that the loop vectorises.
        let mut signs = 0i32;
        for r in 0..rows {
            let row = &mut acc[r * lda..r * lda + bias.len()];
            for (d, &b) in row.iter_mut().zip(bias) {
                let a = *d;
                let v = a.wrapping_add(b);
                *d = v;
                signs |= (a ^ v) & (b ^ v);
            }
        }
        if signs < 0 {
            return Err(KernelError::BiasOverflow);
        }
        Ok(())
    }

    /// The bias of an epilogue that hands on accumulators (a join adds it itself, with the
    /// same overflow check) and the bound on `|acc|` before it; [`KernelError::OutputKind`]
    /// for one that requantizes.
    pub(crate) fn accumulator_bias(&self) -> Result<(&[i32], i64), KernelError> {
        match self {
            Epilogue::Accumulator { bias, bound } => Ok((bias, *bound)),
            _ => Err(KernelError::OutputKind {
                expected: "i32 accumulators (a join fuses a convolution that hands on acc + bias)",
            }),
        }
    }

    /// The error for an output buffer of the other kind.
    pub(crate) fn kind_error(&self) -> KernelError {
        KernelError::OutputKind {
            expected: if self.writes_levels() {
                "u8 levels"
            } else {
                "i32 accumulators"
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bias_is_stored_by_the_gemm_only_where_no_sum_can_overflow() {
        let bound = u128::from(i32::MAX.unsigned_abs()) - 10;
        let path = KernelPath::Avx512Vnni;
        let fits = Epilogue::new(Requantize::Accumulator, &[10, -10, 3], bound).unwrap();
        assert_eq!(fits.stored_bias(path), Some(&[10, -10, 3][..]));
        assert_eq!(fits.stored_bias(KernelPath::AvxVnni), None);
        let over = Epilogue::new(Requantize::Accumulator, &[3, -11], bound).unwrap();
        assert_eq!(over.stored_bias(path), None);
        let mac = MacThresholds::new(1, vec![0], vec![nuq_core::Direction::Rising]).unwrap();
        let levels = Requantize::Levels {
            thresholds: &mac,
            levels: &[0, 1],
        };
        let requantizes = Epilogue::new(levels, &[0], 100).unwrap();
        assert_eq!(requantizes.stored_bias(path), None);
    }
}
