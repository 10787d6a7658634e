//! Quantization of float networks: weight and activation quantizers, the fake-quantized float
//! twin, calibration, and conversion to the [`crate::integer::IntegerModel`].
//!
//! The activation quantizer of the paper is the **k-quantile** quantizer
//! ([`Family::KQuantile`]): thresholds at equal-mass quantiles of the values reaching it
//! (above the ReLU cut), levels at bin centroids snapped to the 8-bit grid. Folded through
//! batch-norm and the scales, those thresholds become the integer MAC thresholds of the
//! integer model ([`QuantizedNetwork::to_integer`]).
//!
//! Options of [`QuantConfig`]: per-channel or per-tensor weight scales, per-channel
//! k-quantile activation thresholds, learned activation clips and weight scales during
//! fine-tuning (APoT's clipping gradient, LSQ's gradient scale), weight normalisation, and the
//! bit width of the first and last layers; [`QuantizedNetwork::recalibrate`] and
//! [`QuantizedNetwork::set_bits`] refit codebooks and lower bit widths during fine-tuning.

mod act;
mod config;
mod fold;
mod layers;
mod network;
mod qat;
mod slot;
mod weights;

pub use act::ActQuantizer;
pub use config::{InputNorm, QuantConfig};
pub use layers::{ActQuant, GridRound, QuantBlock};
pub use network::QuantizedNetwork;
pub use weights::{quantize_weights, QuantizedWeights};

use std::fmt;
use std::str::FromStr;

/// A codebook family for weights or activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Equal-mass bins, centroid levels (the paper's quantizer).
    KQuantile,
    /// Minimum mean squared error (Lloyd–Max).
    LloydMax,
    /// Additive powers of two.
    Apot,
    /// Uniform.
    Uniform,
}

impl Family {
    /// Every family, in the order reports list them.
    pub const ALL: [Family; 4] = [
        Family::KQuantile,
        Family::LloydMax,
        Family::Apot,
        Family::Uniform,
    ];

    /// The `.nuq` format's name for the family (stored with every codebook).
    pub fn codebook_kind(self) -> nuq_fpga_fmt::CodebookKind {
        use nuq_fpga_fmt::CodebookKind;
        match self {
            Family::KQuantile => CodebookKind::KQuantile,
            Family::LloydMax => CodebookKind::LloydMax,
            Family::Apot => CodebookKind::Apot,
            Family::Uniform => CodebookKind::Uniform,
        }
    }

    /// The name used on command lines and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Family::KQuantile => "kquantile",
            Family::LloydMax => "lloyd",
            Family::Apot => "apot",
            Family::Uniform => "uniform",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Family {
    type Err = crate::NnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Family::ALL
            .into_iter()
            .find(|f| {
                f.name() == s
                    || (s == "k-quantile" && *f == Family::KQuantile)
                    || (s == "lloyd-max" && *f == Family::LloydMax)
            })
            .ok_or_else(|| crate::NnError::UnknownName {
                what: "codebook family",
                found: s.to_string(),
                expected: "kquantile, lloyd, apot, uniform",
            })
    }
}
