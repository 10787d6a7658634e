//! Quantization of float networks: weight and activation quantizers, the fake-quantized float
//! twin, calibration, and conversion to the [`crate::integer::IntegerModel`].
//!
//! The activation quantizer of the paper is the **k-quantile** quantizer
//! ([`Family::KQuantile`]): thresholds at equal-mass quantiles of the values reaching it
//! (above the ReLU cut), levels at bin centroids snapped to the 8-bit grid. Folded through
//! batch-norm and the scales, those thresholds become the integer MAC thresholds of the
//! integer model ([`QuantizedNetwork::to_integer`]). k-quantile *weights* are assigned the
//! same way ([`nuq_core::Assignment::Quantile`]): each weight's index is its equal-mass bin
//! among the tensor's weights normalised by their row's RMS, at calibration and at every
//! fine-tuning step (the boundaries follow the float masters unless
//! [`QuantConfig::follow_quantiles`] is off), and the integer model folds those indices.
//! [`KQuantileRule`] keeps the nearest-level variant and the median levels as options.
//! [`QuantizedNetwork::set_noise`] trains with UNIQ's noise instead of straight-through
//! rounding, and [`QuantizedNetwork::begin_stage`] runs UNIQ's gradual schedule (blocks of
//! layers quantized one stage after another, the later ones in full precision meanwhile).
//!
//! Options of [`QuantConfig`]: per-channel or per-tensor weight scales, per-channel
//! k-quantile activation thresholds, learned activation clips and weight scales during
//! fine-tuning (APoT's clipping gradient, LSQ's gradient scale), weight normalisation, and the
//! bit width of the first and last layers; [`QuantizedNetwork::recalibrate`] and
//! [`QuantizedNetwork::set_bits`] refit codebooks and lower bit widths during fine-tuning.

mod act;
mod config;
mod fold;
mod gradual;
mod layers;
mod network;
mod qat;
mod slot;
mod tables;
mod teacher;
mod weights;

pub use act::ActQuantizer;
pub use config::{InputNorm, QuantConfig};
pub use gradual::{gradual_stages, Phase};
pub use layers::{ActQuant, GridRound};
pub use network::QuantizedNetwork;
pub use tables::WeightQuantizerView;
pub use teacher::Teacher;
pub use weights::{quantize_weights, quantize_weights_by, KQuantileRule, QuantizedWeights};

/// A codebook family for weights or activations: `nuq-core`'s [`Family`], the one the `.nuq`
/// file stores. Quantizers fit the [`TRAINABLE`] families; asking for another one is
/// [`crate::NnError::UntrainableFamily`].
pub use nuq_core::Family;

/// The families the quantizers fit, in the order reports list them.
pub const TRAINABLE: [Family; 4] = [
    Family::KQuantile,
    Family::LloydMax,
    Family::Apot,
    Family::Uniform,
];

/// Refuses a family the quantizers cannot fit.
pub(crate) fn check_trainable(what: &str, family: Family) -> Result<(), crate::NnError> {
    if TRAINABLE.contains(&family) {
        Ok(())
    } else {
        Err(crate::NnError::UntrainableFamily {
            what: what.to_string(),
            family,
        })
    }
}

/// The name of `family` on command lines and in reports (`kquantile`, `lloyd`, `apot`,
/// `uniform`; the format's name for the others).
///
/// ```
/// use nuq_nn::quant::{family_name, Family};
/// assert_eq!(family_name(Family::LloydMax), "lloyd");
/// ```
pub fn family_name(family: Family) -> &'static str {
    match family {
        Family::KQuantile => "kquantile",
        Family::LloydMax => "lloyd",
        other => other.name(),
    }
}

/// The trainable family named `name` ([`family_name`], or `k-quantile` / `lloyd-max`).
///
/// # Errors
/// [`crate::NnError::UnknownName`] for any other name.
///
/// ```
/// use nuq_nn::quant::{parse_family, Family};
/// assert_eq!(parse_family("lloyd-max")?, Family::LloydMax);
/// assert!(parse_family("nf4").is_err());
/// # Ok::<(), nuq_nn::NnError>(())
/// ```
pub fn parse_family(name: &str) -> Result<Family, crate::NnError> {
    TRAINABLE
        .into_iter()
        .find(|&f| {
            family_name(f) == name
                || (name == "k-quantile" && f == Family::KQuantile)
                || (name == "lloyd-max" && f == Family::LloydMax)
        })
        .ok_or_else(|| crate::NnError::UnknownName {
            what: "codebook family",
            found: name.to_string(),
            expected: "kquantile, lloyd, apot, uniform",
        })
}
