//! The whole pipeline as a library: float training, quantization (prepare → calibrate →
//! fine-tune in stages → fold), evaluation of the float network, the integer model and its
//! float twin, and the `.nuq` file. The `nuq` command line is a thin shell over these
//! functions (arguments, progress bars, output formats).
//!
//! | step | function |
//! |---|---|
//! | float training, epoch by epoch, resumable | [`train_float`] with a [`Plan`] |
//! | float network → integer model | [`quantize`] / [`quantize_with_twin`] with a [`Recipe`] |
//! | quantization-aware fine-tuning alone | [`fine_tune`] with a [`Tuning`] |
//! | accuracy | [`float_stats`], [`integer_accuracy`], [`twin_agreement`] |
//! | `.nuq` file | [`write_model`] |
//!
//! Long steps report to a [`Progress`] ([`Quiet`] reports nothing); the library never
//! prints.
//!
//! A checkpoint to a `.nuq` file (here a fresh network and a few synthetic images, so the
//! example runs anywhere):
//!
//! ```
//! use std::sync::Arc;
//! use nuq_nn::data::{Augment, Dataset};
//! use nuq_nn::pipeline::{integer_accuracy, quantize, write_model, Quiet, Recipe};
//! use nuq_nn::quant::{Family, QuantConfig};
//! use nuq_nn::{Arch, ModelConfig, Network};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = ModelConfig::fashion_mnist(Arch::VggSmall, 0.0625);
//! let net = Network::new(cfg, 1)?; // or nuq_nn::checkpoint::load_model(&mut net, path)
//! let data = Arc::new(Dataset {
//!     images: (0..64 * 28 * 28).map(|i| (i * 7 % 251) as u8).collect(),
//!     labels: (0..64).map(|i| i % 10).collect(),
//!     height: 28,
//!     width: 28,
//!     channels: 1,
//!     classes: 10,
//! });
//! let norm = Augment::normalize_only(vec![0.286], vec![0.353]);
//!
//! let mut recipe = Recipe::new(QuantConfig::new(4, Family::KQuantile));
//! recipe.calib_images = 64;
//! let model = quantize(net, &recipe, &data, &norm, &Quiet)?;
//! let acc = integer_accuracy(&model, &data)?; // integers only
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("m.nuq");
//! let bytes = write_model(&path, &model, Family::KQuantile, Default::default())?;
//! assert!(bytes > 0 && (0.0..=1.0).contains(&acc));
//! # Ok(())
//! # }
//! ```

mod evaluate;
mod fine_tune;
mod float;
mod progress;
mod recipe;
mod write;

pub use evaluate::{
    argmax, check_input_shape, float_stats, integer_accuracy, memory_limit, set_memory_limit,
    twin_agreement, TwinAgreement,
};
pub use fine_tune::{fine_tune, Tuning, QAT_BATCH, QAT_LR};
pub use float::{train_float, AfterEpoch, Flow, Plan, Position, ScheduleKind};
pub use progress::{Progress, Quiet};
pub use recipe::{quantize, quantize_with_twin, Recipe};
pub use write::write_model;
