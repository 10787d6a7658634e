//! AdamW (decoupled weight decay, PyTorch semantics).

use rayon::prelude::*;

use crate::error::NnError;
use crate::models::Parameterized;
use crate::optim::{Optimizer, Slots, StateTensor};

/// Values per parallel task of the element-wise update.
const CHUNK: usize = 1 << 15;

/// AdamW: `w ← w·(1 − lr·λ)`, `m = β₁m + (1−β₁)g`, `v = β₂v + (1−β₂)g²`,
/// `w ← w − lr·m̂/(√v̂ + ε)` with bias-corrected `m̂ = m/(1−β₁ᵗ)`, `v̂ = v/(1−β₂ᵗ)`
/// (`torch.optim.AdamW`).
#[derive(Clone, Debug)]
pub struct AdamW {
    /// β₁.
    pub beta1: f32,
    /// β₂.
    pub beta2: f32,
    /// ε.
    pub eps: f32,
    /// Decoupled weight decay λ.
    pub weight_decay: f32,
    /// Whether BatchNorm parameters and biases are decayed too.
    pub decay_bn_and_bias: bool,
    slots: Slots,
    steps: u64,
}

impl AdamW {
    /// AdamW with β = (0.9, 0.999), ε = 1e-8 and weight decay λ.
    pub fn new(weight_decay: f32) -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            decay_bn_and_bias: true,
            slots: Slots::default(),
            steps: 0,
        }
    }
}

impl Optimizer for AdamW {
    fn step(&mut self, model: &mut dyn Parameterized, lr: f32) -> Result<(), NnError> {
        let t = self.steps + 1;
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        let c1 = 1.0 - (b1 as f64).powi(t as i32);
        let c2 = 1.0 - (b2 as f64).powi(t as i32);
        let step_size = (lr as f64 / c1) as f32;
        let inv_c2_sqrt = (1.0 / c2.sqrt()) as f32;
        let mut index = 0;
        let mut err = None;
        model.for_each_param(&mut |name, p| {
            if err.is_some() {
                return;
            }
            let wd = if self.decay_bn_and_bias || !p.is_bn_or_bias() {
                self.weight_decay
            } else {
                0.0
            };
            let bufs = match self.slots.get(index, name, p.value.len(), 2) {
                Ok(b) => b,
                Err(e) => {
                    err = Some(e);
                    return;
                }
            };
            let (m, v) = bufs.split_at_mut(1);
            let shrink = 1.0 - lr * wd;
            p.value
                .par_chunks_mut(CHUNK)
                .zip(p.grad.par_chunks(CHUNK))
                .zip(m[0].par_chunks_mut(CHUNK).zip(v[0].par_chunks_mut(CHUNK)))
                .for_each(|((ws, gs), (ms, vs))| {
                    for (((w, &g), m), v) in ws.iter_mut().zip(gs).zip(ms).zip(vs) {
                        *w *= shrink;
                        *m = b1 * *m + (1.0 - b1) * g;
                        *v = b2 * *v + (1.0 - b2) * g * g;
                        *w -= step_size * *m / (v.sqrt() * inv_c2_sqrt + eps);
                    }
                });
            index += 1;
        });
        if let Some(e) = err {
            return Err(e);
        }
        self.steps = t;
        Ok(())
    }

    fn state(&self) -> (Vec<StateTensor>, u64) {
        (self.slots.export(&["exp_avg", "exp_avg_sq"]), self.steps)
    }

    fn load_state(&mut self, tensors: Vec<StateTensor>, steps: u64) -> Result<(), NnError> {
        self.slots = Slots::import(&["exp_avg", "exp_avg_sq"], tensors)?;
        self.steps = steps;
        Ok(())
    }
}
