//! The quantizer tables of a [`QuantizedNetwork`] by layer name, read and replaced: what a
//! foreign trainer (the Python bindings' `nuq.torch`) needs to apply nuq's quantizers in its
//! own engine and to hand them back for nuq's fold.
//!
//! Weight quantizers are named by their layer (`conv1`, `layer1.0.conv2`, `fc`); activation
//! quantizers by the layer they follow plus `.act` (`bn1.act`, `layer1.0.bn1.act`,
//! `features.1.act`), a residual block's output quantizer by the block plus `.act`
//! (`layer1.0.act`). [`QuantizedNetwork::activation_names`] lists them in forward order.

use nuq_core::Codebook;

use crate::layers::Sequential;
use crate::quant::layers::ActQuant;
use crate::quant::network::QuantizedNetwork;
use crate::quant::{ActQuantizer, QuantizedWeights};
use crate::NnError;

/// One weight quantizer as the float twin applies it: with `u = (w / factor − mean) / scale`
/// (`factor` the first layer's per-input-channel factor, `mean` the row mean under weight
/// normalisation), the weight used is `scale · levels[nearest_f64(u)] · factor`.
#[derive(Debug, Clone, Copy)]
pub struct WeightQuantizerView<'a> {
    /// Codebook, current indices and per-row scales.
    pub weights: &'a QuantizedWeights,
    /// The first convolution's per-input-channel factor (`255 · std`), else `None`.
    pub input_factor: Option<&'a [f64]>,
    /// Weight normalisation: rows are used minus their mean.
    pub center: bool,
    /// First convolution or classifier (quantized with the edge bit width).
    pub edge: bool,
}

impl QuantizedNetwork {
    /// The names of the quantized weight layers, sorted.
    pub fn weight_layers(&self) -> Vec<String> {
        self.slots.keys().cloned().collect()
    }

    /// The weight quantizer of layer `name` (see [`WeightQuantizerView`]).
    ///
    /// # Errors
    /// [`NnError::NoSuchLayer`] when no quantized weight layer has that name.
    pub fn weight_quantizer(&self, name: &str) -> Result<WeightQuantizerView<'_>, NnError> {
        let slot = self
            .slots
            .get(name)
            .ok_or_else(|| NnError::NoSuchLayer(name.to_string()))?;
        Ok(WeightQuantizerView {
            weights: &slot.q,
            input_factor: slot.input_factor.as_deref(),
            center: slot.center,
            edge: slot.edge,
        })
    }

    /// Replaces the codebook and the per-row scales of layer `name`, re-quantizes its float
    /// masters with them (as a fine-tuning step does) and loads the result into the network.
    ///
    /// # Errors
    /// [`NnError::NoSuchLayer`] for an unknown layer, [`NnError::SizeMismatch`] for a scale
    /// count other than the layer's rows, [`NnError::InvalidParameter`] for a scale that is
    /// not finite and positive.
    pub fn set_weight_quantizer(
        &mut self,
        name: &str,
        codebook: Codebook,
        scales: Vec<f64>,
    ) -> Result<(), NnError> {
        let slot = self
            .slots
            .get_mut(name)
            .ok_or_else(|| NnError::NoSuchLayer(name.to_string()))?;
        if scales.len() != slot.q.scales.len() {
            return Err(NnError::SizeMismatch {
                what: format!("layer {name}: weight scales (one per row)"),
                expected: slot.q.scales.len(),
                found: scales.len(),
            });
        }
        if let Some(s) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(NnError::InvalidParameter {
                what: format!("layer {name}: weight scale"),
                allowed: "finite and positive",
                found: s.to_string(),
            });
        }
        slot.q.table.codebook = codebook;
        slot.q.scales = scales;
        slot.velocity.clear();
        let values = slot.requantize();
        let mut values = Some(values);
        let weight = format!("{name}.weight");
        self.net.visit_params(&mut |pname, p| {
            if pname == weight {
                if let Some(v) = values.take() {
                    p.value = v;
                }
            }
        });
        Ok(())
    }

    /// The activation quantizers' names in forward order.
    pub fn activation_names(&mut self) -> Vec<String> {
        let mut names = Vec::new();
        visit_acts(&mut self.net.body, "", &mut |name, _| names.push(name));
        names
    }

    /// The activation quantizer `name` (`None` inside while uncalibrated).
    ///
    /// # Errors
    /// [`NnError::NoSuchLayer`] when no activation quantizer has that name.
    pub fn activation_quantizer(&mut self, name: &str) -> Result<Option<ActQuantizer>, NnError> {
        let mut found = None;
        visit_acts(&mut self.net.body, "", &mut |n, a| {
            if n == name {
                found = Some(a.quantizer.clone());
            }
        });
        found.ok_or_else(|| NnError::NoSuchLayer(name.to_string()))
    }

    /// Sets the activation quantizer `name` (a calibration made elsewhere) and points the
    /// rounding after the global pool at the scale of the quantizer before it.
    ///
    /// # Errors
    /// [`NnError::NoSuchLayer`] when no activation quantizer has that name,
    /// [`NnError::InvalidParameter`] when the quantizer's code width differs from the layer's.
    pub fn set_activation_quantizer(
        &mut self,
        name: &str,
        quantizer: ActQuantizer,
    ) -> Result<(), NnError> {
        let mut result = Err(NnError::NoSuchLayer(name.to_string()));
        let mut quantizer = Some(quantizer);
        visit_acts(&mut self.net.body, "", &mut |n, a| {
            if n != name {
                return;
            }
            let Some(q) = quantizer.take() else { return };
            result = if q.bits() == a.bits() {
                a.quantizer = Some(q);
                Ok(())
            } else {
                Err(NnError::InvalidParameter {
                    what: format!("activation quantizer {name}: code bits"),
                    allowed: "the layer's code width",
                    found: format!("{} (the layer has {})", q.bits(), a.bits()),
                })
            };
        });
        result?;
        self.sync_scales();
        Ok(())
    }
}

/// Calls `f` with every activation quantizer and its name, in forward order.
fn visit_acts(s: &mut Sequential, prefix: &str, f: &mut dyn FnMut(String, &mut ActQuant)) {
    crate::layer::visit_leaves_mut(s, prefix, &mut |name, l| {
        if let Some(a) = l.as_any_mut().downcast_mut::<ActQuant>() {
            f(name.to_string(), a);
        }
    });
}

#[cfg(test)]
mod tests {
    use crate::models::{Arch, ModelConfig, Network};
    use crate::quant::{ActQuantizer, Family, InputNorm, QuantConfig, QuantizedNetwork};
    use crate::tensor::Tensor;

    fn prepared() -> QuantizedNetwork {
        let net = Network::new(ModelConfig::fashion_mnist(Arch::ResNet20, 0.25), 3).unwrap();
        let norm = InputNorm::from_mean_std(&[0.286], &[0.353]).unwrap();
        QuantizedNetwork::prepare(net, QuantConfig::new(4, Family::LloydMax), norm).unwrap()
    }

    /// Tables read out and written back unchanged give the same integer model; names are
    /// the float network's.
    #[test]
    fn tables_round_trip_through_the_setters() {
        let mut qn = prepared();
        let mut rng = crate::Rng::new(5);
        let x = Tensor::from_vec(
            [4, 28, 28, 1],
            (0..4 * 28 * 28).map(|_| rng.normal()).collect(),
        )
        .unwrap();
        qn.calibrate(&x).unwrap();
        let before = qn.to_integer().unwrap();
        let names = qn.activation_names();
        assert_eq!(names[0], "bn1.act");
        assert!(names.contains(&"layer1.0.bn1.act".to_string()));
        assert!(names.contains(&"layer3.2.act".to_string()));
        assert!(qn
            .weight_layers()
            .contains(&"layer2.0.downsample.0".to_string()));
        for name in qn.weight_layers() {
            let v = qn.weight_quantizer(&name).unwrap();
            assert_eq!(v.input_factor.is_some(), name == "conv1");
            let (cb, s) = (v.weights.table.codebook.clone(), v.weights.scales.clone());
            qn.set_weight_quantizer(&name, cb, s).unwrap();
        }
        for name in &names {
            let q = qn.activation_quantizer(name).unwrap().unwrap();
            qn.set_activation_quantizer(name, q).unwrap();
        }
        assert_eq!(qn.to_integer().unwrap(), before);
        assert!(qn.weight_quantizer("nope").is_err());
        let q = ActQuantizer::fit(Family::Uniform, 2, &[1.0, 2.0]).unwrap();
        assert!(qn.set_activation_quantizer("bn1.act", q).is_err());
        let cb =
            nuq_core::Codebook::uniform(nuq_core::Grid::I8, 4, nuq_core::Polarity::Signed).unwrap();
        assert!(qn.set_weight_quantizer("fc", cb, vec![1.0]).is_err());
    }
}
