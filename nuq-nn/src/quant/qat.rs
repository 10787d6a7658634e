//! Quantization-aware fine-tuning: float master weights, re-quantized with fixed codebooks and
//! scales before every forward pass (straight-through estimator).

use crate::loss::CrossEntropy;
use crate::optim::Optimizer;
use crate::quant::convert::QuantizedNetwork;
use crate::quant::weights::QuantizedWeights;
use crate::tensor::Tensor;
use crate::train::Stats;
use crate::{Mode, NnError};

/// One quantized weight tensor with its float master copy.
pub(crate) struct WeightSlot {
    /// Codebook, indices and per-row scales.
    pub q: QuantizedWeights,
    /// Float master weights in the parameter's own layout.
    pub shadow: Vec<f32>,
    /// `(taps, c_in, c_out)` for a convolution stored `[kh][kw][c_in][c_out]`; `None` for a
    /// linear layer stored `[out][in]`.
    pub conv: Option<(usize, usize, usize)>,
    /// Per-input-channel factor folded into the first layer's weights (`255 · std`).
    pub input_factor: Option<Vec<f64>>,
}

/// The index of the level nearest to `u` (ties to the upper level, as `nuq-core`).
fn nearest(levels: &[i8], u: f64) -> u8 {
    let p = levels.partition_point(|&l| f64::from(l) < u);
    if p == 0 {
        return 0;
    }
    if p == levels.len() {
        return (levels.len() - 1) as u8;
    }
    let (lo, hi) = (f64::from(levels[p - 1]), f64::from(levels[p]));
    if u - lo < hi - u {
        (p - 1) as u8
    } else {
        p as u8
    }
}

impl WeightSlot {
    /// Re-quantizes the master weights with the slot's codebook and scales, updates the
    /// indices and returns the dequantized values in the parameter's layout.
    pub fn requantize(&mut self) -> Vec<f32> {
        let rows = self.q.scales.len();
        let k = self.shadow.len() / rows.max(1);
        let mut out = vec![0.0f32; self.shadow.len()];
        for (pos, &w) in self.shadow.iter().enumerate() {
            // Position in the parameter layout → (row, column of the row-major table).
            let (row, col, ci) = match self.conv {
                Some((_, c_in, c_out)) => {
                    let (tap_ci, o) = (pos / c_out, pos % c_out);
                    (o, tap_ci, tap_ci % c_in)
                }
                None => (pos / k, pos % k, 0),
            };
            let factor = self.input_factor.as_ref().map_or(1.0, |f| f[ci]);
            let s = self.q.scales[row];
            let idx = nearest(&self.q.table.levels, f64::from(w) / factor / s);
            self.q.table.indices[row * k + col] = idx;
            out[pos] = (s * f64::from(self.q.table.levels[usize::from(idx)]) * factor) as f32;
        }
        out
    }
}

impl QuantizedNetwork {
    fn load_quantized_weights(&mut self) {
        let slots = &mut self.slots;
        self.net.visit_params(&mut |name, p| {
            if let Some(slot) = name.strip_suffix(".weight").and_then(|n| slots.get_mut(n)) {
                p.value = slot.requantize();
            }
        });
    }

    /// One quantization-aware training step: the weights are re-quantized from their float
    /// masters (fixed codebooks and scales), the forward and backward passes run through the
    /// activation quantizers (straight-through), and the optimiser updates the float masters.
    ///
    /// # Errors
    /// As the forward/backward passes and the optimiser.
    pub fn qat_step(
        &mut self,
        loss: &mut CrossEntropy,
        opt: &mut dyn Optimizer,
        x: &Tensor,
        labels: &[u32],
        lr: f32,
    ) -> Result<Stats, NnError> {
        self.load_quantized_weights();
        let logits = self.net.forward(x, Mode::Train)?;
        let out = loss.forward(logits, labels)?;
        self.net.backward(x, loss.grad())?;
        // The gradient with respect to the quantized weights updates the float masters.
        {
            let slots = &mut self.slots;
            self.net.visit_params(&mut |name, p| {
                if let Some(slot) = name.strip_suffix(".weight").and_then(|n| slots.get_mut(n)) {
                    p.value.copy_from_slice(&slot.shadow);
                }
            });
        }
        opt.step(&mut self.net, lr)?;
        {
            let slots = &mut self.slots;
            self.net.visit_params(&mut |name, p| {
                if let Some(slot) = name.strip_suffix(".weight").and_then(|n| slots.get_mut(n)) {
                    slot.shadow.copy_from_slice(&p.value);
                }
            });
        }
        self.load_quantized_weights();
        Ok(Stats {
            loss_sum: f64::from(out.loss) * labels.len() as f64,
            correct: out.correct,
            samples: labels.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::nearest;

    #[test]
    fn nearest_level_ties_go_up() {
        let levels = [-4i8, -1, 0, 3];
        assert_eq!(nearest(&levels, -9.0), 0);
        assert_eq!(nearest(&levels, -2.5), 1);
        assert_eq!(nearest(&levels, 1.5), 3);
        assert_eq!(nearest(&levels, 1.4), 2);
        assert_eq!(nearest(&levels, 99.0), 3);
    }
}
