//! UNIQ's gradual schedule (Baskin et al., arXiv 1804.10969): the weight layers, in forward
//! order, are split into `N` contiguous blocks ([`gradual_stages`]); at stage `i` block `i` is
//! quantized and trained ([`Phase::Active`]: with UNIQ noise or the straight-through
//! estimator), the blocks before it stay quantized ([`Phase::Done`]: frozen, or still
//! trained with the straight-through estimator) and the blocks after it are full precision
//! ([`Phase::Float`]: float weights and unquantized activations, trained).
//!
//! A layer's activation quantizers belong to its block: an [`ActQuant`] belongs to the
//! nearest weight layer before it (a residual block's output quantizer to the block's last
//! convolution). A block's weight codebooks are refitted to the float masters and its
//! activation quantizers calibrated when its stage begins
//! ([`QuantizedNetwork::begin_stage`]), so they see the earlier blocks already quantized.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::layer::{visit_leaves_mut, Layer};
use crate::layers::{Conv2d, Linear};
use crate::models::Network;
use crate::param::{join_name, BufferMut};
use crate::quant::layers::ActQuant;
use crate::quant::network::QuantizedNetwork;
use crate::tensor::Tensor;
use crate::NnError;

/// Where a layer stands at one stage of a gradual schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Quantized in an earlier stage: hard-quantized weights and activations, frozen or
    /// trained with the straight-through estimator as the schedule says.
    Done,
    /// Quantized at this stage and trained (UNIQ noise while it is on, else the
    /// straight-through estimator). Outside a gradual schedule every layer is active.
    #[default]
    Active,
    /// Not yet quantized: full-precision weights, activations passed through unquantized
    /// ([`ActQuant::set_bypass`]), trained.
    Float,
}

/// The stage of each of `layers` weight layers (in forward order) in an `stages`-stage
/// schedule: contiguous blocks, non-decreasing, every stage at least one layer, sizes
/// differing by at most one (layer `l` is in stage `⌊l · stages / layers⌋`).
///
/// # Errors
/// [`NnError::InvalidParameter`] unless `1 ≤ stages ≤ layers`.
///
/// ```
/// assert_eq!(nuq_nn::quant::gradual_stages(5, 2)?, [0, 0, 0, 1, 1]);
/// assert!(nuq_nn::quant::gradual_stages(2, 3).is_err());
/// # Ok::<(), nuq_nn::NnError>(())
/// ```
pub fn gradual_stages(layers: usize, stages: usize) -> Result<Vec<usize>, NnError> {
    if stages == 0 || stages > layers {
        return Err(NnError::InvalidParameter {
            what: "gradual stages".into(),
            allowed: "1 up to the number of weight layers",
            found: format!("{stages} stages for {layers} weight layers"),
        });
    }
    Ok((0..layers).map(|l| l * stages / layers).collect())
}

/// Parameters and running statistics of frozen layers, by name.
#[derive(Debug, Default)]
pub(crate) struct Frozen {
    params: BTreeMap<String, Vec<f32>>,
    f32_buffers: BTreeMap<String, Vec<f32>>,
    i64_buffers: BTreeMap<String, i64>,
}

impl Frozen {
    /// Puts the frozen values back (after an optimiser step and a training forward pass).
    pub(crate) fn restore(&self, net: &mut Network) {
        if self.params.is_empty() && self.f32_buffers.is_empty() && self.i64_buffers.is_empty() {
            return;
        }
        net.visit_params(&mut |name, p| {
            if let Some(v) = self.params.get(name) {
                p.value.copy_from_slice(v);
            }
        });
        net.visit_buffers(&mut |name, b| match b {
            BufferMut::F32(v) => {
                if let Some(f) = self.f32_buffers.get(name) {
                    v.copy_from_slice(f);
                }
            }
            BufferMut::I64(v) => {
                if let Some(&f) = self.i64_buffers.get(name) {
                    *v = f;
                }
            }
        });
    }

    /// Records `layer`'s parameters (except `skip`, a weight kept by its slot) and buffers.
    fn record(&mut self, name: &str, layer: &mut dyn Layer, skip: Option<&str>) {
        layer.visit_params(name, &mut |n, p| {
            if Some(n) != skip {
                self.params.insert(n.to_string(), p.value.clone());
            }
        });
        layer.visit_buffers(name, &mut |n, b| match b {
            BufferMut::F32(v) => {
                self.f32_buffers.insert(n.to_string(), v.clone());
            }
            BufferMut::I64(v) => {
                self.i64_buffers.insert(n.to_string(), *v);
            }
        });
    }
}

fn is_weight_layer(layer: &dyn Layer) -> bool {
    layer.as_any().is::<Conv2d>() || layer.as_any().is::<Linear>()
}

impl QuantizedNetwork {
    /// The names of the weight layers (convolutions and linear layers) in forward order, as
    /// a gradual schedule splits them ([`QuantizedNetwork::weight_layers`] lists them sorted
    /// by name).
    pub fn weight_layers_in_order(&mut self) -> Vec<String> {
        let mut names = Vec::new();
        visit_leaves_mut(&mut self.net.body, "", &mut |name, layer| {
            if is_weight_layer(layer) {
                names.push(name.to_string());
            }
        });
        names
    }

    /// Every weight layer's name and phase in forward order (all [`Phase::Active`] outside a
    /// gradual schedule), and whether it is frozen.
    pub fn layer_phases(&mut self) -> Vec<(String, Phase, bool)> {
        self.weight_layers_in_order()
            .into_iter()
            .filter_map(|n| {
                let s = self.slots.get(&n)?;
                Some((n, s.phase, s.frozen))
            })
            .collect()
    }

    /// Starts stage `stage` of an `stages`-stage gradual schedule ([`gradual_stages`] over
    /// [`QuantizedNetwork::weight_layers_in_order`]): the earlier blocks are [`Phase::Done`] (their
    /// weights, batch-norm parameters and statistics, and activation quantizers frozen with
    /// `freeze_done`, else trained with the straight-through estimator), this stage's block
    /// is [`Phase::Active`] (weight codebooks and scales refitted to the float masters,
    /// activation quantizers recalibrated), the later blocks are [`Phase::Float`]. Then the
    /// new activation quantizers are calibrated in one forward pass over `images`
    /// (normalised with [`QuantizedNetwork::input_norm`]), the earlier blocks quantized.
    /// UNIQ noise is switched off ([`QuantizedNetwork::set_noise`] turns it on for the active
    /// block).
    ///
    /// # Errors
    /// [`NnError::InvalidParameter`] for `stages` outside `1..=` the number of weight layers
    /// or `stage ≥ stages`; as the codebook refit and [`QuantizedNetwork::calibrate`].
    pub fn begin_stage(
        &mut self,
        stages: usize,
        stage: usize,
        freeze_done: bool,
        images: &Tensor,
    ) -> Result<(), NnError> {
        let stage_of = gradual_stages(self.weight_layers_in_order().len(), stages)?;
        if stage >= stages {
            return Err(NnError::InvalidParameter {
                what: "gradual stage".into(),
                allowed: "below the number of stages",
                found: format!("stage {stage} of {stages}"),
            });
        }
        let cfg = self.config;
        let slots = &mut self.slots;
        let mut frozen = Frozen::default();
        let mut seen = 0usize;
        let mut error = None;
        visit_leaves_mut(&mut self.net.body, "", &mut |name, layer| {
            let weight = is_weight_layer(layer);
            if weight {
                seen += 1;
            }
            let phase = match stage_of[seen.saturating_sub(1)].cmp(&stage) {
                Ordering::Less => Phase::Done,
                Ordering::Equal => Phase::Active,
                Ordering::Greater => Phase::Float,
            };
            let freeze = phase == Phase::Done && freeze_done;
            let mut skip = None;
            if let Some(slot) = slots.get_mut(name).filter(|_| weight) {
                slot.phase = phase;
                slot.frozen = freeze;
                slot.noise = None;
                if phase == Phase::Active {
                    let bits = if slot.edge {
                        cfg.edge_bits
                    } else {
                        cfg.weight_bits
                    };
                    if let Err(e) = slot.refit(name, bits, cfg.weight_family) {
                        error.get_or_insert(e);
                    }
                }
                skip = Some(join_name(name, "weight"));
            }
            if let Some(a) = layer.as_any_mut().downcast_mut::<ActQuant>() {
                a.set_bypass(phase == Phase::Float);
                a.set_frozen(freeze);
                if phase == Phase::Active {
                    a.reset();
                }
            }
            if freeze {
                frozen.record(name, layer, skip.as_deref());
            }
        });
        if let Some(e) = error {
            return Err(e);
        }
        self.frozen = frozen;
        self.load_quantized_weights();
        self.calibrate(images)
    }

    /// Ends a gradual schedule: every layer quantized and active, nothing frozen, no noise;
    /// activation quantizers still in full precision (none after the last stage) are
    /// calibrated on `images`. The network then folds like one fine-tuned without stages.
    ///
    /// # Errors
    /// As [`QuantizedNetwork::calibrate`].
    pub fn finish_gradual(&mut self, images: &Tensor) -> Result<(), NnError> {
        for slot in self.slots.values_mut() {
            slot.phase = Phase::Active;
            slot.frozen = false;
            slot.noise = None;
        }
        let mut bypassed = false;
        visit_leaves_mut(&mut self.net.body, "", &mut |_, layer| {
            if let Some(a) = layer.as_any_mut().downcast_mut::<ActQuant>() {
                bypassed |= a.bypassed();
                a.set_bypass(false);
                a.set_frozen(false);
            }
        });
        self.frozen = Frozen::default();
        self.load_quantized_weights();
        if bypassed {
            self.calibrate(images)?;
        }
        Ok(())
    }
}
